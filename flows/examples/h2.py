"""The H2 molecule at 0.735 Å as a 2-qubit Hamiltonian, its exact ground energy, and its VQE pieces.

The electronic Hamiltonian of H2 in the STO-3G basis, mapped to qubits by the parity mapping with
the two-qubit (Z2-symmetry) reduction, is

    H = g0 II + g1 IZ + g2 ZI + g3 ZZ + g4 XX        (Qiskit's little-endian labels: IZ is Z on qubit 0)

the form Kandala et al. used on hardware (A. Kandala et al., "Hardware-efficient variational quantum
eigensolver for small molecules and quantum magnets", Nature 549, 242 (2017), Methods); O'Malley et
al. ran the same molecule in the Bravyi-Kitaev form with a one-parameter unitary coupled-cluster
ansatz (P. J. J. O'Malley et al., "Scalable Quantum Simulation of Molecular Energies", Phys. Rev. X 6,
031007 (2016)). The coefficients at 0.735 Å are those of Qiskit Nature's H2 tutorial (PySCF
integrals, parity mapping, two-qubit reduction). The exact ground energy is computed here by
diagonalising the 4x4 matrix, never written down; with the nuclear repulsion 1/R it is the full-CI
total energy of STO-3G H2 at this bond length, -1.13730604 Ha (a unit test checks it).

The ansatz is that UCC form: cos(θ/2)|01> + sin(θ/2)|10> (qubit 0 written last), which holds the
exact ground state because H conserves the {|01>, |10>} block. The energy needs two bases: Z for
II, IZ, ZI, ZZ and X for XX.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from flows.examples.estimate import Bits, Estimate, mean_of, z_string
from vqpu_protocol.pubs import PauliTerm

BOND_LENGTH_ANGSTROM = 0.735
BOHR_ANGSTROM = 0.529177210903  # CODATA 2018
TERMS: dict[str, float] = {
    "II": -1.052373245772859,
    "IZ": 0.39793742484318045,
    "ZI": -0.39793742484318045,
    "ZZ": -0.01128010425623538,
    "XX": 0.18093119978423156,
}
HARTREE_FOCK_THETA = 0.0
"""θ = 0 is |01>: the Hartree-Fock state, where the optimisation starts."""
BASES = ("Z", "X")

_PAULI = {
    "I": np.eye(2),
    "X": np.array([[0.0, 1.0], [1.0, 0.0]]),
    "Z": np.diag([1.0, -1.0]),
}


def matrix() -> np.ndarray[Any, np.dtype[np.float64]]:
    """H as a 4x4 matrix in Qiskit's basis order (index = 2*q1 + q0)."""
    h = np.zeros((4, 4))
    for label, coefficient in TERMS.items():
        h += coefficient * np.kron(_PAULI[label[0]], _PAULI[label[1]])
    return h


def exact_ground_energy() -> float:
    """The lowest eigenvalue of H (electronic energy, Ha)."""
    return float(np.linalg.eigvalsh(matrix())[0])


def nuclear_repulsion(bond_angstrom: float = BOND_LENGTH_ANGSTROM) -> float:
    """1/R in Hartree for two protons R apart: what turns the electronic energy into the total."""
    return BOHR_ANGSTROM / bond_angstrom


def ansatz_state(theta: float) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The ansatz's state vector (for checking the circuit; the flow measures instead)."""
    state = np.zeros(4)
    state[0b01], state[0b10] = np.cos(theta / 2), np.sin(theta / 2)
    return state


def ansatz_energy(theta: float) -> float:
    """<ψ(θ)|H|ψ(θ)>, exactly (what infinitely many shots would give)."""
    state = ansatz_state(theta)
    return float(state @ matrix() @ state)


def ansatz() -> Any:
    """The ansatz alone, with parameter θ and no measurement: what an Estimator PUB takes."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import Parameter

    qc = QuantumCircuit(2, name="h2-ucc")
    qc.x(0)
    qc.ry(Parameter("θ"), 1)
    qc.cx(1, 0)
    return qc


def observable(layout: tuple[int, int] | list[int]) -> list[PauliTerm]:
    """H as Pauli terms on the physical qubits `layout` (logical qubit i on `layout[i]`): an Estimator
    PUB's observable. Qiskit's labels are little-endian: the last character is qubit 0."""
    return [
        PauliTerm(paulis=label[::-1], qubits=[layout[0], layout[1]], coeff=coefficient)
        for label, coefficient in TERMS.items()
    ]


def circuit(basis: str) -> Any:
    """The ansatz, rotated to measure in `basis` ("Z" or "X") on both qubits, with parameter θ."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import Parameter

    if basis not in BASES:
        raise ValueError(f"basis must be one of {BASES}, not {basis!r}")
    qc = QuantumCircuit(2, 2, name=f"h2-ucc-{basis.lower()}")
    qc.x(0)
    qc.ry(Parameter("θ"), 1)
    qc.cx(1, 0)
    if basis == "X":
        qc.h([0, 1])
    qc.measure([0, 1], [0, 1])
    return qc


def _z_part(bits: Bits) -> float:
    return TERMS["IZ"] * z_string(bits, [0]) + TERMS["ZI"] * z_string(bits, [1]) + TERMS["ZZ"] * z_string(bits, [0, 1])


def _x_part(bits: Bits) -> float:
    return TERMS["XX"] * z_string(bits, [0, 1])


def energy(counts: Mapping[str, Mapping[str, int]]) -> Estimate:
    """The energy from the counts of each basis ({"Z": counts, "X": counts}), with its standard error."""
    return (mean_of(counts["Z"], _z_part) + mean_of(counts["X"], _x_part)).shifted(TERMS["II"])
