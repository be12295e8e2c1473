"""Timing in the snapshot and the Target: dt, gate durations and readout length from IBM's data, the
same as qiskit-ibm-runtime's FakeFez (IBM's own loader of the same files), enough for Qiskit's
schedulers; a device without timing says so. A snapshot without `dt` keeps the hash it always had."""

from __future__ import annotations

import json
import warnings
from functools import cache

import pytest
from qiskit import QuantumCircuit, transpile
from qiskit.circuit import Delay
from qiskit.circuit.library import XGate
from qiskit.transpiler import PassManager, TranspilerError
from qiskit.transpiler.passes import ALAPScheduleAnalysis, PadDynamicalDecoupling
from qiskit_ibm_runtime.fake_provider import FakeFez

from device_registry import Snapshot, SnapshotError, catalog, parse_snapshot, topologies
from device_registry.qiskit_backend import DeviceDefectsWarning, SnapshotBackend
from device_registry.snapshot import canonical_bytes

FEZ_EDGES = [(0, 1), (1, 2), (2, 3), (3, 4)]

# sha256 of catalogue snapshots as stored before the snapshot carried `dt` or `control_flow` (computed
# with the code of ac797eb, before issue 19): a device without a dt and without control flow keeps the
# identity its stored epochs have. (The synthetic devices now declare every control-flow construct, so
# the test takes that away again: what it pins is that an absent field adds nothing to the JSON.)
PINNED = {
    "line-16": "9640fa247deaf11c7675504f8441f34a482cd1ced84e1ab19dc441019ff80a51",
    "grid-5x5-uniform": "04763feed30dfe47a0ce70e9976d1af81c15ba5665f9eee2491f244b361b48e9",
    "heavy-hex-sampled": "6696c4bf3cf9a4db05612d8c3297b099de4d338793986943b78becbce6b04233",
}


@cache
def _fake_fez() -> FakeFez:
    return FakeFez()


def _backend(snapshot: Snapshot) -> SnapshotBackend:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeviceDefectsWarning)
        return SnapshotBackend(snapshot)


# --- the snapshot ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PINNED))
def test_a_snapshot_without_dt_keeps_the_hash_it_had_before_dt_existed(name: str) -> None:
    snapshot = catalog.load(name).model_copy(update={"control_flow": []})
    assert snapshot.dt is None
    assert b'"dt"' not in snapshot.canonical_json()
    assert b'"control_flow"' not in snapshot.canonical_json()
    assert snapshot.sha256() == PINNED[name]


def test_a_stored_snapshot_without_dt_parses_and_serialises_to_the_same_bytes() -> None:
    stored = topologies.line(3).canonical_json()
    assert parse_snapshot(stored).canonical_json() == stored
    assert canonical_bytes(json.loads(stored)) == stored


def test_dt_travels_in_the_json_and_back() -> None:
    data = topologies.line(3).to_json_dict()
    timed = parse_snapshot({**data, "dt": 2.5e-10})
    assert timed.to_json_dict()["dt"] == 2.5e-10
    assert parse_snapshot(timed.canonical_json()) == timed
    assert timed.sha256() != topologies.line(3).sha256()


@pytest.mark.parametrize("dt", [0.0, -4e-9, 2.0, "4e-9"])
def test_a_dt_that_is_not_a_positive_number_of_seconds_is_refused(dt: object) -> None:
    with pytest.raises(SnapshotError, match="dt"):
        parse_snapshot({**topologies.line(3).to_json_dict(), "dt": dt})


def test_ibm_fez_carries_ibms_dt_and_durations(fez: Snapshot) -> None:
    assert fez.dt == pytest.approx(_fake_fez().dt, rel=1e-12)
    assert fez.dt == pytest.approx(4e-9, rel=1e-12)
    durations = fez.qubits[0].gate_durations
    assert {"sx", "x", "id", "rz", "measure", "reset"} <= set(durations)


# --- the Target and the backend -------------------------------------------------------------------


def test_the_backend_has_fake_fezs_dt_and_durations(fez: Snapshot) -> None:
    ours, theirs = _backend(fez), _fake_fez()
    assert ours.dt == pytest.approx(theirs.dt, rel=1e-12)
    for qubit in (0, 1, 77, 155):
        for name in ("sx", "x", "measure"):
            mine = ours.target[name][(qubit,)].duration
            assert mine == pytest.approx(theirs.target[name][(qubit,)].duration, rel=1e-12), (name, qubit)
        assert ours.instruction_durations.get("sx", [qubit]) == theirs.instruction_durations.get("sx", [qubit])
    for pair in FEZ_EDGES:
        assert ours.target["cz"][pair].duration == pytest.approx(theirs.target["cz"][pair].duration, rel=1e-12)
        assert ours.instruction_durations.get("cz", pair, unit="s") == pytest.approx(
            theirs.instruction_durations.get("cz", pair, unit="s"), rel=1e-12
        )
    assert ours.instruction_durations.get("sx", [0]) == 6  # 24 ns in samples of 4 ns
    assert ours.target["reset"][(0,)].duration == pytest.approx(fez.qubits[0].gate_durations["reset"])


def _bell_with_idle() -> QuantumCircuit:
    circuit = QuantumCircuit(3, 2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.x(2)
    circuit.delay(2, 0, unit="us")  # qubit 0 waits, qubit 1 idles beside it: room for a DD sequence on both
    circuit.measure([0, 1], [0, 1])
    return circuit


def test_alap_scheduling_and_dynamical_decoupling_work_on_ibm_fez(fez: Snapshot) -> None:
    backend = _backend(fez)
    scheduled = transpile(_bell_with_idle(), backend, initial_layout=[0, 1, 2], scheduling_method="alap")
    delays = [inst for inst in scheduled.data if isinstance(inst.operation, Delay)]
    assert delays and all(inst.operation.unit == "dt" for inst in delays)
    assert scheduled.estimate_duration(backend.target, unit="s") > 1e-6  # the readout alone is 1.56 µs

    durations = backend.instruction_durations
    native = transpile(_bell_with_idle(), backend, initial_layout=[0, 1, 2], optimization_level=0)
    decoupled = PassManager(
        [
            ALAPScheduleAnalysis(durations),
            PadDynamicalDecoupling(durations, dd_sequence=[XGate(), XGate()], target=backend.target),
        ]
    ).run(native)
    assert decoupled.count_ops()["x"] >= native.count_ops().get("x", 0) + 4  # X X on qubits 0 and 1


def test_a_device_without_timing_says_so_instead_of_guessing() -> None:
    line = topologies.line(3)
    backend = _backend(line)
    assert backend.dt is None
    assert backend.target["sx"][(0,)].duration is None
    assert backend.target["rz"][(0,)].duration is None
    with pytest.raises(TranspilerError, match=r"[Dd]uration"):
        transpile(_bell_with_idle(), backend, initial_layout=[0, 1, 2], scheduling_method="alap")
