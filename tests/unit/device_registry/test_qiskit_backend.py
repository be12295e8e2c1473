"""SnapshotBackend: a Qiskit backend that describes a snapshot's device and leaves its defects out, loudly."""

from __future__ import annotations

import warnings

import pytest
from qiskit import QuantumCircuit, transpile
from qiskit.transpiler import Target
from qiskit_aer.noise import NoiseModel

from device_registry import Snapshot, parse_snapshot, topologies
from device_registry.calibration import attach_uniform
from device_registry.qiskit_backend import DeviceDefectsWarning, SnapshotBackend
from device_registry.qiskit_target import target_from_snapshot

DEAD_QUBIT = 4
DEAD_EDGE = (0, 1)


def _faulty_grid() -> Snapshot:
    """A calibrated 3x3 grid with the centre qubit OFFLINE and coupler (0, 1) UNAVAILABLE.

    What is left is the path 1-2-5-8-7-6-3-0 around the rim.
    """
    data = attach_uniform(topologies.grid(3, 3, device_id="faulty-grid")).with_epoch(7).to_json_dict()
    data["qubits"][DEAD_QUBIT]["status"] = "OFFLINE"
    for edge in data["edges"]:
        if (edge["source"], edge["target"]) == DEAD_EDGE:
            edge["status"] = "UNAVAILABLE"
    return parse_snapshot(data)


def _backend(snapshot: Snapshot) -> SnapshotBackend:
    with pytest.warns(DeviceDefectsWarning):
        return SnapshotBackend(snapshot)


def _contents(target: Target) -> dict[str, object]:
    out: dict[str, object] = {
        name: {qargs: None if p is None else (p.error, p.duration) for qargs, p in target[name].items()}
        for name in target.operation_names
    }
    out["qubit_properties"] = [(qp.t1, qp.t2) for qp in target.qubit_properties]
    return out


def test_the_backend_target_is_what_target_from_snapshot_builds_and_is_built_once() -> None:
    snap = _faulty_grid()
    backend = _backend(snap)
    assert _contents(backend.target) == _contents(target_from_snapshot(snap))
    assert backend.target is backend.target
    assert backend.num_qubits == 9


def test_the_backend_is_named_after_the_device_and_describes_its_epoch() -> None:
    snap = _faulty_grid()
    backend = _backend(snap)
    assert backend.name == "faulty-grid"
    assert "epoch 7" in backend.description
    assert backend.snapshot is snap
    assert backend.max_circuits is None


def test_run_options_have_defaults_that_the_constructor_can_override() -> None:
    snap = attach_uniform(topologies.line(3))
    assert SnapshotBackend(snap).options.shots == 1024
    assert SnapshotBackend(snap).options.seed_simulator is None
    assert SnapshotBackend(snap, shots=10, seed_simulator=3).options.shots == 10


def test_the_warning_lists_exactly_the_offline_qubits_and_unavailable_couplers() -> None:
    with pytest.warns(DeviceDefectsWarning) as record:
        SnapshotBackend(_faulty_grid())
    [warning] = record
    assert isinstance(warning.message, DeviceDefectsWarning)
    assert warning.message.offline_qubits == (DEAD_QUBIT,)
    assert warning.message.unavailable_edges == (DEAD_EDGE,)
    assert "[4]" in str(warning.message) and "[(0, 1)]" in str(warning.message)


def test_fez_warns_about_its_seven_unavailable_couplers(fez: Snapshot) -> None:
    with pytest.warns(DeviceDefectsWarning, match="7 UNAVAILABLE") as record:
        SnapshotBackend(fez)
    [warning] = record
    assert isinstance(warning.message, DeviceDefectsWarning)
    dead = {(e.source, e.target) for e in fez.edges if not e.available}
    assert len(dead) == 7 and set(warning.message.unavailable_edges) == dead
    assert warning.message.offline_qubits == ()


def test_a_device_without_defects_builds_without_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SnapshotBackend(topologies.heavy_hex(2, 8))
        SnapshotBackend(attach_uniform(topologies.line(4)))


def test_run_refuses_because_the_backend_only_describes_the_device() -> None:
    backend = SnapshotBackend(attach_uniform(topologies.line(2)))
    with pytest.raises(NotImplementedError, match="describes the device only"):
        backend.run(QuantumCircuit(1))


def _placements(circuit: QuantumCircuit) -> list[tuple[str, tuple[int, ...]]]:
    return [
        (inst.operation.name, tuple(circuit.find_bit(q).index for q in inst.qubits))
        for inst in circuit.data
        if inst.operation.name != "barrier"
    ]


@pytest.mark.parametrize("optimization_level", [1, 2, 3])
def test_transpile_keeps_a_circuit_off_the_dead_qubit_and_the_dead_coupler(optimization_level: int) -> None:
    backend = _backend(_faulty_grid())
    ghz = QuantumCircuit(5)
    ghz.h(0)
    for q in range(4):
        ghz.cx(q, q + 1)
    ghz.measure_all()
    across = QuantumCircuit(2)  # laid out on the dead coupler: the router must go round the rim
    across.h(0)
    across.cx(0, 1)
    across.measure_all()
    compiled = [
        transpile(ghz, backend=backend, optimization_level=optimization_level, seed_transpiler=1),
        transpile(across, backend=backend, initial_layout=list(DEAD_EDGE), optimization_level=optimization_level),
    ]
    for circuit in compiled:
        placements = _placements(circuit)
        assert placements
        for name, qargs in placements:
            assert backend.target.instruction_supported(name, qargs), (name, qargs)
            assert DEAD_QUBIT not in qargs
            assert set(qargs) != set(DEAD_EDGE)


def test_aer_builds_a_noise_model_from_the_backend_with_no_noise_on_the_defects() -> None:
    noise = NoiseModel.from_backend(_backend(_faulty_grid()))
    assert {"cz", "sx", "x", "measure"} <= set(noise.noise_instructions)
    assert DEAD_QUBIT not in noise.noise_qubits
    assert set(noise.noise_qubits) == set(range(9)) - {DEAD_QUBIT}


@pytest.mark.slow
def test_aer_builds_a_noise_model_for_fez(fez: Snapshot) -> None:
    with pytest.warns(DeviceDefectsWarning):
        backend = SnapshotBackend(fez)
    noise = NoiseModel.from_backend(backend)
    assert len(noise.noise_qubits) == fez.num_qubits
    assert "cz" in noise.noise_instructions
