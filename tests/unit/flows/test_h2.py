"""The H2 problem: its exact energy from diagonalisation, the ansatz holding it, the energy from counts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flows.examples import h2
from flows.examples.native import NativeProgram

FCI_TOTAL_ENERGY_HA = -1.13730604
"""Full-CI total energy of STO-3G H2 at 0.735 Å (the value quoted with Qiskit Nature's H2 tutorial)."""


def test_the_diagonalised_ground_energy_plus_nuclear_repulsion_is_the_full_ci_energy() -> None:
    total = h2.exact_ground_energy() + h2.nuclear_repulsion()
    assert total == pytest.approx(FCI_TOTAL_ENERGY_HA, abs=1e-6)
    assert h2.nuclear_repulsion() == pytest.approx(0.7199689944, abs=1e-8)


def test_the_one_parameter_ansatz_reaches_the_exact_ground_energy_and_hartree_fock_does_not() -> None:
    thetas = np.linspace(-np.pi, np.pi, 20001)
    lowest = min(h2.ansatz_energy(float(t)) for t in thetas)
    assert lowest == pytest.approx(h2.exact_ground_energy(), abs=1e-7)
    # Hartree-Fock is ~20 mHa above: an optimiser that never moved would be visibly wrong.
    assert h2.ansatz_energy(h2.HARTREE_FOCK_THETA) - h2.exact_ground_energy() > 0.015


@pytest.mark.parametrize("theta", [0.0, -0.2235, 1.1])
def test_the_native_circuit_prepares_the_ansatz_state(fez: object, theta: float) -> None:
    from qiskit.quantum_info import Statevector

    program = NativeProgram(h2.circuit("Z"), (96, 103), fez)  # type: ignore[arg-type]
    assert {inst.operation.name for inst in program.compiled.data} <= {"rz", "sx", "x", "cz", "measure"}
    bound = program.compiled.assign_parameters([theta]).remove_final_measurements(inplace=False)
    overlap = abs(np.vdot(h2.ansatz_state(theta), Statevector(bound).data))
    assert overlap == pytest.approx(1.0, abs=1e-9)


def test_the_energy_of_hartree_fock_counts_is_its_exact_energy_with_the_xx_shot_noise_as_error() -> None:
    shots = 4000
    # |01> measured in Z always reads "01"; in X it is uniform over the four outcomes, so <XX> = 0.
    counts = {"Z": {"01": shots}, "X": {"00": 1000, "01": 1000, "10": 1000, "11": 1000}}
    estimate = h2.energy(counts)
    assert estimate.value == pytest.approx(h2.ansatz_energy(0.0), abs=1e-12)
    assert estimate.stderr == pytest.approx(h2.TERMS["XX"] * math.sqrt(1 / (shots - 1)), rel=1e-9)


def test_only_the_z_and_x_bases_exist() -> None:
    with pytest.raises(ValueError, match="basis"):
        h2.circuit("Y")


def test_the_observable_on_the_estimator_is_the_hamiltonian_and_the_ansatz_has_its_energy() -> None:
    from qiskit.quantum_info import SparsePauliOp, Statevector

    terms = h2.observable([0, 1])
    op = SparsePauliOp.from_sparse_list([(t.paulis, t.qubits, t.coeff) for t in terms], num_qubits=2)
    assert np.allclose(op.to_matrix(), h2.matrix())
    for theta in (0.0, 0.3, -1.2):
        state = Statevector(h2.ansatz().assign_parameters([theta]))
        assert state.expectation_value(op).real == pytest.approx(h2.ansatz_energy(theta), abs=1e-12)
    assert {tuple(t.qubits) for t in h2.observable((96, 103))} == {(96, 103)}
