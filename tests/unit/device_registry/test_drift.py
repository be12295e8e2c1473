"""The drift model: what a user studying calibration epochs relies on — reproducible epochs, always a
valid device, spreads as documented, and faults that come and go."""

from __future__ import annotations

import math
import random
import statistics
from itertools import pairwise

import pytest

from device_registry import EdgeStatus, Snapshot, SnapshotError, catalog, parse_snapshot
from device_registry.drift import CAP_1Q, CAP_2Q, CAP_READOUT, SOURCE_KIND, DriftError, DriftModel, drift


def _chain(start: Snapshot, steps: int, seed: int, **kwargs: object) -> list[Snapshot]:
    out = [start]
    for i in range(steps):
        out.append(drift(out[-1], seed * 10_000 + i, **kwargs))  # type: ignore[arg-type]
    return out


def _log_ratios(before: list[float | None], after: list[float | None]) -> list[float]:
    """log(after / before) wherever both are known and non-zero (a zero error stays zero: no factor moves it)."""
    return [math.log(a / b) for b, a in zip(before, after, strict=True) if a and b]


def test_the_same_seed_gives_the_same_next_epoch_and_another_seed_another(fez: Snapshot) -> None:
    first, again, other = drift(fez, 7), drift(fez, 7), drift(fez, 8)
    assert first.sha256() == again.sha256()
    assert other.sha256() != first.sha256()
    assert drift(fez, random.Random(7)).qubits == first.qubits  # a Random seeded alike draws alike


def test_the_next_epoch_is_the_same_device_one_epoch_on_with_its_source_saying_how(fez: Snapshot) -> None:
    nxt = drift(fez, 1, captured_at="2025-03-01T00:00:00Z")
    assert nxt.epoch == fez.epoch + 1 and nxt.captured_at == "2025-03-01T00:00:00Z"
    assert nxt.source is not None and nxt.source.kind == SOURCE_KIND and "seed 1" in (nxt.source.name or "")
    assert (nxt.num_qubits, nxt.native_gates, nxt.directed) == (fez.num_qubits, fez.native_gates, fez.directed)
    assert [(e.source, e.target, e.gate, e.duration) for e in nxt.edges] == [
        (e.source, e.target, e.gate, e.duration) for e in fez.edges
    ]
    assert [q.gate_durations for q in nxt.qubits] == [q.gate_durations for q in fez.qubits]
    assert sum(q.t1 != p.t1 for q, p in zip(nxt.qubits, fez.qubits, strict=True)) == fez.num_qubits


def test_every_epoch_of_a_long_wild_chain_is_a_valid_snapshot_within_physical_bounds(fez: Snapshot) -> None:
    wild = DriftModel(t1_sigma=1.0, t2_sigma=1.5, error_1q_sigma=2.0, error_2q_sigma=2.0, readout_sigma=2.0)
    for s in _chain(fez, 60, seed=3, model=wild)[1:]:
        parse_snapshot(s.canonical_json())  # what the control plane does with a PUT
        for q in s.qubits:
            assert q.t1 is not None and q.t2 is not None and 0 < q.t2 <= 2 * q.t1
            assert q.error_1q is not None and 0 <= q.error_1q <= CAP_1Q
            for p in (q.readout_error, q.prob_meas0_prep1, q.prob_meas1_prep0):
                assert p is not None and 0 <= p <= CAP_READOUT
        assert all(e.error is None or 0 <= e.error <= CAP_2Q for e in s.edges)


def test_t2_above_twice_t1_in_imported_data_is_capped_at_the_first_refresh(fez: Snapshot) -> None:
    over = [q.index for q in fez.qubits if q.t1 and q.t2 and q.t2 > 2 * q.t1]
    assert over, "the imported Fez has a qubit with T2 > 2 T1 (IBM data)"
    nxt = drift(fez, 5)
    assert all(nxt.qubits[i].t2 <= 2 * nxt.qubits[i].t1 for i in over)  # type: ignore[operator]


def test_readout_error_is_the_mean_of_the_two_asymmetric_flips(fez: Snapshot) -> None:
    for q in drift(fez, 11).qubits:
        assert q.readout_error == pytest.approx((q.prob_meas0_prep1 + q.prob_meas1_prep0) / 2)  # type: ignore[operator]


def test_one_refresh_moves_t1_t2_and_errors_by_the_documented_log_normal_spreads(fez: Snapshot) -> None:
    model = DriftModel()
    pairs = [(fez, drift(fez, seed)) for seed in range(40)]  # 6240 qubits, 7040 couplers

    def logs(name: str, of: str = "qubits") -> list[float]:
        return [
            r
            for before, after in pairs
            for r in _log_ratios(
                [getattr(x, name) for x in getattr(before, of)], [getattr(x, name) for x in getattr(after, of)]
            )
        ]

    for name, sigma in (
        ("t1", model.t1_sigma),
        ("error_1q", model.error_1q_sigma),
        ("prob_meas1_prep0", model.readout_sigma),
        ("error", model.error_2q_sigma),
    ):
        found = logs(name, "edges" if name == "error" else "qubits")
        assert len(found) > 5000, name
        assert abs(statistics.fmean(found)) < 0.01, name
        assert statistics.stdev(found) == pytest.approx(sigma, rel=0.05), name
    # T2 moves more than T1, less where the 2*T1 cap bites; never more than its own spread.
    assert model.t1_sigma < statistics.stdev(logs("t2")) <= model.t2_sigma * 1.05


def test_with_a_baseline_values_wander_around_it_and_without_one_they_walk_away(fez: Snapshot) -> None:
    model, steps = DriftModel(), 30
    anchored = [_chain(fez, steps, seed, baseline=fez)[-1] for seed in range(6)]
    walked = [_chain(fez, steps, seed)[-1] for seed in range(6)]
    base_t1 = [q.t1 for q in fez.qubits]

    def spread(ends: list[Snapshot]) -> float:
        return statistics.stdev(r for s in ends for r in _log_ratios(base_t1, [q.t1 for q in s.qubits]))

    stationary = model.t1_sigma / math.sqrt(1 - (1 - model.reversion) ** 2)
    assert spread(anchored) == pytest.approx(stationary, rel=0.1)
    assert spread(walked) == pytest.approx(model.t1_sigma * math.sqrt(steps), rel=0.15)


def test_qubits_and_couplers_go_out_and_come_back_at_the_documented_rates(fez: Snapshot) -> None:
    model = DriftModel()
    chain = _chain(fez, 150, seed=21, baseline=fez)
    went_out = came_back = 0
    for before, after in pairwise(chain):
        for q, p in zip(before.qubits, after.qubits, strict=True):
            went_out += q.online and not p.online
            came_back += not q.online and p.online
    expected_out = 150 * fez.num_qubits * model.qubit_offline_p  # ~47
    assert 0.6 * expected_out < went_out < 1.5 * expected_out
    assert came_back == went_out - sum(not q.online for q in chain[-1].qubits) > 0  # none was out at the start
    edge_out = sum(
        e.available and not f.available for b, a in pairwise(chain) for e, f in zip(b.edges, a.edges, strict=True)
    )
    calibrated = sum(e.error is not None for e in fez.edges)
    assert 0.6 * 150 * calibrated * model.edge_offline_p < edge_out < 1.5 * 150 * calibrated * model.edge_offline_p
    assert any(not q.online for s in chain for q in s.qubits) and any(q.online for q in chain[-1].qubits)


def test_a_broken_imported_coupler_without_an_error_stays_out(fez: Snapshot) -> None:
    broken = {(e.source, e.target) for e in fez.edges if not e.available}
    assert len(broken) == 7 and all(e.error is None for e in fez.edges if not e.available)
    for s in _chain(fez, 40, seed=2, model=DriftModel(edge_return_p=1.0)):
        still = {(e.source, e.target) for e in s.edges if e.status is EdgeStatus.UNAVAILABLE and e.error is None}
        assert still == broken


def test_unknown_values_stay_unknown(fez: Snapshot) -> None:
    data = fez.to_json_dict()
    data["qubits"][3].update(t1=None, prob_meas0_prep1=None)
    data["edges"][0]["error"] = None
    partial = parse_snapshot(data)
    nxt = drift(drift(partial, 1), 2)
    assert nxt.qubits[3].t1 is None and nxt.qubits[3].prob_meas0_prep1 is None
    assert nxt.qubits[3].t2 is not None and nxt.edges[0].error is None
    assert nxt.qubits[4].t1 != partial.qubits[4].t1


def test_an_ideal_device_stays_ideal_with_its_statuses(fez_ideal: Snapshot) -> None:
    nxt = _chain(fez_ideal, 20, seed=4)[-1]
    assert nxt.qubits == fez_ideal.qubits and nxt.edges == fez_ideal.edges
    assert nxt.epoch == fez_ideal.epoch + 20


def test_impossible_model_parameters_and_a_foreign_baseline_are_refused(fez: Snapshot) -> None:
    with pytest.raises(DriftError, match="qubit_offline_p"):
        DriftModel(qubit_offline_p=1.5)
    with pytest.raises(DriftError, match="t1_sigma"):
        DriftModel(t1_sigma=-0.1)
    with pytest.raises(DriftError, match="error_2q_sigma"):
        DriftModel(error_2q_sigma=math.nan)
    with pytest.raises(DriftError, match="baseline"):
        drift(fez, 1, baseline=catalog.load("ibm-kingston"))


def test_a_drift_that_would_leave_the_valid_range_is_a_snapshot_error_not_a_bad_epoch(fez: Snapshot) -> None:
    data = fez.to_json_dict()
    data["qubits"][0]["t1"] = 5e-324  # the smallest float: a factor below 1/2 rounds it to 0 s, which no device has
    data["qubits"][0]["t2"] = 5e-324
    tiny = parse_snapshot(data)
    with pytest.raises(SnapshotError, match=r"qubits\.0"):
        for seed in range(20):
            drift(tiny, seed, model=DriftModel(t1_sigma=2.0, t2_sigma=2.0))
