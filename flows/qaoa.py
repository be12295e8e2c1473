"""`qaoa-maxcut`: QAOA for MaxCut on a graph made of a device's own couplers.

    VQPU_URL=http://... VQPU_KEY=... python -c "from flows.qaoa import qaoa_maxcut; print(qaoa_maxcut())"

The graph is read from the device's snapshot (`flows.examples.maxcut.graph_from_snapshot`: a
connected group of `nodes` well-calibrated qubits and the couplers between them), so the circuit runs
as written, without routing. Each evaluation of (gamma, beta) is one vQPU task of one Sampler PUB (the
circuit compiled once, its angles `input` parameters bound per evaluation); scipy's COBYLA
maximises the expected cut. The optimum is then measured again with more shots on the ideal device
and on the noisy one. Reported: the approximation ratio <C>/max C (max C by brute force) with its
standard error, the best cut sampled, and the ratio a uniformly random assignment would reach
(half the edges, 0.5 on a tree such as any small subgraph of heavy-hex).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.artifacts import publish_convergence
from flows.examples import maxcut
from flows.examples.estimate import Estimate
from flows.examples.native import NativeProgram
from flows.tasks import connect, run_pubs
from vqpu_protocol.pubs import SamplerPub, SamplerPubResults, SamplerPubs

NAME = "qaoa-maxcut"
TABLE_KEY = f"{NAME}-convergence"
PLOT_KEY = f"{NAME}-plot"
INITIAL_POINT = (0.5, 0.3)
"""(gamma, beta) for every layer at the start: a generic small angle, not the known p=1 optimum."""


@dataclass(frozen=True)
class Evaluation:
    evaluation: int
    gammas: list[float]
    betas: list[float]
    ratio: float
    stderr: float
    task_id: str


@dataclass(frozen=True)
class Measured:
    """The optimum measured on one device."""

    device: str
    ratio: float
    stderr: float
    expected_cut: float
    best_sampled_cut: int
    task_id: str


@dataclass(frozen=True)
class QAOAResult:
    flow_run_id: str | None
    nodes: list[int]
    edges: list[tuple[int, int]]
    layers: int
    max_cut: int
    random_ratio: float
    gammas: list[float]
    betas: list[float]
    evaluations: int
    ideal: Measured
    noisy: Measured | None
    history: list[Evaluation] = field(repr=False)
    task_ids: list[str] = field(repr=False)
    artifacts: dict[str, str] = field(default_factory=dict)
    plot: str | None = None

    def summary(self) -> str:
        lines = [
            f"QAOA p={self.layers} MaxCut on {len(self.nodes)} qubits {self.nodes} ({len(self.edges)} couplers), "
            f"max cut {self.max_cut}, random assignment ratio {self.random_ratio:.3f}",
            f"gamma = {[round(g, 4) for g in self.gammas]}, beta = {[round(b, 4) for b in self.betas]} "
            f"after {self.evaluations} evaluations",
        ]
        for m in (self.ideal, self.noisy):
            if m is not None:
                lines.append(
                    f"{m.device}: ratio {m.ratio:.4f} ± {m.stderr:.4f} (expected cut {m.expected_cut:.3f}), "
                    f"best sampled cut {m.best_sampled_cut}/{self.max_cut}"
                )
        return "\n".join(lines)


class _Ratio:
    """What COBYLA minimises: minus the approximation ratio, one vQPU task per point, each recorded."""

    def __init__(
        self, program: NativeProgram, graph: maxcut.Graph, device: str, shots: int, seed: int, url: str | None
    ):
        self.program, self.graph, self.device, self.shots, self.seed, self.url = (
            program,
            graph,
            device,
            shots,
            seed,
            url,
        )
        self.best = maxcut.max_cut(len(graph.nodes), graph.logical_edges)
        self.history: list[Evaluation] = []

    def __call__(self, x: Any) -> float:
        layers = len(x) // 2
        gammas, betas = [float(v) for v in x[:layers]], [float(v) for v in x[layers:]]
        k = len(self.history) + 1
        m = measure(
            self.program, self.graph, self.device, gammas, betas, self.shots, self.seed + k, f"eval-{k}", self.url
        )
        self.history.append(Evaluation(k, gammas, betas, m.ratio, m.stderr, m.task_id))
        get_run_logger().info("evaluation %d: gamma %s beta %s ratio %.4f ± %.4f", k, gammas, betas, m.ratio, m.stderr)
        return -m.ratio


def measure(
    program: NativeProgram,
    graph: maxcut.Graph,
    device: str,
    gammas: list[float],
    betas: list[float],
    shots: int,
    seed: int,
    label: str,
    url: str | None,
) -> Measured:
    """The cut at (gammas, betas) from one Sampler task: the circuit's template with the angles bound."""
    values = maxcut.parameter_values(program.compiled, gammas, betas)
    pub = SamplerPub(circuit=program.template(), parameter_values=[[values[p] for p in program.parameters]])
    name = f"{label} on {device}: gamma {[round(g, 3) for g in gammas]} beta {[round(b, 3) for b in betas]}"
    result = run_pubs.with_options(task_run_name=name)(
        device, SamplerPubs(pubs=[pub]), shots=shots, seed=seed, label=label, url=url
    )
    assert isinstance(result.pubs, SamplerPubResults)  # the service checks a result is of its task's kind
    [sampled] = result.pubs.pubs
    return _measured(device, sampled.counts[0], graph, result.provenance.task_id)


def _measured(device: str, counts: dict[str, int], graph: maxcut.Graph, task_id: str) -> Measured:
    edges = graph.logical_edges
    best = maxcut.max_cut(len(graph.nodes), edges)
    cut: Estimate = maxcut.expected_cut(counts, edges)
    return Measured(
        device, cut.value / best, cut.stderr / best, cut.value, maxcut.best_sampled_cut(counts, edges), task_id
    )


@flow(name="qaoa-maxcut", persist_result=False)
def qaoa_maxcut(
    device: str = "ibm-fez-ideal",
    noisy_device: str | None = "ibm-fez",
    nodes: int = 6,
    layers: int = 1,
    shots: int = 4000,
    final_shots: int = 20_000,
    maxiter: int = 20,
    seed: int = 1411,
    url: str | None = None,
    results_dir: str | None = None,
) -> QAOAResult:
    """Optimise p=`layers` QAOA on `device`, then measure the optimum there and on `noisy_device`.

    The graph comes from the noisy device's snapshot when there is one (its calibration picks the
    qubits), else from `device`'s; both devices must have its couplers. `url`: the service (default
    VQPU_URL); the key is always VQPU_KEY.
    """
    from scipy.optimize import minimize

    with connect(url) as client:
        snapshots = {d: client.snapshot(d) for d in {device, noisy_device} if d is not None}
    graph = maxcut.graph_from_snapshot(snapshots[noisy_device or device], nodes)
    circuit = maxcut.circuit(graph, layers)

    ratio = _Ratio(NativeProgram(circuit, graph.nodes, snapshots[device]), graph, device, shots, seed, url)
    start = [INITIAL_POINT[0]] * layers + [INITIAL_POINT[1]] * layers
    minimize(ratio, start, method="COBYLA", options={"rhobeg": 0.25, "maxiter": maxiter, "tol": 1e-3})
    best = max(ratio.history, key=lambda e: e.ratio)
    ideal = measure(ratio.program, graph, device, best.gammas, best.betas, final_shots, seed - 1, "final", url)
    noisy = None
    if noisy_device is not None:
        program = NativeProgram(circuit, graph.nodes, snapshots[noisy_device])
        noisy = measure(program, graph, noisy_device, best.gammas, best.betas, final_shots, seed - 2, "noisy", url)

    result = QAOAResult(
        flow_run_id=flow_run.get_id(),
        nodes=list(graph.nodes),
        edges=list(graph.edges),
        layers=layers,
        max_cut=ratio.best,
        random_ratio=len(graph.edges) / 2 / ratio.best,
        gammas=best.gammas,
        betas=best.betas,
        evaluations=len(ratio.history),
        ideal=ideal,
        noisy=noisy,
        history=ratio.history,
        task_ids=[e.task_id for e in ratio.history] + [m.task_id for m in (ideal, noisy) if m is not None],
    )
    return _report(result, Path(results_dir) if results_dir else None)


def _report(result: QAOAResult, results_dir: Path | None) -> QAOAResult:
    rows = [
        {
            "evaluation": e.evaluation,
            "gamma": " ".join(f"{g:.4f}" for g in e.gammas),
            "beta": " ".join(f"{b:.4f}" for b in e.betas),
            "ratio": round(e.ratio, 5),
            "stderr": round(e.stderr, 5),
            "task": e.task_id,
        }
        for e in result.history
    ]
    return publish_convergence(result, NAME, "QAOA MaxCut", rows, _figure(result), results_dir)


def _figure(result: QAOAResult) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.8), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    xs = [e.evaluation for e in result.history]
    ax.errorbar(
        xs,
        [e.ratio for e in result.history],
        yerr=[e.stderr for e in result.history],
        fmt="o-",
        ms=3,
        label=f"{result.ideal.device}, per evaluation",
    )
    end = len(xs) + 1
    for m, style in ((result.ideal, "s"), (result.noisy, "D")):
        if m is not None:
            ax.errorbar([end], [m.ratio], yerr=[m.stderr], fmt=style, label=f"optimum on {m.device}")
    ax.axhline(result.random_ratio, color="grey", ls="--", label="random assignment")
    ax.set_ylim(min(result.random_ratio, *(e.ratio for e in result.history)) - 0.05, 1.0)
    ax.set_xlabel("evaluation (COBYLA)")
    ax.set_ylabel("approximation ratio <C> / max C")
    ax.legend(fontsize="small", loc="lower right")
    return fig
