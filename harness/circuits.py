"""OpenQASM sources the tests and the benchmarks share."""

from __future__ import annotations

BELL = "OPENQASM 3.0;\nbit[2] c;\nsx $0;\ncz $0, $1;\nc[0] = measure $0;\nc[1] = measure $1;\n"
"""A native Bell pair on physical qubits 0 and 1 (OpenQASM 3): admissible on line-16 and on Fez."""


def qasm2(body: str, qubits: int = 2, clbits: int | None = None) -> str:
    """`body` under an OpenQASM 2 header with `qubits` qubits and `clbits` bits (as many as qubits by default)."""
    clbits = qubits if clbits is None else clbits
    return f"OPENQASM 2.0;\nqreg q[{qubits}];\ncreg c[{clbits}];\n{body}\n"


def amplified_identity(repetitions: int) -> str:
    """Each layer is the identity: CZ·CZ on (0, 1), X·X on q0, SX⁴ on q1."""
    layer = "cz q[0],q[1];\ncz q[0],q[1];\nx q[0];\nx q[0];\n" + "sx q[1];\n" * 4
    return "OPENQASM 2.0;\nqreg q[2];\ncreg c[2];\n" + layer * repetitions + "measure q -> c;\n"


def busy(qubits: int, layers: int) -> str:
    """Native layers of SX on every qubit and CZ along Fez's first row: noisy on Fez, so density-matrix
    simulated and slow. 10 qubits x 40 layers took 10-20 s on two cores; 10 x 5 about 1 s."""
    layer = "".join(f"sx q[{i}];\n" for i in range(qubits))
    layer += "".join(f"cz q[{i}],q[{i + 1}];\n" for i in range(qubits - 1))
    return qasm2(layer * layers + "measure q -> c;", qubits=qubits)


def hostile_circuits(size: int) -> dict[str, str]:
    """OpenQASM 3 sources of about `size` bytes in the shapes that once made the admission check
    quadratic, plus a valid native program of the same size on line-16 (a device every server has)."""
    head = "OPENQASM 3.0;\nbit[2] c;\n"
    gates = "sx $0;\ncz $0, $1;\n"
    return {
        "no statement end": head + "x" * (size - len(head)),
        "unclosed comments": head + "/*" * ((size - len(head)) // 2),
        "one long word": head + "sx" + "q" * (size - len(head) - 3) + ";",
        "open parentheses": head + "rz(" + "(" * (size - len(head) - 4) + ";",
        "open braces": head + "if (c[0]) " + "{" * (size - len(head) - 10),
        "valid native program": head + gates * ((size - len(head) - 40) // len(gates)) + "c[0] = measure $0;\n",
    }
