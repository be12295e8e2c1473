"""The IBM props/conf importer, checked against the raw shipped JSON and against IBM's own FakeFez loader."""

from __future__ import annotations

import copy
import gzip
import json
import re
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

import pytest
from qiskit_ibm_runtime.fake_provider import FakeFez

from device_registry import EdgeStatus, ImportFailed, Snapshot, catalog, ibm
from device_registry.qiskit_target import target_from_snapshot

Raw = dict[str, Any]


@cache
def _raw(kind: str, name: str) -> Raw:
    path = resources.files("device_registry") / "data" / "ibm" / f"{kind}_{name}.json.gz"
    data: Raw = json.loads(gzip.decompress(path.read_bytes()))
    return data


def _qubit_value(props: Raw, qubit: int, name: str) -> Any:
    return next(r["value"] for r in props["qubits"][qubit] if r["name"] == name)


def _gate_value(props: Raw, gate: str, qubits: list[int], name: str) -> Any:
    entry = next(g for g in props["gates"] if g["gate"] == gate and g["qubits"] == qubits)
    return next(p["value"] for p in entry["parameters"] if p["name"] == name)


def _broken_couplers(props: Raw) -> set[frozenset[int]]:
    return {
        frozenset(g["qubits"])
        for g in props["gates"]
        if g["gate"] == "cz" and any(p["name"] == "gate_error" and p["value"] >= 1 for p in g["parameters"])
    }


def _import(props: Raw, conf: Raw | None = None) -> Snapshot:
    return ibm.from_ibm(props, conf if conf is not None else _raw("conf", "fez"), device_id="test-device")


# --- the shipped Fez data --------------------------------------------------------------------------


def test_fez_imports_as_an_undirected_156_qubit_heron_with_its_native_gates(fez: Snapshot) -> None:
    assert fez.num_qubits == 156
    assert fez.native_gates == ["cz", "id", "rz", "sx", "x"]
    assert not fez.directed
    assert len(fez.edges) == 176
    assert fez.two_qubit_gates() == {"cz"}


def test_fez_couplings_are_exactly_the_coupling_map_of_its_configuration(fez: Snapshot) -> None:
    assert set(fez.couplings()) == {tuple(pair) for pair in _raw("conf", "fez")["coupling_map"]}


@pytest.mark.parametrize("name", ["fez", "kingston", "torino"])
def test_exactly_the_couplers_ibm_reports_with_gate_error_one_are_unavailable(name: str) -> None:
    snap = catalog.load(f"ibm-{name}")
    unavailable = [e for e in snap.edges if e.status is EdgeStatus.UNAVAILABLE]
    assert {frozenset((e.source, e.target)) for e in unavailable} == _broken_couplers(_raw("props", name))
    assert all(e.error is None for e in unavailable)
    assert all(e.error is not None and e.error < 1 for e in snap.edges if e.available)


def test_fez_has_seven_broken_couplers(fez: Snapshot) -> None:
    assert sum(not e.available for e in fez.edges) == 7


@pytest.mark.parametrize("qubit", [0, 63, 155])
def test_t1_and_t2_are_converted_from_microseconds_to_seconds(fez: Snapshot, qubit: int) -> None:
    props = _raw("props", "fez")
    assert fez.qubits[qubit].t1 == pytest.approx(_qubit_value(props, qubit, "T1") / 1e6, rel=1e-12)
    assert fez.qubits[qubit].t2 == pytest.approx(_qubit_value(props, qubit, "T2") / 1e6, rel=1e-12)


@pytest.mark.parametrize("qubit", [0, 63, 155])
def test_gate_and_readout_lengths_are_converted_from_nanoseconds_to_seconds(fez: Snapshot, qubit: int) -> None:
    props = _raw("props", "fez")
    durations = fez.qubits[qubit].gate_durations
    for gate in ("sx", "x", "id"):
        assert durations[gate] == pytest.approx(_gate_value(props, gate, [qubit], "gate_length") / 1e9, rel=1e-12)
    assert durations["measure"] == pytest.approx(_qubit_value(props, qubit, "readout_length") / 1e9, rel=1e-12)
    assert 1e-8 < durations["sx"] < 1e-7


def test_two_qubit_gate_lengths_are_converted_from_nanoseconds_to_seconds(fez: Snapshot) -> None:
    props = _raw("props", "fez")
    for e in fez.edges[:20]:
        assert e.duration == pytest.approx(_gate_value(props, "cz", [e.source, e.target], "gate_length") / 1e9)


@pytest.mark.parametrize("qubit", [0, 63, 155])
def test_readout_error_and_the_asymmetric_flip_probabilities_are_kept(fez: Snapshot, qubit: int) -> None:
    props, q = _raw("props", "fez"), fez.qubits[qubit]
    assert q.readout_error == _qubit_value(props, qubit, "readout_error")
    assert q.prob_meas0_prep1 == _qubit_value(props, qubit, "prob_meas0_prep1")
    assert q.prob_meas1_prep0 == _qubit_value(props, qubit, "prob_meas1_prep0")


def test_captured_at_is_the_last_update_date_as_utc_with_a_z_suffix(fez: Snapshot) -> None:
    assert fez.captured_at is not None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", fez.captured_at)
    raw = datetime.fromisoformat(_raw("props", "fez")["last_update_date"])
    assert datetime.fromisoformat(fez.captured_at) == raw.astimezone(UTC)


def test_a_kingston_qubit_without_t1_and_t2_imports_with_null_times_not_a_guess() -> None:
    props = _raw("props", "kingston")
    missing = [i for i, rows in enumerate(props["qubits"]) if not {"T1", "T2"} & {r["name"] for r in rows}]
    assert len(missing) == 1
    snap = catalog.load("ibm-kingston")
    lacking = snap.qubits[missing[0]]
    assert (lacking.t1, lacking.t2) == (None, None)
    assert lacking.readout_error == _qubit_value(props, missing[0], "readout_error")
    assert all(q.t1 is not None and q.t2 is not None for q in snap.qubits if q.index != missing[0])


# --- incomplete or bad input ---------------------------------------------------------------------


def test_props_with_missing_fields_still_import_with_nulls_where_data_is_missing() -> None:
    props = copy.deepcopy(_raw("props", "fez"))
    props["qubits"][3] = [r for r in props["qubits"][3] if r["name"] != "T1"]
    props["qubits"][5] = [r for r in props["qubits"][5] if r["name"] != "readout_error"]
    props["qubits"][7] = []
    del props["qubits"][155]  # the list ends early: the last qubit has no row at all
    snap = _import(props)
    assert snap.num_qubits == 156
    assert snap.qubits[3].t1 is None and snap.qubits[3].t2 is not None
    assert snap.qubits[5].readout_error is None and snap.qubits[5].prob_meas0_prep1 is not None
    for lost in (snap.qubits[7], snap.qubits[155]):
        assert (lost.t1, lost.t2, lost.readout_error, lost.prob_meas1_prep0) == (None, None, None, None)
        assert lost.online
        assert lost.error_1q is not None  # gate calibration comes from the gate table, which is intact
    assert snap.qubits[8].t1 is not None


def test_an_unsupported_unit_raises_import_failed_naming_the_unit() -> None:
    props = copy.deepcopy(_raw("props", "fez"))
    t1 = next(r for r in props["qubits"][0] if r["name"] == "T1")
    t1["unit"] = "fortnight"
    with pytest.raises(ImportFailed, match="fortnight"):
        _import(props)


def test_a_configuration_without_n_qubits_raises_import_failed() -> None:
    conf = {k: v for k, v in _raw("conf", "fez").items() if k != "n_qubits"}
    with pytest.raises(ImportFailed, match="n_qubits"):
        _import(_raw("props", "fez"), conf)


def test_a_gate_entry_without_qubits_raises_import_failed() -> None:
    # BUG (device_registry/ibm.py, _gate_table): g["qubits"] raises a bare KeyError that escapes
    # from_ibm, instead of the ImportFailed the importer promises for data it cannot convert.
    props = copy.deepcopy(_raw("props", "fez"))
    del props["gates"][0]["qubits"]
    with pytest.raises(ImportFailed):
        _import(props)


def _tiny_ibm(cz_errors: dict[tuple[int, int], float]) -> tuple[Raw, Raw]:
    def param(name: str, value: float, unit: str = "") -> Raw:
        return {"name": name, "value": value, "unit": unit}

    props = {
        "backend_name": "tiny",
        "last_update_date": "2025-01-01T12:00:00+01:00",
        "qubits": [[param("T1", 100.0, "us"), param("T2", 80.0, "us")] for _ in range(3)],
        "gates": [
            {"gate": "sx", "qubits": [q], "parameters": [param("gate_error", 1e-4), param("gate_length", 32, "ns")]}
            for q in range(3)
        ]
        + [
            {
                "gate": "cz",
                "qubits": list(pair),
                "parameters": [param("gate_error", err), param("gate_length", 68, "ns")],
            }
            for pair, err in cz_errors.items()
        ],
    }
    conf = {"n_qubits": 3, "basis_gates": ["cz", "id", "rz", "sx", "x"], "coupling_map": [list(p) for p in cz_errors]}
    return props, conf


@pytest.mark.parametrize(
    "cz_errors",
    [
        pytest.param({(0, 1): 1e-2, (2, 1): 2e-2}, id="one-direction-only"),
        pytest.param({(0, 1): 1e-2, (1, 0): 3e-2, (1, 2): 2e-2, (2, 1): 2e-2}, id="directions-differ"),
    ],
)
def test_a_device_whose_couplers_differ_by_direction_imports_as_directed(
    cz_errors: dict[tuple[int, int], float],
) -> None:
    snap = _import(*_tiny_ibm(cz_errors))
    assert snap.directed
    assert {pair: e.error for pair, e in snap.couplings().items()} == cz_errors


def test_a_device_with_identical_calibration_both_ways_imports_as_undirected_with_one_edge_per_pair() -> None:
    snap = _import(*_tiny_ibm({(0, 1): 1e-2, (1, 0): 1e-2, (1, 2): 2e-2, (2, 1): 2e-2}))
    assert not snap.directed
    assert [(e.source, e.target, e.error) for e in snap.edges] == [(0, 1, 1e-2), (1, 2, 2e-2)]


# --- cross-check against IBM's own loader of the same calibration ----------------------------------


@cache
def _ibm_target() -> Any:
    return FakeFez().target


@pytest.mark.parametrize("instruction", ["cz", "sx", "x", "id", "measure"])
def test_our_fez_target_matches_ibm_fake_fez_except_for_the_broken_couplers(fez: Snapshot, instruction: str) -> None:
    theirs, ours = _ibm_target()[instruction], target_from_snapshot(fez)[instruction]
    broken = {(a, b) for pair in _broken_couplers(_raw("props", "fez")) for a, b in (tuple(pair), tuple(pair)[::-1])}
    expected_missing = broken if instruction == "cz" else set()
    assert set(theirs) - set(ours) == expected_missing
    assert len(expected_missing) == (14 if instruction == "cz" else 0)
    assert set(ours) <= set(theirs)
    for qargs, props in ours.items():
        assert props.error == pytest.approx(theirs[qargs].error, rel=1e-12), qargs
        assert props.duration == pytest.approx(theirs[qargs].duration, rel=1e-12), qargs


def test_our_fez_target_has_ibm_fake_fez_t1_and_t2_on_every_qubit(fez: Snapshot) -> None:
    theirs, ours = _ibm_target().qubit_properties, target_from_snapshot(fez).qubit_properties
    assert len(ours) == len(theirs) == 156
    for mine, ibms in zip(ours, theirs, strict=True):
        assert mine.t1 == pytest.approx(ibms.t1, rel=1e-12)
        assert mine.t2 == pytest.approx(ibms.t2, rel=1e-12)
