"""The standard gates the project knows, with their number of qubits and parameters.

One table for OpenQASM 2 (`qelib1.inc` as Qiskit ships it, and the built-in `U` and `CX`), OpenQASM 3
(`stdgates.inc` and the built-in `U`) and Qiskit's standard gate names. Measurement, reset, delay,
barrier and the global phase act on no qubit as a unitary does, so they are not gates here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Flag, auto
from types import MappingProxyType


class Library(Flag):
    """Where a gate name is standard."""

    BUILTIN = auto()
    """A gate of the language itself: `U` and `CX` in OpenQASM 2, `U` in OpenQASM 3."""
    QELIB1 = auto()
    """OpenQASM 2 `qelib1.inc`."""
    STDGATES = auto()
    """OpenQASM 3 `stdgates.inc`."""
    QISKIT = auto()
    """Qiskit's standard gate names: the gates the runner can execute."""


@dataclass(frozen=True)
class Gate:
    name: str
    qubits: int
    params: int
    libraries: Library


_B, _2, _3, _Q = Library.BUILTIN, Library.QELIB1, Library.STDGATES, Library.QISKIT

_ROWS = (
    # one qubit
    Gate("U", 1, 3, _B),
    Gate("u", 1, 3, _2 | _Q),
    Gate("u0", 1, 1, _2),
    Gate("u1", 1, 1, _2 | _3 | _Q),
    Gate("u2", 1, 2, _2 | _3 | _Q),
    Gate("u3", 1, 3, _2 | _3 | _Q),
    Gate("id", 1, 0, _2 | _3 | _Q),
    Gate("x", 1, 0, _2 | _3 | _Q),
    Gate("y", 1, 0, _2 | _3 | _Q),
    Gate("z", 1, 0, _2 | _3 | _Q),
    Gate("h", 1, 0, _2 | _3 | _Q),
    Gate("s", 1, 0, _2 | _3 | _Q),
    Gate("sdg", 1, 0, _2 | _3 | _Q),
    Gate("t", 1, 0, _2 | _3 | _Q),
    Gate("tdg", 1, 0, _2 | _3 | _Q),
    Gate("sx", 1, 0, _2 | _3 | _Q),
    Gate("sxdg", 1, 0, _2 | _Q),
    Gate("rx", 1, 1, _2 | _3 | _Q),
    Gate("ry", 1, 1, _2 | _3 | _Q),
    Gate("rz", 1, 1, _2 | _3 | _Q),
    Gate("r", 1, 2, _Q),
    Gate("p", 1, 1, _2 | _3 | _Q),
    Gate("phase", 1, 1, _3),
    # two qubits
    Gate("CX", 2, 0, _B | _3),
    Gate("cx", 2, 0, _2 | _3 | _Q),
    Gate("cy", 2, 0, _2 | _3 | _Q),
    Gate("cz", 2, 0, _2 | _3 | _Q),
    Gate("ch", 2, 0, _2 | _3 | _Q),
    Gate("cs", 2, 0, _Q),
    Gate("csdg", 2, 0, _Q),
    Gate("csx", 2, 0, _2 | _Q),
    Gate("crx", 2, 1, _2 | _3 | _Q),
    Gate("cry", 2, 1, _2 | _3 | _Q),
    Gate("crz", 2, 1, _2 | _3 | _Q),
    Gate("cp", 2, 1, _2 | _3 | _Q),
    Gate("cphase", 2, 1, _3),
    Gate("cu1", 2, 1, _2 | _Q),
    Gate("cu3", 2, 3, _2 | _Q),
    Gate("cu", 2, 4, _2 | _3 | _Q),
    Gate("swap", 2, 0, _2 | _3 | _Q),
    Gate("iswap", 2, 0, _Q),
    Gate("dcx", 2, 0, _Q),
    Gate("ecr", 2, 0, _Q),
    Gate("rxx", 2, 1, _2 | _Q),
    Gate("ryy", 2, 1, _Q),
    Gate("rzz", 2, 1, _2 | _Q),
    Gate("rzx", 2, 1, _Q),
    Gate("xx_minus_yy", 2, 2, _Q),
    Gate("xx_plus_yy", 2, 2, _Q),
    # three qubits and more
    Gate("ccx", 3, 0, _2 | _3 | _Q),
    Gate("ccz", 3, 0, _Q),
    Gate("cswap", 3, 0, _2 | _3 | _Q),
    Gate("rccx", 3, 0, _2 | _Q),
    Gate("rc3x", 4, 0, _2),
    Gate("rcccx", 4, 0, _Q),
    Gate("c3x", 4, 0, _2),
    Gate("c3sqrtx", 4, 0, _2),
    Gate("c3sx", 4, 0, _Q),
    Gate("c4x", 5, 0, _2),
)

GATES = MappingProxyType({gate.name: gate for gate in _ROWS})
"""Every standard gate by name (case matters: `U` and `CX` are the built-ins, `u` and `cx` library gates)."""


def arity(name: str) -> int | None:
    """How many qubits the standard gate `name` acts on; None for a name that is not a standard gate."""
    gate = GATES.get(name)
    return None if gate is None else gate.qubits


def params(name: str) -> int | None:
    """How many parameters the standard gate `name` takes; None for a name that is not a standard gate."""
    gate = GATES.get(name)
    return None if gate is None else gate.params
