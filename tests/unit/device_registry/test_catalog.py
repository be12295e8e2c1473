"""The bundled device catalogue: names, loading, the ideal twin, unknown names, caching."""

from __future__ import annotations

import pytest

from device_registry import Snapshot, UnknownDevice, catalog, parse_snapshot


def test_the_catalogue_lists_the_ibm_devices_the_ideal_twin_and_synthetic_families() -> None:
    names = catalog.names()
    assert {"ibm-fez", "ibm-fez-ideal", "ibm-kingston", "ibm-torino"} <= set(names)
    assert [n for n in names if not n.startswith("ibm-")], "no synthetic device in the catalogue"
    assert names == sorted(names)


@pytest.mark.parametrize("name", catalog.names())
def test_every_catalogue_device_loads_validates_and_is_named_after_its_catalogue_entry(name: str) -> None:
    snap = catalog.load(name)
    assert snap.device_id == name
    assert snap.epoch == 0
    again = parse_snapshot(snap.canonical_json())
    assert again == snap and again.sha256() == snap.sha256()


@pytest.mark.parametrize(("name", "qubits"), [("ibm-fez", 156), ("ibm-kingston", 156), ("ibm-torino", 133)])
def test_the_ibm_devices_have_their_published_qubit_counts_and_real_calibration(name: str, qubits: int) -> None:
    snap = catalog.load(name)
    assert snap.num_qubits == qubits
    assert snap.source is not None and snap.source.kind == "ibm-props"
    assert all(e.error is not None for e in snap.edges if e.available)


def test_the_ideal_fez_twin_has_fezs_graph_statuses_and_timing_and_no_calibration(
    fez: Snapshot, fez_ideal: Snapshot
) -> None:
    assert fez_ideal.num_qubits == fez.num_qubits and fez_ideal.native_gates == fez.native_gates
    assert [(e.source, e.target, e.status) for e in fez_ideal.edges] == [
        (e.source, e.target, e.status) for e in fez.edges
    ]
    assert [q.status for q in fez_ideal.qubits] == [q.status for q in fez.qubits]
    assert all(q.t1 is None and q.error_1q is None and q.readout_error is None for q in fez_ideal.qubits)
    assert all(e.error is None for e in fez_ideal.edges)
    assert fez_ideal.dt == fez.dt == 4e-9 and fez_ideal.qubits[0].gate_durations == fez.qubits[0].gate_durations
    assert fez_ideal.sha256() != fez.sha256()


def test_an_unknown_name_raises_unknown_device_listing_the_known_names() -> None:
    with pytest.raises(UnknownDevice) as caught:
        catalog.load("ibm-nowhere")
    message = str(caught.value)
    assert "ibm-nowhere" in message
    assert all(name in message for name in catalog.names())
    assert isinstance(caught.value, KeyError)


def test_loading_twice_returns_the_same_snapshot_object() -> None:
    assert catalog.load("ibm-fez") is catalog.load("ibm-fez")
    assert catalog.load("ring-12") is catalog.load("ring-12")
