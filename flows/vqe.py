"""`vqe-h2`: the variational quantum eigensolver for H2 at 0.735 Å on two coupled qubits of a device.

    VQPU_URL=http://... VQPU_KEY=... python -c "from flows.vqe import vqe_h2; print(vqe_h2())"

The problem and its exact answer are in `flows.examples.h2` (a 2-qubit parity-reduced Hamiltonian,
a one-parameter UCC ansatz). Each evaluation of the energy at θ is ONE vQPU task of one Estimator PUB
(docs/api.md): the ansatz with θ as an `input` parameter, the Hamiltonian as Pauli terms on the two
physical qubits, and a target `precision`; scipy's COBYLA (deterministic) proposes the next θ. Every
task has its own fixed seed, so a run is reproducible and a retried flow run finds its tasks already
done (see `flows.tasks`).

Precision, honestly: the service's estimator is Aer's (`EstimatorV2`): it computes the expectation value
exactly under the device's noise (a density matrix for two qubits), then, for a precision above 0, draws
it from a normal distribution of that width. So `precision=0` (the default) gives the exact energy of
the ansatz at θ with no shots at all, and the reported standard error is the precision asked. The
earlier flow sampled 500 000 shots per basis per evaluation and 2 000 000 for the optimum to beat shot
noise (benchmarks/primitives compares the two). The optimum is measured once more on the noisy device,
under its calibrated noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.artifacts import publish_convergence
from flows.examples import h2
from flows.examples.estimate import Estimate
from flows.examples.native import NativeProgram, best_coupled_pair
from flows.tasks import connect, run_pubs
from vqpu_protocol.pubs import EstimatorPub, EstimatorPubResults, EstimatorPubs

CHEMICAL_ACCURACY_HA = 1.6e-3
NAME = "vqe-h2"
TABLE_KEY = f"{NAME}-convergence"
PLOT_KEY = f"{NAME}-plot"


@dataclass(frozen=True)
class Evaluation:
    evaluation: int
    theta: float
    energy: float
    stderr: float
    task_ids: list[str]


@dataclass(frozen=True)
class VQEResult:
    """Energies in Hartree (electronic; add `nuclear_repulsion` for the total)."""

    flow_run_id: str | None
    device: str
    qubits: tuple[int, int]
    theta: float
    energy: float
    stderr: float
    exact: float
    error: float
    chemical_accuracy: bool
    nuclear_repulsion: float
    evaluations: int
    noisy_device: str | None
    noisy_energy: float | None
    noisy_stderr: float | None
    history: list[Evaluation] = field(repr=False)
    task_ids: list[str] = field(repr=False)
    artifacts: dict[str, str] = field(default_factory=dict)
    plot: str | None = None

    def summary(self) -> str:
        lines = [
            f"VQE H2 (0.735 Å) on {self.device} qubits {self.qubits}: E = {self.energy:.5f} ± {self.stderr:.5f} Ha "
            f"at θ = {self.theta:+.4f} after {self.evaluations} evaluations",
            f"exact {self.exact:.5f} Ha, error {self.error * 1e3:+.2f} ± {self.stderr * 1e3:.2f} mHa "
            f"({'within' if self.chemical_accuracy else 'outside'} chemical accuracy, 1.6 mHa)",
        ]
        if self.noisy_energy is not None and self.noisy_stderr is not None:
            lines.append(
                f"on {self.noisy_device} at the same θ: {self.noisy_energy:.5f} ± {self.noisy_stderr:.5f} Ha "
                f"(error {(self.noisy_energy - self.exact) * 1e3:+.1f} mHa)"
            )
        return "\n".join(lines)


class _Energy:
    """The objective COBYLA calls: one Estimator task per θ, each evaluation recorded."""

    def __init__(self, program: NativeProgram, device: str, precision: float, seed: int, url: str | None):
        self.program, self.device, self.precision, self.seed, self.url = program, device, precision, seed, url
        self.history: list[Evaluation] = []

    def __call__(self, x: Any) -> float:
        theta = float(x[0])
        k = len(self.history) + 1
        estimate, task_id = measure(
            self.program, self.device, theta, self.precision, self.seed + 10 * k, f"eval-{k}", self.url
        )
        self.history.append(Evaluation(k, theta, estimate.value, estimate.stderr, [task_id]))
        get_run_logger().info("evaluation %d: θ = %+.4f, E = %.5f ± %.5f Ha", k, theta, estimate.value, estimate.stderr)
        return estimate.value


def measure(
    program: NativeProgram, device: str, theta: float, precision: float, seed: int, label: str, url: str | None
) -> tuple[Estimate, str]:
    """The energy at θ on `device` from one Estimator task, and the task's id."""
    pub = EstimatorPub(
        circuit=program.template(),
        parameter_values=[[theta]],
        observables=[h2.observable(program.layout)],
        precision=precision,
    )
    result = run_pubs.with_options(task_run_name=f"{label} on {device}: θ = {theta:+.4f}")(
        device, EstimatorPubs(pubs=[pub]), seed=seed, label=label, url=url
    )
    assert isinstance(result.pubs, EstimatorPubResults)  # the service checks a result is of its task's kind
    [energy] = result.pubs.pubs
    return Estimate(energy.evs[0], energy.stds[0]), result.provenance.task_id


@flow(name="vqe-h2", persist_result=False)
def vqe_h2(
    device: str = "ibm-fez-ideal",
    noisy_device: str | None = "ibm-fez",
    precision: float = 0.0,
    maxiter: int = 15,
    seed: int = 2017,
    qubits: tuple[int, int] | None = None,
    url: str | None = None,
    results_dir: str | None = None,
) -> VQEResult:
    """Minimise the H2 energy on `device` with Estimator tasks of `precision` (0: exact), then measure
    the optimum on `noisy_device`. `qubits`: a coupled pair (default: the best-calibrated coupler of the
    noisy device, else of `device`). `url`: the service (default VQPU_URL); the key is always VQPU_KEY."""
    from scipy.optimize import minimize

    with connect(url) as client:
        snapshots = {d: client.snapshot(d) for d in {device, noisy_device} if d is not None}
    layout = qubits or best_coupled_pair(snapshots[noisy_device or device])

    def compiled(d: str) -> NativeProgram:
        return NativeProgram(h2.ansatz(), layout, snapshots[d])

    energy = _Energy(compiled(device), device, precision, seed, url)
    minimize(energy, [h2.HARTREE_FOCK_THETA], method="COBYLA", options={"rhobeg": 0.3, "maxiter": maxiter, "tol": 1e-3})
    best = min(energy.history, key=lambda e: e.energy)
    noisy: Estimate | None = None
    noisy_ids: list[str] = []
    if noisy_device is not None:
        noisy, noisy_id = measure(compiled(noisy_device), noisy_device, best.theta, precision, seed + 3, "noisy", url)
        noisy_ids.append(noisy_id)

    exact = h2.exact_ground_energy()
    result = VQEResult(
        flow_run_id=flow_run.get_id(),
        device=device,
        qubits=(layout[0], layout[1]),
        theta=best.theta,
        energy=best.energy,
        stderr=best.stderr,
        exact=exact,
        error=best.energy - exact,
        chemical_accuracy=abs(best.energy - exact) < CHEMICAL_ACCURACY_HA,
        nuclear_repulsion=h2.nuclear_repulsion(),
        evaluations=len(energy.history),
        noisy_device=noisy_device,
        noisy_energy=noisy.value if noisy else None,
        noisy_stderr=noisy.stderr if noisy else None,
        history=energy.history,
        task_ids=[i for e in energy.history for i in e.task_ids] + noisy_ids,
    )
    return _report(result, Path(results_dir) if results_dir else None)


def _report(result: VQEResult, results_dir: Path | None) -> VQEResult:
    """The convergence table and plot as artifacts of this flow run (and files, with `results_dir`)."""
    rows = [
        {
            "evaluation": e.evaluation,
            "theta": round(e.theta, 6),
            "energy_ha": round(e.energy, 6),
            "stderr_ha": round(e.stderr, 6),
            "error_mha": round((e.energy - result.exact) * 1e3, 3),
            "tasks": " ".join(e.task_ids),
        }
        for e in result.history
    ]
    return publish_convergence(result, NAME, "VQE H2", rows, _figure(result), results_dir)


def _figure(result: VQEResult) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.8), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    xs = [e.evaluation for e in result.history]
    ax.axhspan(
        -CHEMICAL_ACCURACY_HA * 1e3,
        CHEMICAL_ACCURACY_HA * 1e3,
        color="tab:green",
        alpha=0.15,
        label="chemical accuracy",
    )
    ax.errorbar(
        xs,
        [(e.energy - result.exact) * 1e3 for e in result.history],
        yerr=[e.stderr * 1e3 for e in result.history],
        fmt="o-",
        ms=3,
        label=f"{result.device}, per evaluation",
    )
    end = len(xs) + 1
    if result.noisy_energy is not None:
        ax.errorbar(
            [end],
            [(result.noisy_energy - result.exact) * 1e3],
            yerr=[(result.noisy_stderr or 0) * 1e3],
            fmt="D",
            color="tab:red",
            label=f"optimum on {result.noisy_device}",
        )
    ax.set_yscale("symlog", linthresh=2.0)
    ax.set_xlabel("energy evaluation (COBYLA)")
    ax.set_ylabel("E - E_exact (mHa)")
    ax.legend(fontsize="small")
    return fig
