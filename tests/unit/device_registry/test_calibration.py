"""Attaching synthetic calibration (uniform, sampled) and stripping it (ideal twin)."""

from __future__ import annotations

import pytest

from device_registry import EdgeStatus, QubitStatus, Snapshot, parse_snapshot, topologies
from device_registry.calibration import Calibration, attach_sampled, attach_uniform, strip

CUSTOM = Calibration(
    t1=2.0e-4,
    t2=1.2e-4,
    error_1q=5.0e-4,
    error_2q=7.0e-3,
    readout_error=2.0e-2,
    duration_1q=3.2e-8,
    duration_2q=6.8e-8,
    readout_asymmetry=0.25,
)


def _with_faults(snap: Snapshot) -> Snapshot:
    """`snap` with qubit 1 OFFLINE and its first edge UNAVAILABLE."""
    data = snap.to_json_dict()
    data["qubits"][1]["status"] = "OFFLINE"
    data["edges"][0]["status"] = "UNAVAILABLE"
    return parse_snapshot(data)


def test_attach_uniform_gives_every_qubit_and_edge_exactly_the_given_calibration() -> None:
    snap = attach_uniform(topologies.grid(3, 3), CUSTOM)
    for q in snap.qubits:
        assert (q.t1, q.t2, q.error_1q, q.readout_error) == (
            CUSTOM.t1,
            CUSTOM.t2,
            CUSTOM.error_1q,
            CUSTOM.readout_error,
        )
        assert q.gate_durations == {
            "id": CUSTOM.duration_1q,
            "sx": CUSTOM.duration_1q,
            "x": CUSTOM.duration_1q,
            "rz": 0,
        }
    for e in snap.edges:
        assert (e.error, e.duration) == (CUSTOM.error_2q, CUSTOM.duration_2q)


def test_default_calibration_is_in_seconds_not_microseconds_or_nanoseconds() -> None:
    q = attach_uniform(topologies.line(2)).qubits[0]
    e = attach_uniform(topologies.line(2)).edges[0]
    assert q.t1 is not None and q.t2 is not None and e.duration is not None
    assert 1e-6 < q.t1 < 1e-2 and 1e-6 < q.t2 < 1e-2  # tens to hundreds of microseconds
    assert 1e-9 < q.gate_durations["sx"] < 1e-6 and 1e-9 < e.duration < 1e-6  # tens of nanoseconds


def test_a_t2_above_twice_t1_is_clamped_to_the_physical_limit() -> None:
    snap = attach_uniform(topologies.line(2), Calibration(t1=1e-4, t2=5e-4))
    assert all(q.t2 == 2e-4 for q in snap.qubits)


def test_attach_keeps_statuses_graph_and_identity_fields() -> None:
    faulty = _with_faults(topologies.ring(5, device_id="faulty"))
    snap = attach_uniform(faulty)
    assert [q.status for q in snap.qubits] == [q.status for q in faulty.qubits]
    assert [(e.source, e.target, e.status) for e in snap.edges] == [
        (e.source, e.target, e.status) for e in faulty.edges
    ]
    assert snap.device_id == "faulty"


def test_the_same_seed_gives_the_same_device_and_another_seed_a_different_one() -> None:
    hh = topologies.heavy_hex(3, 12)
    assert attach_sampled(hh, seed=7).sha256() == attach_sampled(hh, seed=7).sha256()
    assert attach_sampled(hh, seed=7).sha256() != attach_sampled(hh, seed=8).sha256()


def test_a_sampled_device_varies_from_qubit_to_qubit() -> None:
    snap = attach_sampled(topologies.heavy_hex(3, 12), seed=1)
    assert len({q.t1 for q in snap.qubits}) == snap.num_qubits
    assert len({e.error for e in snap.edges}) == len(snap.edges)


def test_zero_spread_sampling_is_the_uniform_device() -> None:
    grid = topologies.grid(2, 3)
    assert attach_sampled(grid, seed=3, cal=CUSTOM, spread=0.0).sha256() == attach_uniform(grid, CUSTOM).sha256()


def test_a_negative_spread_is_rejected() -> None:
    with pytest.raises(ValueError, match="spread"):
        attach_sampled(topologies.line(2), seed=0, spread=-0.1)


@pytest.mark.parametrize("seed", range(5))
def test_wide_sampling_keeps_t2_within_twice_t1_and_probabilities_in_range(seed: int) -> None:
    # spread 2 makes draws of e^±4 common, so the clamps are exercised, not just the happy path
    wide = Calibration(error_1q=0.05, error_2q=0.2, readout_error=0.1)
    snap = attach_sampled(topologies.heavy_hex(3, 12), seed=seed, cal=wide, spread=2.0)
    clamped = 0
    for q in snap.qubits:
        assert q.t1 is not None and q.t2 is not None and q.t1 > 0
        assert q.t2 <= 2 * q.t1
        clamped += q.t2 == 2 * q.t1
        for p in (q.error_1q, q.readout_error, q.prob_meas0_prep1, q.prob_meas1_prep0):
            assert p is not None and 0.0 <= p <= 1.0
    assert all(e.error is not None and 0.0 <= e.error <= 1.0 for e in snap.edges)
    assert clamped > 0
    assert parse_snapshot(snap.canonical_json()) == snap


def test_readout_flips_one_to_zero_more_often_than_zero_to_one_by_default() -> None:
    q = attach_uniform(topologies.line(2)).qubits[0]
    assert q.readout_error is not None and q.prob_meas0_prep1 is not None and q.prob_meas1_prep0 is not None
    assert q.prob_meas0_prep1 > q.prob_meas1_prep0
    assert (q.prob_meas0_prep1 + q.prob_meas1_prep0) / 2 == pytest.approx(q.readout_error)
    assert q.prob_meas1_prep0 / (q.prob_meas0_prep1 + q.prob_meas1_prep0) == pytest.approx(0.3)


def test_a_readout_asymmetry_of_one_half_gives_symmetric_readout() -> None:
    q = attach_uniform(topologies.line(2), Calibration(readout_asymmetry=0.5)).qubits[0]
    assert q.prob_meas0_prep1 == pytest.approx(q.prob_meas1_prep0) == pytest.approx(q.readout_error)


def test_strip_keeps_graph_statuses_and_timing_and_nulls_every_calibration_value(fez: Snapshot) -> None:
    faulty = _with_faults(attach_sampled(topologies.heavy_hex(3, 12), seed=5))
    for snap in (fez, faulty):
        ideal = strip(snap, device_id="twin")
        assert ideal.device_id == "twin"
        assert (ideal.num_qubits, ideal.native_gates, ideal.directed) == (snap.num_qubits, snap.native_gates, False)
        assert [q.status for q in ideal.qubits] == [q.status for q in snap.qubits]
        assert [(e.source, e.target, e.gate, e.status) for e in ideal.edges] == [
            (e.source, e.target, e.gate, e.status) for e in snap.edges
        ]
        for q, calibrated in zip(ideal.qubits, snap.qubits, strict=True):
            assert (q.t1, q.t2, q.error_1q, q.readout_error, q.prob_meas0_prep1, q.prob_meas1_prep0) == (None,) * 6
            assert q.gate_durations == calibrated.gate_durations  # timing is no error: it schedules alike
        assert all(e.error is None for e in ideal.edges)
        assert [e.duration for e in ideal.edges] == [e.duration for e in snap.edges]
        assert ideal.dt == snap.dt
    assert any(q.status is QubitStatus.OFFLINE for q in strip(faulty).qubits)
    assert any(e.status is EdgeStatus.UNAVAILABLE for e in strip(fez).edges)


def test_strip_without_a_new_name_keeps_the_device_id() -> None:
    snap = attach_uniform(topologies.line(3, device_id="keep-me"))
    assert strip(snap).device_id == "keep-me"
    assert strip(snap).sha256() != snap.sha256()
