"""`options.noise` applied to the built noise model: each channel scaled or removed on its own (docs/devices.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from qiskit.quantum_info import average_gate_fidelity
from qiskit_aer.noise import NoiseModel, QuantumError, thermal_relaxation_error

from device_registry import Snapshot, calibration, topologies
from runner.noise import NoiseCache, build_noise_model
from vqpu_protocol.rundir import NOISE_KINDS, NoiseModelName, NoiseOptions

PAPER, RELAX = NoiseModelName.PAPER, NoiseModelName.RELAXATION
FEZ_QUBITS = frozenset({0, 1, 2})


def _known(value: float | None) -> float:
    """A calibration value the test relies on (ibm-fez has every one of them)."""
    assert value is not None
    return value


def _noise(snapshot: Snapshot, model: NoiseModelName, qubits: frozenset[int] = FEZ_QUBITS, **options: Any) -> Any:
    return build_noise_model(snapshot, qubits, model, NoiseOptions.model_validate(options))


def _model(
    snapshot: Snapshot, model: NoiseModelName, qubits: frozenset[int] = FEZ_QUBITS, **options: Any
) -> NoiseModel:
    built = _noise(snapshot, model, qubits, **options).model
    assert built is not None
    return built


def _error(noise: NoiseModel, gate: str, qubits: tuple[int, ...]) -> QuantumError:
    error: QuantumError = noise._local_quantum_errors[gate][qubits]
    return error


def _infidelity(noise: NoiseModel, gate: str, qubits: tuple[int, ...]) -> float:
    return 1.0 - float(average_gate_fidelity(_error(noise, gate, qubits)))


def _channels(noise: NoiseModel) -> int:
    return sum(len(by_qubits) for by_qubits in noise._local_quantum_errors.values()) + len(noise._local_readout_errors)


def _described(noise: NoiseModel | None) -> str:
    """The model as comparable text (Aer gives every error a random id)."""

    def strip(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k != "id"}
        return [strip(v) for v in x] if isinstance(x, list) else x

    return "ideal" if noise is None else json.dumps(strip(noise.to_dict(serializable=True)), sort_keys=True)


@pytest.mark.parametrize("model", [PAPER, RELAX])
def test_the_default_options_build_the_calibrated_model_and_count_its_channels(
    fez: Snapshot, model: NoiseModelName
) -> None:
    built = _noise(fez, model)
    assert built.model is not None
    assert built.channels == _channels(built.model) > 0


def test_scaling_a_gate_channel_multiplies_its_infidelity_under_the_paper_model(fez: Snapshot) -> None:
    calibrated = _model(fez, PAPER)
    doubled = _model(fez, PAPER, scale={"gate_1q": 2, "gate_2q": 3})
    assert _infidelity(doubled, "sx", (1,)) == pytest.approx(2 * _infidelity(calibrated, "sx", (1,)))
    assert _infidelity(doubled, "cz", (0, 1)) == pytest.approx(3 * _infidelity(calibrated, "cz", (0, 1)))
    assert _infidelity(doubled, "cz", (0, 1)) == pytest.approx(3 * _known(fez.couplings()[(0, 1)].error))


def test_a_huge_gate_scale_stops_at_the_fully_depolarizing_channel() -> None:
    snap = calibration.attach_uniform(topologies.line(2), calibration.Calibration(error_1q=1e-3, error_2q=1e-2))
    noise = _model(snap, PAPER, frozenset({0, 1}), scale={"gate_1q": 1000, "gate_2q": 1000})
    assert _infidelity(noise, "sx", (0,)) == pytest.approx(2 / 3)  # d/(d+1): output independent of input
    assert _infidelity(noise, "cz", (0, 1)) == pytest.approx(4 / 5)


def test_scaling_readout_multiplies_the_flip_probabilities_up_to_a_coin_toss(fez: Snapshot) -> None:
    q0 = fez.qubits[0]
    paper = _model(fez, PAPER, scale={"readout": 2})._local_readout_errors[(0,)].probabilities
    flip = _known(q0.readout_error)
    assert paper[0][1] == pytest.approx(2 * flip) and paper[1][0] == pytest.approx(2 * flip)
    relax = _model(fez, RELAX, scale={"readout": 3})._local_readout_errors[(0,)].probabilities
    assert relax[0][1] == pytest.approx(3 * _known(q0.prob_meas1_prep0))
    assert relax[1][0] == pytest.approx(3 * _known(q0.prob_meas0_prep1))
    capped = _model(fez, RELAX, scale={"readout": 1000})._local_readout_errors[(0,)].probabilities
    assert capped.tolist() == [[0.5, 0.5], [0.5, 0.5]]


def test_scaling_relaxation_multiplies_the_rates_one_over_t1_and_t2(fez: Snapshot) -> None:
    q = fez.qubits[0]
    noise = _model(fez, RELAX, scale={"relaxation": 4}, disable=["gate_1q"])
    t1, t2 = _known(q.t1), _known(q.t2)
    expected = thermal_relaxation_error(t1 / 4, min(t2, 2 * t1) / 4, q.gate_durations["x"])
    assert _infidelity(noise, "x", (0,)) == pytest.approx(1.0 - average_gate_fidelity(expected))


def test_disabling_relaxation_removes_exactly_its_share_of_a_gate_infidelity(fez: Snapshot) -> None:
    """The split of the calibrated ε into relaxation and depolarizing is fixed by the calibration, so
    without relaxation a gate keeps only the depolarizing part: what relaxation did not explain (the
    composite's infidelity is not quite additive: for one qubit the part left is (ε - e_r) / (1 - 2 e_r))."""
    q = fez.qubits[0]
    relaxation_only = thermal_relaxation_error(_known(q.t1), min(_known(q.t2), 2 * _known(q.t1)), q.gate_durations["x"])
    explained = 1.0 - average_gate_fidelity(relaxation_only)
    full = _model(fez, RELAX)
    without = _model(fez, RELAX, disable=["relaxation"])
    assert _infidelity(full, "x", (0,)) == pytest.approx(_known(q.error_1q))
    assert 0 < explained < _known(q.error_1q)
    assert _infidelity(without, "x", (0,)) == pytest.approx((_known(q.error_1q) - explained) / (1 - 2 * explained))
    assert "reset" not in without._local_quantum_errors  # a reset's only noise is relaxation


@pytest.mark.parametrize(
    ("kind", "model", "gone"),
    [
        ("readout", PAPER, 3),  # one per measured qubit
        ("gate_1q", PAPER, 6),  # sx and x on each of three qubits (rz and id are noiseless there)
        ("gate_2q", PAPER, 4),  # cz both ways on (0,1) and (1,2)
        ("relaxation", RELAX, 3),  # the resets: every other relaxed gate keeps its depolarizing part
    ],
)
def test_disabling_a_channel_removes_its_errors_from_the_model(
    fez: Snapshot, kind: str, model: NoiseModelName, gone: int
) -> None:
    full = _noise(fez, model)
    without = _noise(fez, model, disable=[kind])
    assert without.channels == full.channels - gone
    assert without.model is not None and without.channels == _channels(without.model)


@pytest.mark.parametrize("model", [PAPER, RELAX])
def test_a_noisy_device_with_every_channel_disabled_builds_no_model(fez: Snapshot, model: NoiseModelName) -> None:
    kinds = [k for k in NOISE_KINDS if model is RELAX or k != "relaxation"]
    built = _noise(fez, model, disable=kinds)
    assert (built.model, built.channels) == (None, 0)


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_a_scale_of_zero_is_the_same_as_disabling(fez: Snapshot, kind: str) -> None:
    assert _described(_noise(fez, RELAX, scale={kind: 0}).model) == _described(_noise(fez, RELAX, disable=[kind]).model)


def test_a_scale_of_one_is_the_calibrated_model(fez: Snapshot) -> None:
    ones = {k: 1 for k in NOISE_KINDS}
    assert _described(_noise(fez, RELAX, scale=ones).model) == _described(_noise(fez, RELAX).model)


def test_the_cache_keys_on_the_noise_options(fez: Snapshot) -> None:
    cache = NoiseCache()
    plain = cache.get(fez, FEZ_QUBITS, PAPER, NoiseOptions())
    scaled = cache.get(fez, FEZ_QUBITS, PAPER, NoiseOptions(scale={"gate_2q": 2}))
    disabled = cache.get(fez, FEZ_QUBITS, PAPER, NoiseOptions(disable=["gate_2q"]))
    zero = cache.get(fez, FEZ_QUBITS, PAPER, NoiseOptions(scale={"gate_2q": 0}))
    ones = cache.get(fez, FEZ_QUBITS, PAPER, NoiseOptions(scale={"readout": 1}))
    assert [b.cache_hit for b in (plain, scaled, disabled, zero, ones)] == [False, False, False, True, True]
    assert scaled.model is not plain.model and zero.model is disabled.model and ones.model is plain.model
