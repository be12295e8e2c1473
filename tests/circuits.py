"""OpenQASM sources the tests share."""

from __future__ import annotations


def qasm2(body: str, qubits: int = 2, clbits: int | None = None) -> str:
    clbits = qubits if clbits is None else clbits
    return f"OPENQASM 2.0;\nqreg q[{qubits}];\ncreg c[{clbits}];\n{body}\n"


def amplified_identity(repetitions: int) -> str:
    """The paper's fidelity circuit on edge (0, 1): native gates only, ideal output |00>."""
    layer = "cz q[0],q[1];\ncz q[0],q[1];\nx q[0];\nx q[0];\nsx q[1];\nsx q[1];\nsx q[1];\nsx q[1];\n"
    return qasm2(layer * repetitions + "measure q -> c;")
