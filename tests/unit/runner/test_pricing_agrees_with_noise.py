"""`pricing.is_noisy` (what admission prices with) against the runner's real noise model (what runs).

The runner picks its method from whether the noise model it builds is empty; admission picks it from
`is_noisy`, which reads the same calibration without Qiskit. They must agree, or a task is priced as
one method and run as another.
"""

from __future__ import annotations

import itertools

import pytest

from device_registry import Snapshot, calibration, parse_snapshot, topologies
from runner.noise import NoiseCache
from vqpu_protocol.pricing import is_noisy, plan_method
from vqpu_protocol.rundir import RunOptions

KINDS = ("gate_1q", "gate_2q", "readout", "relaxation")


def _uniform(**fields: float) -> Snapshot:
    return calibration.attach_uniform(topologies.line(4), calibration.Calibration(**fields))


def _without(snapshot: Snapshot, *fields: str, edges: bool = False) -> Snapshot:
    data = snapshot.to_json_dict()
    for q in data["qubits"]:
        for f in fields:
            if f in q:
                q[f] = None if f != "gate_durations" else {}
    if edges:
        for e in data["edges"]:
            e["error"] = None
    return parse_snapshot(data)


def snapshots(fez: Snapshot, fez_ideal: Snapshot) -> dict[str, Snapshot]:
    uniform = _uniform()
    return {
        "fez": fez,
        "fez-ideal": fez_ideal,
        "uniform": uniform,
        "readout-only": _without(uniform, "error_1q", "t1", "t2", edges=True),
        "relaxation-only": _without(
            uniform, "error_1q", "readout_error", "prob_meas0_prep1", "prob_meas1_prep0", edges=True
        ),
        "t1-only": _without(
            uniform, "error_1q", "t2", "readout_error", "prob_meas0_prep1", "prob_meas1_prep0", edges=True
        ),
        "gates-within-relaxation": _uniform(error_1q=1e-6, error_2q=1e-6, readout_error=0.0),
        "untimed": _without(uniform, "gate_durations"),
        "edges-only": _without(
            uniform, "error_1q", "t1", "t2", "readout_error", "prob_meas0_prep1", "prob_meas1_prep0"
        ),
    }


OPTIONS = [
    {},
    {"noise_model": "relaxation"},
    *({"noise": {"disable": list(off)}} for off in itertools.combinations(KINDS[:3], 2)),
    {"noise": {"disable": list(KINDS[:3])}},
    *(
        {"noise_model": "relaxation", "noise": {"disable": list(off)}}
        for r in (2, 3, 4)
        for off in itertools.combinations(KINDS, r)
    ),
    {"noise_model": "relaxation", "noise": {"scale": {"relaxation": 0.0, "gate_1q": 0.0}}},
    {"noise_model": "relaxation", "noise": {"scale": {"relaxation": 2.0}, "disable": ["gate_1q", "gate_2q"]}},
    {"noise": {"scale": {"readout": 0.0, "gate_1q": 3.0}, "disable": ["gate_2q"]}},
]


@pytest.mark.parametrize("given", OPTIONS, ids=lambda o: str(o).replace(" ", ""))
def test_admission_and_the_runner_agree_whether_a_run_is_noisy(
    fez: Snapshot, fez_ideal: Snapshot, given: dict[str, object]
) -> None:
    options = RunOptions.model_validate(given)
    cache = NoiseCache()
    disagreements = []
    for name, snapshot in snapshots(fez, fez_ideal).items():
        for qubits in (frozenset({0}), frozenset({0, 1}), frozenset({1, 2, 3})):
            built = cache.get(snapshot, qubits, options.noise_model, options.noise)
            if is_noisy(snapshot, qubits, options) != (built.model is not None):
                disagreements.append((name, sorted(qubits), built.channels))
    assert disagreements == []


def test_both_then_choose_the_same_method(fez: Snapshot) -> None:
    options = RunOptions.model_validate({"noise_model": "relaxation", "noise": {"disable": ["readout"]}})
    qubits = frozenset(range(12))
    built = NoiseCache().get(fez, qubits, options.noise_model, options.noise)
    assert plan_method(options, 12, is_noisy(fez, qubits, options)) == plan_method(options, 12, built.model is not None)
