"""The admissibility pass: pieces in source order, blocks and the bodies it skips, and the fast path.

A native gate on one or two plain operands that breaks no rule is settled by one possessive regular
expression and a few look-ups (the fast path); everything else, every violation included, goes to
`statements`, which reports it.
"""

from __future__ import annotations

import contextlib
import re

from device_registry.admissibility import syntax
from device_registry.admissibility.device import Device
from device_registry.admissibility.lexer import Lexer, Lines
from device_registry.admissibility.registers import Registers
from device_registry.admissibility.statements import Statements, unsupported
from device_registry.admissibility.stats import CircuitStats, Tally
from device_registry.admissibility.syntax import clip, first_word
from device_registry.admissibility.violations import Rejection, Violation, parse_error
from device_registry.snapshot import Snapshot

_PLAIN_OPERAND = r"(?:(" + syntax.NAME + r")\s*+\[\s*+(\d{1,9}+)\s*+\]|\$(\d{1,9}+))\s*+"
_FAST = re.compile(
    r"\s*+([a-z][a-z0-9_]*+)(?:\s++|(?=[($]))(?:\([^()]*+\)\s*+)?"
    + _PLAIN_OPERAND
    + r"(?:,\s*+"
    + _PLAIN_OPERAND
    + r")?\Z"
)


class _Stop(Exception):
    """Raised once `limit` violations are collected."""


class Checker:
    def __init__(self, source: str, dialect: str, snapshot: Snapshot, limit: int) -> None:
        self.source, self.dialect, self.limit = source, dialect, limit
        self.device = Device(snapshot)
        self.registers = Registers(dialect)
        self.tally = Tally(self.device.num_qubits)
        self.statements = Statements(dialect, self.device, self.registers, self._report, self.tally)
        self.lines = Lines(source)
        self.violations: list[Violation] = []
        self.probe = 0
        """Where the piece being checked starts (see `lexer.Piece`): its line is counted only if reported."""

    def run(self) -> list[Violation]:
        with contextlib.suppress(_Stop):
            self._walk()
        return self.violations

    @property
    def stats(self) -> CircuitStats:
        """The program's size as far as `run` read it: the whole program's when it found no violation."""
        return self.tally.freeze(self.registers.classical)

    # --- blocks -------------------------------------------------------------------

    def _walk(self) -> None:
        lexer = Lexer(self.source)
        opened: list[int] = []  # where each open block's header starts
        skip_depth: int | None = None
        first = True
        fast = _FAST.match
        for text, probe, end in lexer:
            self.probe = probe
            if not end:
                if text.strip():
                    self._report(parse_error(f"missing ';' after {clip(text)!r}"))
            elif skip_depth is not None:  # inside a body that is not checked (a definition, an unsupported block)
                if end == "{":
                    opened.append(probe)
                elif end == "}":
                    opened.pop()
                    if len(opened) == skip_depth:
                        skip_depth = None
            elif end == ";":
                m = fast(text)
                if m is None or not self._fast(m):
                    stmt = text.strip()
                    if first and not stmt:
                        continue
                    self.tally.nested = bool(opened)
                    self._statement(stmt, first)
                first = False
            elif end == "{":
                opened.append(probe)
                first = False
                if not self._block_header(text):
                    skip_depth = len(opened) - 1
            else:
                if text.strip():
                    self._report(parse_error(f"missing ';' after {clip(text)!r}"))
                if opened:
                    opened.pop()
                else:
                    self._report(parse_error("'}' without a matching '{'"))
        if lexer.unclosed_comment is not None:
            self.probe = lexer.unclosed_comment
            self._report(parse_error("this '/*' comment is never closed"))
        if opened:
            self.probe = opened[0]
            self._report(parse_error("this '{' is never closed"))

    def _block_header(self, text: str) -> bool:
        """True when the block's statements are to be checked: `if (...) {`, `else {`, `else if (...) {`."""
        gate = syntax.GATE_HEADER.match(text)
        if gate is not None:
            name = gate.group(2)
            if name in self.device.native:
                self._report(parse_error(f"{name} is a native gate of {self.device.id}; it cannot be redefined"))
            return False
        header = rest = text.strip()
        if syntax.ELSE.match(rest):
            rest = rest[4:].lstrip()
            if not rest:
                self.tally.dynamic = True
                return True
        condition = syntax.strip_if(rest)
        if condition is None or condition.strip():
            self._report(unsupported(first_word(header) or header[:1], header))
            return False
        self.tally.dynamic = True  # a shot's outcome steers the block: Aer simulates each shot
        return True

    # --- statements ---------------------------------------------------------------

    def _fast(self, m: re.Match[str]) -> bool:
        """The common case, a native gate on one or two plain operands, all fine: True. Anything else
        (including every violation) goes to the general path, which reports it."""
        name = m.group(1)
        arity = self.device.arity.get(name)
        if arity is None:
            return False
        online = self.device.online
        a = self.registers.plain_qubit(m.group(2), m.group(3), m.group(4))
        if a is None or a >= len(online) or not online[a]:
            return False
        if m.group(5) is None and m.group(7) is None:
            if arity != 1:
                return False
            tally = self.tally  # counted inline: this path is the hot one (Tally.one, unrolled)
            tally.ops += 1
            tally.active.add(a)
            if tally.measured and a in tally.measured:
                tally.dynamic = True
            return True
        b = self.registers.plain_qubit(m.group(5), m.group(6), m.group(7))
        if arity != 2 or b is None or b >= len(online) or not online[b]:
            return False
        edge = self.device.couplings.get((a, b))
        if edge is None or edge.gate != name:
            return False
        tally = self.tally  # Tally.multi, unrolled
        tally.ops += 1
        tally.two_qubit_ops += 1
        tally.active.add(a)
        tally.active.add(b)
        if tally.measured and (a in tally.measured or b in tally.measured):
            tally.dynamic = True
        low, high = (a, b) if a < b else (b, a)
        tally.spans[low] += 1
        tally.spans[high] -= 1
        return True

    def _statement(self, stmt: str, first: bool) -> None:
        try:
            self.statements.read(stmt, first)
        except Rejection as r:
            self._report(r)

    # --- reporting ----------------------------------------------------------------

    def _report(self, r: Rejection) -> None:
        self.violations.append(Violation(r.code, self.lines.of(self.probe), r.message, r.operands, r.gate))
        if len(self.violations) >= self.limit:
            raise _Stop
