"""The noise model derived from a snapshot (docs/devices.md, noise from calibration)."""

from __future__ import annotations

import pytest
from qiskit_aer.noise import NoiseModel

from device_registry import Edge, EdgeStatus, Qubit, Snapshot, calibration, topologies
from runner.noise import NoiseCache, build_noise_model
from vqpu_protocol.rundir import NoiseModelName, NoiseOptions

PAPER, RELAX = NoiseModelName.PAPER, NoiseModelName.RELAXATION


def _build(snapshot: Snapshot, qubits: frozenset[int], model: NoiseModelName, **options: object) -> NoiseModel | None:
    return build_noise_model(snapshot, qubits, model, NoiseOptions.model_validate(options)).model


def _identity_probability(noise: NoiseModel, gate: str, qubits: list[int]) -> float:
    error = noise._local_quantum_errors[gate][tuple(qubits)]
    return float(error.probabilities[0])


def _line(**cal: float) -> Snapshot:
    return calibration.attach_uniform(topologies.line(4), calibration.Calibration(**cal))


def test_an_ideal_device_yields_no_noise_model_under_either_model(fez_ideal: Snapshot) -> None:
    assert _build(fez_ideal, frozenset({0, 1}), PAPER) is None
    assert _build(fez_ideal, frozenset({0, 1}), RELAX) is None


@pytest.mark.parametrize("model", [PAPER, RELAX])
def test_noise_is_built_only_for_the_qubits_the_circuit_touches(fez: Snapshot, model: NoiseModelName) -> None:
    noise = _build(fez, frozenset({0, 1, 2}), model)
    assert noise is not None
    assert set(noise.noise_qubits) == {0, 1, 2}


def test_a_one_qubit_gate_error_becomes_depolarizing_lambda_2_epsilon() -> None:
    eps = 4e-3
    noise = _build(_line(error_1q=eps), frozenset({0}), PAPER)
    assert noise is not None
    # depolarizing(λ) on one qubit keeps the identity with probability 1 - 3λ/4; λ = d·ε/(d-1) = 2ε
    assert _identity_probability(noise, "sx", [0]) == pytest.approx(1 - 3 * (2 * eps) / 4)


def test_a_two_qubit_gate_error_becomes_depolarizing_lambda_4_epsilon_over_3() -> None:
    eps = 2e-2
    noise = _build(_line(error_2q=eps), frozenset({0, 1}), PAPER)
    assert noise is not None
    lam = 4 * eps / 3
    assert _identity_probability(noise, "cz", [0, 1]) == pytest.approx(1 - 15 * lam / 16)
    assert _identity_probability(noise, "cz", [1, 0]) == pytest.approx(1 - 15 * lam / 16)


def test_the_paper_model_leaves_rz_and_id_noiseless_and_relaxation_times_id() -> None:
    snap = _line()
    paper = _build(snap, frozenset({0}), PAPER)
    relax = _build(snap, frozenset({0}), RELAX)
    assert paper is not None and relax is not None
    assert "id" not in paper._local_quantum_errors and "rz" not in paper._local_quantum_errors
    assert (0,) in relax._local_quantum_errors["id"]
    assert "rz" not in relax._local_quantum_errors


def test_paper_readout_is_symmetric_and_clamped_to_one_half() -> None:
    snap = _line(readout_error=0.5)
    raw = snap.model_dump(by_alias=True)
    raw["qubits"][0]["readout_error"] = 0.9
    noise = _build(Snapshot.model_validate(raw), frozenset({0}), PAPER)
    assert noise is not None
    probs = noise._local_readout_errors[(0,)].probabilities
    assert probs.tolist() == [[0.5, 0.5], [0.5, 0.5]]


def test_relaxation_readout_uses_the_asymmetric_prob_meas_fields(fez: Snapshot) -> None:
    noise = _build(fez, frozenset({0}), RELAX)
    assert noise is not None
    probs = noise._local_readout_errors[(0,)].probabilities
    q0 = fez.qubits[0]
    assert probs[0][1] == pytest.approx(q0.prob_meas1_prep0)
    assert probs[1][0] == pytest.approx(q0.prob_meas0_prep1)
    assert probs[0][1] != probs[1][0]


def test_an_unavailable_edge_carries_no_gate_error() -> None:
    snap = topologies.from_edges(3, [(0, 1), (1, 2)])
    raw = calibration.attach_uniform(snap).model_dump(by_alias=True)
    raw["edges"][1] = Edge(source=1, target=2, gate="cz", status=EdgeStatus.UNAVAILABLE).model_dump()
    noise = _build(Snapshot.model_validate(raw), frozenset({0, 1, 2}), PAPER)
    assert noise is not None
    assert set(noise._local_quantum_errors["cz"]) == {(0, 1), (1, 0)}


def test_a_qubit_without_t1_t2_gets_no_relaxation_but_keeps_its_gate_error() -> None:
    snap = _line()
    raw = snap.model_dump(by_alias=True)
    raw["qubits"][0] = Qubit(index=0, error_1q=1e-3, gate_durations={"sx": 2.4e-8}).model_dump()
    noise = _build(Snapshot.model_validate(raw), frozenset({0}), RELAX)
    assert noise is not None
    assert _identity_probability(noise, "sx", [0]) == pytest.approx(1 - 3 * 2e-3 / 4)


def test_the_cache_reuses_a_model_for_the_same_snapshot_model_and_qubits(fez: Snapshot) -> None:
    cache = NoiseCache()
    first = cache.get(fez, frozenset({0, 1}), PAPER, NoiseOptions())
    again = cache.get(fez, frozenset({1, 0}), PAPER, NoiseOptions())
    other_qubits = cache.get(fez, frozenset({0, 2}), PAPER, NoiseOptions())
    other_model = cache.get(fez, frozenset({0, 1}), RELAX, NoiseOptions())
    assert (first.cache_hit, again.cache_hit, other_qubits.cache_hit, other_model.cache_hit) == (
        False,
        True,
        False,
        False,
    )
    assert again.model is first.model
