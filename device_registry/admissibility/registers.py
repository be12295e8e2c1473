"""Registers and operands: which physical qubits an operand names.

Quantum registers (`qreg`, `qubit[n]`) are laid out in declaration order from qubit 0, and OpenQASM 3
`$n` names device qubit n directly; a program uses one scheme or the other. An operand stands for a
`range` of qubits, so a register wider than any device costs nothing to name.
"""

from __future__ import annotations

from device_registry.admissibility.syntax import LITERAL, OPERAND, clip, number, unwrap
from device_registry.admissibility.violations import Rejection, parse_error

NOT_BOTH = "a program addresses qubits either as $n or through declared registers, not both"
CONDITIONS = {
    "qasm3": "a bit (c[0], !c[0], c[0] == true) or a whole register compared with an integer (c == 3)",
    "qasm2": "a classical register compared with an integer (c == 3)",
}
"""The conditions the runner's importers read; any other is refused at submit, not after queueing."""


class Registers:
    def __init__(self, dialect: str) -> None:
        self.qasm2 = dialect == "qasm2"
        self.quantum: dict[str, tuple[int, int]] = {}
        """name -> (first physical qubit, size); size 0 for a single `qubit q;`, which has no index."""
        self.classical: dict[str, int] = {}
        """name -> size; 0 for a single `bit c;`."""
        self.inputs: dict[str, None] = {}
        """The `input` parameters declared, in declaration order (a dict: ordered, each name once)."""
        self.width = 0
        self.physical_used = False

    def declare(self, quantum: bool, name: str, size: int, *, indexed: bool) -> None:
        self._new_name(name)
        if not quantum:
            self.classical[name] = size if indexed else 0
            return
        if self.physical_used:
            raise parse_error(NOT_BOTH)
        self.quantum[name] = (self.width, size if indexed else 0)
        self.width += size

    def declare_input(self, name: str) -> None:
        self._new_name(name)
        self.inputs[name] = None

    def _new_name(self, name: str) -> None:
        if name in self.quantum or name in self.classical or name in self.inputs:
            raise parse_error(f"{clip(name)} is declared twice")

    def plain_qubit(self, name: str | None, index: str | None, physical: str | None) -> int | None:
        """`name[index]` or `$physical` (short digit strings) as a qubit, if it plainly is one; else None."""
        if physical is not None:
            if self.qasm2 or self.quantum:
                return None
            self.physical_used = True
            return int(physical)
        reg = self.quantum.get(name or "")
        if reg is None or int(index or 0) >= reg[1]:
            return None
        return reg[0] + int(index or 0)

    def qubits(self, text: str) -> range:
        """The qubits one operand names: `q`, `q[i]` or `$n`."""
        m = OPERAND.match(text)
        if m is None:
            raise parse_error(f"cannot read qubit operand {clip(text)!r}")
        physical, name, index = m.groups()
        if physical is not None:
            return self._physical(number(physical))
        reg = self.quantum.get(name)
        if reg is None:
            raise parse_error(f"{clip(name)} is not a declared quantum register")
        offset, size = reg
        if index is None:
            return range(offset, offset + max(size, 1))
        if size == 0:
            raise parse_error(f"{clip(name)} is a single qubit and cannot be indexed")
        i = number(index)
        if i >= size:
            raise parse_error(f"qubit {clip(name)}[{i}] is out of range for {clip(name)}[{size}]")
        return range(offset + i, offset + i + 1)

    def check_classical(self, text: str) -> int:
        """`c` or `c[i]` names a declared classical register (and a bit inside it); how many bits it names."""
        m = OPERAND.match(text)
        if m is None or m.group(1) is not None:
            raise parse_error(f"malformed classical target {clip(text)!r}")
        name, index = m.group(2), m.group(3)
        size = self.classical.get(name)
        if size is None:
            raise parse_error(f"classical register {clip(name)} is not declared")
        if index is not None and number(index) >= max(size, 1):
            raise parse_error(f"bit {clip(name)}[{number(index)}] is out of range for {clip(name)}[{size}]")
        return 1 if index is not None else max(size, 1)

    def condition(self, text: str) -> None:
        """`text`, the inside of `if (...)` or `while (...)`, is a condition the runner reads (CONDITIONS)
        on declared classical bits or registers."""
        refused = parse_error(f"a condition is {CONDITIONS['qasm2' if self.qasm2 else 'qasm3']}, not {clip(text)!r}")
        t = unwrap(text)
        left, equals, right = t.partition("==")
        if not equals:
            if self.qasm2:
                raise refused
            self._bit(unwrap(t[1:]) if t.startswith("!") else t, refused)
            return
        left, right = unwrap(left), unwrap(right)
        if LITERAL.fullmatch(left) and not self.qasm2:
            left, right = right, left
        if not LITERAL.fullmatch(right):
            raise refused
        if right in ("true", "false"):
            if self.qasm2:
                raise refused
            self._bit(left, refused)
        else:
            number(right)
            self._register(left, refused)

    def switch_target(self, text: str) -> int:
        """How many bits a switch's target has (the inside of `switch (...)`): a whole register, or one bit."""
        refused = parse_error(f"a switch is on a classical register or one bit, not {clip(text)!r}")
        t = unwrap(text)
        m = OPERAND.fullmatch(t)
        if m is None or m.group(1) is not None:
            raise refused
        size = self.classical.get(m.group(2))
        if size and m.group(3) is None:
            return size
        self._bit(t, refused)
        return 1

    def _bit(self, text: str, refused: Rejection) -> None:
        """`c[i]` of a declared register, or a declared single `bit b;`."""
        m = OPERAND.fullmatch(text)
        if m is None or m.group(1) is not None:
            raise refused
        name, index = m.group(2), m.group(3)
        size = self.classical.get(name)
        if size is None:
            raise parse_error(f"classical bit {clip(name)} is not declared")
        if (index is None) != (size == 0):
            raise refused
        if index is not None and number(index) >= size:
            raise parse_error(f"bit {clip(name)}[{number(index)}] is out of range for {clip(name)}[{size}]")

    def _register(self, text: str, refused: Rejection) -> None:
        m = OPERAND.fullmatch(text)
        if m is None or m.group(1) is not None or m.group(3) is not None:
            raise refused
        size = self.classical.get(m.group(2))
        if size is None:
            raise parse_error(f"classical register {clip(m.group(2))} is not declared")
        if size == 0:
            raise refused

    def _physical(self, qubit: int) -> range:
        if self.qasm2:
            raise parse_error(f"${qubit}: physical qubits are OpenQASM 3 syntax")
        if self.quantum:
            raise parse_error(NOT_BOTH)
        self.physical_used = True
        return range(qubit, qubit + 1)
