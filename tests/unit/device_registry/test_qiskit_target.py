"""Snapshot -> Qiskit Target: a new one per call; faulty qubits and couplers carry no instructions; readout
keeps its asymmetry."""

from __future__ import annotations

from qiskit.circuit.library import CXGate
from qiskit.transpiler import InstructionProperties, Target

from device_registry import Snapshot, parse_snapshot, topologies
from device_registry.calibration import attach_uniform
from device_registry.qiskit_target import target_from_snapshot


def _line_with_faults() -> Snapshot:
    """A calibrated 4-qubit line 0-1-2-3 with qubit 3 OFFLINE and coupler (0, 1) UNAVAILABLE."""
    data = attach_uniform(topologies.line(4, device_id="faulty-line")).to_json_dict()
    data["qubits"][3]["status"] = "OFFLINE"
    data["edges"][0]["status"] = "UNAVAILABLE"
    return parse_snapshot(data)


def test_an_offline_qubit_has_no_instructions_in_the_target() -> None:
    target = target_from_snapshot(_line_with_faults())
    for name in ("sx", "x", "id", "rz", "measure", "reset", "delay"):
        assert set(target[name]) == {(0,), (1,), (2,)}, name
    assert target.num_qubits == 4


def test_only_available_couplers_between_online_qubits_can_run_a_two_qubit_gate() -> None:
    # (0, 1) is UNAVAILABLE and (2, 3) touches the OFFLINE qubit: only (1, 2) remains, both ways
    assert set(target_from_snapshot(_line_with_faults())["cz"]) == {(1, 2), (2, 1)}


def test_a_healthy_device_keeps_every_coupler_in_both_directions() -> None:
    snap = attach_uniform(topologies.line(4))
    assert set(target_from_snapshot(snap)["cz"]) == {(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2)}


def test_a_directed_device_keeps_only_its_listed_directions() -> None:
    snap = attach_uniform(topologies.from_edges(3, [(0, 1), (2, 1)], directed=True))
    assert set(target_from_snapshot(snap)["cz"]) == {(0, 1), (2, 1)}


def test_measure_properties_carry_both_flip_probabilities_of_every_qubit(fez: Snapshot) -> None:
    measure = target_from_snapshot(fez)["measure"]
    for q in fez.qubits:
        props = measure[(q.index,)]
        assert props.prob_meas1_prep0 == q.prob_meas1_prep0
        assert props.prob_meas0_prep1 == q.prob_meas0_prep1
        assert props.error == q.readout_error
    assert any(p.prob_meas0_prep1 != p.prob_meas1_prep0 for p in measure.values())


def test_an_ideal_device_target_carries_no_error_anywhere(fez_ideal: Snapshot) -> None:
    target = target_from_snapshot(fez_ideal)
    errors = [p.error for name in target.operation_names for p in target[name].values() if p is not None]
    assert errors and all(e is None for e in errors)
    assert all(qp.t1 is None and qp.t2 is None for qp in target.qubit_properties)


def _contents(target: Target) -> dict[str, dict[object, tuple[object, object] | None]]:
    """Each instruction's error and duration per qubit tuple, and each qubit's T1 and T2, as comparable data."""
    out: dict[str, dict[object, tuple[object, object] | None]] = {
        name: {qargs: None if p is None else (p.error, p.duration) for qargs, p in target[name].items()}
        for name in target.operation_names
    }
    out["qubit_properties"] = {i: (qp.t1, qp.t2) for i, qp in enumerate(target.qubit_properties)}
    return out


def test_each_call_builds_a_new_target_so_mutating_one_cannot_leak_into_the_next() -> None:
    snap = _line_with_faults()
    first, second = target_from_snapshot(snap), target_from_snapshot(snap)
    assert first is not second
    assert _contents(first) == _contents(second)
    first.add_instruction(CXGate(), {(1, 2): None})
    first.update_instruction_properties("cz", (1, 2), InstructionProperties(error=0.5))
    assert _contents(target_from_snapshot(snap)) == _contents(second) != _contents(first)
