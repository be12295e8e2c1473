"""`calibration-epoch-sweep`: how a fixed benchmark set's output drifts across a device's calibration epochs.

    calibration_epoch_sweep(device="ibm-fez", last=7, shots=2000)

For every chosen epoch, each benchmark runs as a vQPU task pinned to that epoch (`epoch=` on
submit), all with the same seed, so that what differs between epochs is the calibration and not the
sampling. Each output is compared with the benchmark's exact ideal distribution (computed here with
Qiskit's `Statevector`, not sampled) by total-variation distance, and with the same benchmark's output
at the previous epoch of the sweep. The flow run gets a table artifact (one row per epoch x
benchmark) and a PNG plot (drift against epoch per benchmark), and returns the same rows.

The benchmarks, all in the device's native gates (cz, rz, sx, x) on physical Fez qubits:

- `amplified-identity`: the main job's amplified two-qubit identity on edge (0, 1) (ideal |00>);
- `ghz-4`: a GHZ state on the coupled chain 1-2-3-4 (ideal: half 0000, half 1111);
- `qaoa-maxcut-4`: one QAOA layer for MaxCut on the path 5-6-7-8 at near-optimal angles
  (gamma = 0.15 pi, beta = 0.375 pi: expected cut 2.38 of 3).

An epoch on which a benchmark is not admissible (a qubit or coupler it uses was out) gets a row
saying so and no task. TV against the ideal includes the finite-shot sampling error; the table's
`sampling_floor` column is its expectation for that many shots of the ideal distribution itself.
The key comes from `VQPU_KEY`, the URL from `VQPU_URL` (see flows.tasks).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from flows.artifacts import png_artifact, table_artifact
from flows.tasks import Submission, connect, retry_if_transient, submit
from vqpu_client import Client, errors
from vqpu_protocol.rundir import ResultDocument, RunOptions

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NATIVE = ("cz", "id", "rz", "sx", "x")


class SweepError(errors.VQPUError, ValueError):
    """The sweep cannot be run as asked: epochs the device does not have, or both `epochs` and `last`."""


@dataclass(frozen=True)
class Benchmark:
    name: str
    circuit: str
    summary: str


def _h(q: int) -> str:
    """Hadamard up to a global phase, natively."""
    return f"rz(pi/2) q[{q}];\nsx q[{q}];\nrz(pi/2) q[{q}];\n"


def _measure(qubits: Sequence[int]) -> str:
    return "".join(f"measure q[{q}] -> c[{i}];\n" for i, q in enumerate(qubits))


def _program(qubits: Sequence[int], body: str) -> str:
    return f"OPENQASM 2.0;\nqreg q[{max(qubits) + 1}];\ncreg c[{len(qubits)}];\n{body}{_measure(qubits)}"


def amplified_identity(repetitions: int) -> str:
    """The main job's circuit: each layer is the identity (CZ.CZ on (0, 1), X.X on q0, SX^4 on q1)."""
    layer = "cz q[0],q[1];\ncz q[0],q[1];\nx q[0];\nx q[0];\n" + "sx q[1];\n" * 4
    return "OPENQASM 2.0;\nqreg q[2];\ncreg c[2];\n" + layer * repetitions + "measure q -> c;\n"


def ghz(chain: Sequence[int]) -> str:
    """H on the first qubit, then CNOT (H.CZ.H on the target) down a chain of coupled qubits."""
    body = _h(chain[0]) + "".join(_h(t) + f"cz q[{c}],q[{t}];\n" + _h(t) for c, t in pairwise(chain))
    return _program(chain, body)


def qaoa_maxcut(path: Sequence[int], gamma_pi: float = 0.15, beta_pi: float = 0.375) -> str:
    """One QAOA layer for MaxCut on a path: exp(-i gamma ZZ) per edge (CNOT, RZ(2 gamma), CNOT), then
    RX(2 beta) on every qubit (H.RZ.H); angles in units of pi."""
    body = "".join(_h(q) for q in path)
    for a, b in pairwise(path):
        cnot = _h(b) + f"cz q[{a}],q[{b}];\n" + _h(b)
        body += cnot + f"rz({2 * gamma_pi}*pi) q[{b}];\n" + cnot
    body += "".join(_h(q) + f"rz({2 * beta_pi}*pi) q[{q}];\n" + _h(q) for q in path)
    return _program(path, body)


def benchmarks(repetitions: int = 10) -> tuple[Benchmark, ...]:
    return (
        Benchmark("amplified-identity", amplified_identity(repetitions), f"{repetitions} identity layers on (0, 1)"),
        Benchmark("ghz-4", ghz([1, 2, 3, 4]), "GHZ on the chain 1-2-3-4"),
        Benchmark("qaoa-maxcut-4", qaoa_maxcut([5, 6, 7, 8]), "QAOA p=1 MaxCut on the path 5-6-7-8"),
    )


# --- distributions ----------------------------------------------------------------------------


def ideal_distribution(circuit: str) -> dict[str, float]:
    """The exact output distribution of a native OpenQASM 2 circuit, keyed as the runner's counts are
    (classical bit 0 rightmost); outcomes below 1e-12 are dropped."""
    from qiskit import QuantumCircuit, qasm2
    from qiskit.circuit.library import get_standard_gate_name_mapping
    from qiskit.quantum_info import Statevector

    standard = get_standard_gate_name_mapping()
    builtins = [
        qasm2.CustomInstruction(n, len(standard[n].params), standard[n].num_qubits, type(standard[n]), builtin=True)
        for n in NATIVE
    ]
    parsed = qasm2.loads(circuit, include_path=(), custom_instructions=builtins)
    unitary = QuantumCircuit(parsed.num_qubits)
    measured: dict[int, int] = {}
    for item in parsed.data:
        if item.operation.name == "measure":
            measured[parsed.find_bit(item.clbits[0]).index] = parsed.find_bit(item.qubits[0]).index
        elif item.operation.name != "barrier":
            unitary.append(item.operation, [parsed.find_bit(q).index for q in item.qubits])
    qargs = [measured[c] for c in range(parsed.num_clbits)]
    probabilities = Statevector(unitary).probabilities_dict(qargs=qargs)
    return {str(key): float(p) for key, p in probabilities.items() if p > 1e-12}


def normalised(counts: Mapping[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {key: n / total for key, n in counts.items()}


def tv_distance(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Total-variation distance, 1/2 sum |p - q| over every outcome of either."""
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def sampling_floor(ideal: Mapping[str, float], shots: int) -> float:
    """The expected TV between `shots` samples of `ideal` and `ideal` itself (normal approximation of
    E|binomial - mean|): what TV against the ideal is even without noise."""
    return 0.5 * sum(math.sqrt(2 * p * (1 - p) / (math.pi * shots)) for p in ideal.values())


# --- choosing epochs ----------------------------------------------------------------------------


def select_epochs(available: Sequence[int], epochs: Sequence[int] | None, last: int | None) -> list[int]:
    """Every epoch, the ones asked for (all must exist), or the `last` N; ascending."""
    if epochs is not None and last is not None:
        raise SweepError("give either epochs or last, not both")
    if last is not None:
        if last < 1:
            raise SweepError(f"last must be >= 1, not {last}")
        return sorted(available)[-last:]
    if epochs is None:
        return sorted(available)
    missing = sorted(set(epochs) - set(available))
    if missing:
        raise SweepError(f"the device has no epoch {missing}; it has {sorted(available)}")
    if not epochs:
        raise SweepError("epochs is empty: give at least one, or none for all")
    return sorted(set(epochs))


# --- running ------------------------------------------------------------------------------------


class Outcome(BaseModel):
    """One submitted benchmark: its result, or why there is none."""

    task_id: str
    result: ResultDocument | None
    error: str | None


@task(
    name="run-sweep-tasks",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def run_sweep_tasks(submissions: Sequence[Submission], timeout_s: float, url: str | None = None) -> list[Outcome]:
    """Submit all (the service runs them side by side; each key derives from the flow run, so a retry
    submits nothing twice), then wait for each. A task that failed is an outcome, not an exception."""
    with connect(url) as client:
        views = [submit(client, s) for s in submissions]
        outcomes = []
        for view in views:
            final = client.wait(view.id, timeout_s=timeout_s)
            try:
                outcomes.append(Outcome(task_id=view.id, result=client.result_of(final), error=None))
            except errors.TaskError as exc:
                outcomes.append(Outcome(task_id=view.id, result=None, error=str(exc)))
        return outcomes


class SweepRow(BaseModel):
    epoch: int
    benchmark: str
    status: str
    """COMPLETED, NOT_ADMISSIBLE (no task: the epoch cannot run it), or the failed task's state."""
    task_id: str | None
    tv_ideal: float | None
    tv_previous_epoch: float | None
    """TV to the same benchmark's output at the previous epoch of the sweep (None for the first)."""
    sampling_floor: float
    shots: int
    seed: int
    snapshot_sha256: str | None
    detail: str


class SweepReport(BaseModel):
    device: str
    epochs: list[int]
    shots: int
    seed: int
    noise_model: str
    rows: list[SweepRow]


def _not_admissible(
    client: Client, device: str, bench: Benchmark, epoch: int, options: RunOptions, shots: int
) -> str | None:
    view = client.viability(device, bench.circuit, epoch=epoch, options=options, shots=shots)
    if view.admissible:
        return None
    if view.refusal is not None:
        return f"{view.refusal.code}: {view.refusal.message}"
    return "; ".join(f"{v.code}: {v.message}" for v in view.violations)


@flow(name="calibration-epoch-sweep")
def calibration_epoch_sweep(
    device: str = "ibm-fez",
    epochs: list[int] | None = None,
    last: int | None = None,
    shots: int = 2000,
    seed: int = 2025,
    noise_model: Literal["paper", "relaxation"] = "paper",
    repetitions: int = 10,
    timeout_s: float = 1800.0,
    save_dir: str | None = None,
    url: str | None = None,
) -> SweepReport:
    """Run the benchmark set on every chosen epoch of `device` (all epochs by default; `epochs=[...]`
    or the `last` N), all with `seed`; a table artifact, a PNG plot artifact, and the rows.
    `save_dir` also writes sweep.png there."""
    logger = get_run_logger()
    if shots < 1:
        raise SweepError(f"shots must be >= 1, not {shots}")
    options = RunOptions(noise_model=noise_model)
    bench_set = benchmarks(repetitions)
    with connect(url) as client:
        chosen = select_epochs([e.epoch for e in client.epochs(device)], epochs, last)
        blocked = {
            (e, b.name): _not_admissible(client, device, b, e, options, shots) for e in chosen for b in bench_set
        }
    runnable = [(e, b) for e in chosen for b in bench_set if blocked[(e, b.name)] is None]
    submissions = [
        Submission(device=device, circuit=b.circuit, shots=shots, seed=seed, epoch=e, options=options, label=b.name)
        for e, b in runnable
    ]
    logger.info("%s: %d epochs x %d benchmarks, %d tasks", device, len(chosen), len(bench_set), len(submissions))
    outcomes = dict(zip(runnable, run_sweep_tasks(submissions, timeout_s, url), strict=True))
    ideals = {b.name: ideal_distribution(b.circuit) for b in bench_set}
    rows = _rows(chosen, bench_set, blocked, outcomes, ideals, shots, seed)
    key = "epoch-sweep-" + re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-")
    table_artifact(key, [r.model_dump() for r in rows], f"{device}: TV per epoch and benchmark ({shots} shots)")
    png_artifact(
        f"{key}-plot",
        plot(device, rows),
        f"{device}: TV against ideal and between consecutive epochs",
        save_to=Path(save_dir) / "sweep.png" if save_dir else None,
        title=f"Calibration drift on {device}",
    )
    return SweepReport(device=device, epochs=chosen, shots=shots, seed=seed, noise_model=noise_model, rows=rows)


def _rows(
    chosen: Sequence[int],
    bench_set: Sequence[Benchmark],
    blocked: Mapping[tuple[int, str], str | None],
    outcomes: Mapping[tuple[int, Benchmark], Outcome],
    ideals: Mapping[str, dict[str, float]],
    shots: int,
    seed: int,
) -> list[SweepRow]:
    rows: list[SweepRow] = []
    previous: dict[str, dict[str, float] | None] = {}
    for epoch in chosen:
        for bench in bench_set:
            floor = sampling_floor(ideals[bench.name], shots)
            base = {"epoch": epoch, "benchmark": bench.name, "sampling_floor": floor, "shots": shots, "seed": seed}
            reason = blocked[(epoch, bench.name)]
            outcome = outcomes.get((epoch, bench))
            result = outcome.result if outcome is not None else None
            if outcome is None or result is None:
                status = "NOT_ADMISSIBLE" if reason is not None else "FAILED"
                detail = reason if reason is not None else (outcome.error if outcome else None) or ""
                rows.append(
                    SweepRow(
                        **base,
                        status=status,
                        task_id=outcome.task_id if outcome else None,
                        tv_ideal=None,
                        tv_previous_epoch=None,
                        snapshot_sha256=None,
                        detail=detail,
                    )
                )
                previous[bench.name] = None
                continue
            dist = normalised(result.counts)
            before = previous.get(bench.name)
            rows.append(
                SweepRow(
                    **base,
                    status="COMPLETED",
                    task_id=outcome.task_id,
                    tv_ideal=tv_distance(dist, ideals[bench.name]),
                    tv_previous_epoch=tv_distance(dist, before) if before is not None else None,
                    snapshot_sha256=result.provenance.snapshot_sha256,
                    detail=f"epoch {result.provenance.epoch}, {result.provenance.method}",
                )
            )
            previous[bench.name] = dist
    return rows


def plot(device: str, rows: Sequence[SweepRow]) -> Figure:
    """TV against ideal (with its sampling floor) and TV to the previous epoch, against epoch, per benchmark."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4), dpi=100, layout="constrained")
    ideal_ax, step_ax = figure.subplots(1, 2)
    for name in dict.fromkeys(r.benchmark for r in rows):
        mine = [r for r in rows if r.benchmark == name]
        done = [r for r in mine if r.tv_ideal is not None]
        (line,) = ideal_ax.plot([r.epoch for r in done], [r.tv_ideal for r in done], marker="o", label=name)
        ideal_ax.axhline(mine[0].sampling_floor, color=line.get_color(), linestyle=":", linewidth=0.8)
        steps = [r for r in mine if r.tv_previous_epoch is not None]
        step_ax.plot([r.epoch for r in steps], [r.tv_previous_epoch for r in steps], marker="o", label=name)
    ideal_ax.set(title="TV to the ideal output (dotted: sampling floor)", xlabel="epoch", ylabel="TV distance")
    step_ax.set(title="TV to the previous epoch's output", xlabel="epoch", ylabel="TV distance")
    for ax in (ideal_ax, step_ax):
        ax.set_ylim(bottom=0)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    ideal_ax.legend(fontsize="small")
    figure.suptitle(f"{device}: calibration-epoch sweep")
    return figure
