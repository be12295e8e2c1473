"""Idle noise: under `relaxation` a delay relaxes its qubit with the calibrated T1/T2 (Aer's
`RelaxationNoisePass` convention); under `paper` it is a noiseless wait, and the provenance says which.

The density-matrix method makes the probabilities exact, so counts differ from the closed forms by
sampling alone: the tolerance is five binomial standard deviations.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import pytest
from qiskit import QuantumCircuit, qasm3, transpile

from device_registry import Snapshot, catalog, topologies
from device_registry.admissibility import Checker
from device_registry.qiskit_backend import DeviceDefectsWarning, SnapshotBackend
from runner import pipeline
from runner.circuit import circuit_stats, parse
from runner.errors import InvalidPayload
from runner.noise import idle_relaxation
from runner.pipeline import Caches
from runner.rundir import RunInputs
from vqpu_protocol.codes import ErrorCode
from vqpu_protocol.pricing import idle_noisy
from vqpu_protocol.rundir import ResultDocument, RunOptions, TaskDocument

SHOTS = 20_000
DELAY = 100e-6


def _run(source: str, snapshot: Snapshot, caches: Caches | None = None, **options: Any) -> ResultDocument:
    task = TaskDocument.model_validate(
        {
            "task_id": "t",
            "circuit": source,
            "dialect": "qasm3",
            "shots": SHOTS,
            "seed": 5,
            "snapshot_sha256": snapshot.sha256(),
            "options": options,
        }
    )
    return pipeline.execute(RunInputs(task=task, snapshot=snapshot), caches or Caches())


def _p1(result: ResultDocument) -> float:
    return result.counts.get("1", 0) / result.shots


def _close(measured: float, expected: float) -> bool:
    return abs(measured - expected) <= 5 * math.sqrt(max(expected * (1 - expected), 1e-4) / SHOTS)


def _excite_wait_measure(delay: str, qubit: int = 0) -> str:
    return f"OPENQASM 3.0;\nbit[1] c;\nx ${qubit};\ndelay[{delay}] ${qubit};\nc[0] = measure ${qubit};\n"


def _t1(snapshot: Snapshot, qubit: int) -> float:
    t1 = snapshot.qubits[qubit].t1
    assert t1 is not None
    return t1


def _backend(snapshot: Snapshot) -> SnapshotBackend:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeviceDefectsWarning)
        return SnapshotBackend(snapshot)


def test_an_excited_qubit_decays_over_a_delay_as_its_t1_predicts_under_relaxation(fez: Snapshot) -> None:
    # Readout and gate depolarizing off: what is left is relaxation over the x gate and the delay.
    only_relaxation = {"disable": ["readout", "gate_1q"]}
    result = _run(_excite_wait_measure("100us"), fez, noise_model="relaxation", noise=only_relaxation)
    x_duration = fez.qubits[0].gate_durations["x"]
    expected = math.exp(-(DELAY + x_duration) / _t1(fez, 0))
    assert 0.10 < expected < 0.16  # T1 of Fez qubit 0 is 48.8 µs
    assert _close(_p1(result), expected), (_p1(result), expected)
    assert result.provenance.idle_noise == "thermal_relaxation"
    assert result.provenance.method == "density_matrix"


def test_with_all_of_fezs_noise_the_delay_still_dominates_and_paper_keeps_the_qubit_excited(fez: Snapshot) -> None:
    relaxed = _run(_excite_wait_measure("100us"), fez, noise_model="relaxation")
    paper = _run(_excite_wait_measure("100us"), fez, noise_model="paper")
    decay = math.exp(-DELAY / _t1(fez, 0))
    assert abs(_p1(relaxed) - decay) < 0.03  # readout flips move it by about a percent
    assert _p1(paper) > 0.97
    assert paper.provenance.idle_noise == "none"


def test_a_delay_in_dt_is_converted_with_the_snapshots_dt(fez: Snapshot) -> None:
    assert fez.dt == pytest.approx(4e-9)
    in_dt = _run(_excite_wait_measure("25000dt"), fez, noise_model="relaxation")
    in_us = _run(_excite_wait_measure("100us"), fez, noise_model="relaxation")
    assert in_dt.counts == in_us.counts  # 25000 dt is 100 µs: the same channel, the same seed


@pytest.mark.parametrize(("noise", "factor"), [({"scale": {"relaxation": 2.0}}, 2.0), ({"disable": ["relaxation"]}, 0)])
def test_the_relaxation_factor_scales_or_removes_idle_relaxation_too(
    fez: Snapshot, noise: dict[str, Any], factor: float
) -> None:
    options = {"scale": noise.get("scale", {}), "disable": ["readout", "gate_1q", *noise.get("disable", [])]}
    result = _run(_excite_wait_measure("100us"), fez, noise_model="relaxation", noise=options)
    x_duration = fez.qubits[0].gate_durations["x"]
    expected = math.exp(-factor * (DELAY + x_duration) / _t1(fez, 0))
    assert _close(_p1(result), expected), (_p1(result), expected)
    assert result.provenance.idle_noise == ("thermal_relaxation" if factor else "none")


def test_a_delay_of_a_billion_seconds_is_full_relaxation(fez: Snapshot) -> None:
    result = _run(_excite_wait_measure("1e9s"), fez, noise_model="relaxation", noise={"disable": ["readout"]})
    assert result.counts == {"0": SHOTS}


def test_a_delay_in_dt_on_a_device_without_dt_is_refused_by_admission_and_by_the_runner() -> None:
    line = topologies.line(3)
    assert line.dt is None
    source = _excite_wait_measure("100dt")
    [violation] = Checker(source, "qasm3", line, 10).run()
    assert violation.code == "PARSE_ERROR" and "dt" in violation.message
    with pytest.raises(InvalidPayload) as refused:
        _run(source, line)
    assert refused.value.code == ErrorCode.PARSE_ERROR
    assert _run(_excite_wait_measure("100ns"), line).counts == {"1": SHOTS}  # SI units need no dt


@pytest.mark.parametrize("duration", ["-100ns", "1e999s", "2 * 100ns", "100.5dt", "t"])
def test_a_delay_that_is_not_a_finite_literal_is_refused_at_submit_and_by_the_runner(
    fez: Snapshot, duration: str
) -> None:
    source = _excite_wait_measure(duration)
    [violation] = Checker(source, "qasm3", fez, 10).run()
    assert violation.code == "PARSE_ERROR", violation
    with pytest.raises(InvalidPayload) as refused:
        _run(source, fez, noise_model="relaxation")
    assert refused.value.code == ErrorCode.PARSE_ERROR


def _alap_ghz3(snapshot: Snapshot) -> str:
    circuit = QuantumCircuit(3, 3)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.delay(20, 1, unit="us")
    circuit.cx(1, 2)
    circuit.measure(range(3), range(3))
    scheduled = transpile(
        circuit, _backend(snapshot), initial_layout=[0, 1, 2], scheduling_method="alap", optimization_level=0
    )
    assert scheduled.num_qubits == snapshot.num_qubits
    source: str = qasm3.dumps(scheduled)
    return source


def test_an_alap_scheduled_circuit_activates_only_the_qubits_it_uses(fez: Snapshot) -> None:
    source = _alap_ghz3(fez)
    padded = {line.split("$")[-1].rstrip(";") for line in source.splitlines() if line.startswith("delay")}
    assert len(padded) > 100  # the scheduler padded (nearly) every idle qubit of the device
    admitted = Checker(source, "qasm3", fez, 10)
    assert admitted.run() == []
    assert admitted.stats.active_qubits == frozenset({0, 1, 2})
    assert admitted.stats == circuit_stats(parse(source, "qasm3", fez))
    result = _run(source, fez, noise_model="relaxation")
    assert result.provenance.active_qubits == [0, 1, 2]
    assert result.provenance.method == "density_matrix"
    assert result.provenance.idle_noise == "thermal_relaxation"
    assert sum(n for key, n in result.counts.items() if key in ("000", "111")) > 0.7 * SHOTS


@pytest.mark.parametrize(
    "block",
    [
        "if (!c[0]) { delay[100us] $1; }",
        "for uint i in [0:3] { delay[25us] $1; }",
        "if (!c[0]) { for uint i in [0:1] { delay[50us] $1; } } else { x $1; }",
    ],
    ids=["if", "for", "for-in-if"],
)
def test_a_delay_inside_a_block_relaxes_as_the_same_delay_at_top_level_does_in_aer(fez: Snapshot, block: str) -> None:
    """c[0] is never measured, so each block runs on every shot: 100 µs of waiting in all, which Aer's
    own pass (NoiseModel.from_backend on the same calibration) relaxes when it is written at top level."""
    from qiskit_aer import AerSimulator
    from qiskit_aer.noise import NoiseModel

    source = f"OPENQASM 3.0;\nbit[2] c;\nx $1;\n{block}\nc[1] = measure $1;\n"
    admitted = Checker(source, "qasm3", fez, 10)
    assert admitted.run() == []
    assert admitted.stats == circuit_stats(parse(source, "qasm3", fez))
    assert admitted.stats.delayed_qubits == frozenset({1})
    result = _run(source, fez, noise_model="relaxation")
    assert result.provenance.idle_noise == "thermal_relaxation"
    served = sum(n for key, n in result.counts.items() if key[0] == "1") / SHOTS

    top_level = QuantumCircuit(2, 2)
    top_level.x(1)
    top_level.delay(DELAY, 1, unit="s")
    top_level.measure(1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeviceDefectsWarning)
        model = NoiseModel.from_backend(SnapshotBackend(fez))
    counts = AerSimulator(noise_model=model, seed_simulator=7).run(top_level, shots=SHOTS).result().get_counts()
    reference = sum(n for key, n in counts.items() if key[0] == "1") / SHOTS
    assert reference < 0.75  # T1 of qubit 1 is 256 µs: the wait shows
    assert abs(served - reference) <= 5 * math.sqrt(2 * reference * (1 - reference) / SHOTS), (served, reference)
    paper = _run(source, fez, noise_model="paper")
    assert paper.provenance.idle_noise == "none"
    assert sum(n for key, n in paper.counts.items() if key[0] == "1") / SHOTS > 0.95


@pytest.mark.parametrize(
    "options",
    [
        {"noise_model": "paper"},
        {"noise_model": "relaxation"},
        {"noise_model": "relaxation", "noise": {"disable": ["relaxation"]}},
        {"noise_model": "relaxation", "noise": {"scale": {"relaxation": 0.5}}},
    ],
)
@pytest.mark.parametrize("device", ["ibm-fez", "ibm-fez-ideal", "grid-5x5-uniform", "line-16"])
def test_admission_prices_idle_noise_exactly_where_the_runner_applies_it(options: dict[str, Any], device: str) -> None:
    snapshot = catalog.load(device)
    run_options = RunOptions.model_validate(options)
    for delayed in (frozenset(), frozenset({0}), frozenset({1, 2})):
        runner_pass = idle_relaxation(snapshot, delayed, run_options.noise_model, run_options.noise)
        assert idle_noisy(snapshot, delayed, run_options) == (runner_pass is not None), (device, options, delayed)
