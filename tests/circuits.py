"""OpenQASM sources the tests share."""

from __future__ import annotations

from benchmarks.calibration_fidelity.run import amplified_identity

__all__ = ["amplified_identity", "qasm2"]


def qasm2(body: str, qubits: int = 2, clbits: int | None = None) -> str:
    clbits = qubits if clbits is None else clbits
    return f"OPENQASM 2.0;\nqreg q[{qubits}];\ncreg c[{clbits}];\n{body}\n"
