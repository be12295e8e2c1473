"""The admissibility pass: pieces in source order, blocks and the bodies it skips, and the fast path.

A native gate on one or two plain operands that breaks no rule is settled by one possessive regular
expression and a few look-ups (the fast path); everything else, every violation included, goes to
`statements`, which reports it.
"""

from __future__ import annotations

import contextlib
import re
from typing import NamedTuple

from device_registry.admissibility import syntax
from device_registry.admissibility.device import Device
from device_registry.admissibility.lexer import Lexer, Lines
from device_registry.admissibility.registers import Registers
from device_registry.admissibility.statements import Statements, unsupported
from device_registry.admissibility.stats import LARGEST_WEIGHT, CircuitStats, Tally
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


_SKIPPED = "skipped"
_CONDITIONAL = {"if": ("if_else", "if"), "while": ("while_loop", "loop"), "switch": ("switch_case", "switch")}
"""Headers of the form `word (condition) {`: the construct each needs, and the kind of block it opens."""


class _Block(NamedTuple):
    probe: int
    """Where its header starts."""
    kind: str
    """`if`, `loop`, `switch`, `case`, or `skipped` (a body that is not checked)."""
    weight: int
    """The tally's weight outside it, restored at its `}`."""
    switch: _Switch | None = None
    """What a switch's cases must respect."""


class _Switch:
    __slots__ = ("labels", "width")

    def __init__(self, width: int) -> None:
        self.width = width
        """Bits of the target: a case value must fit in them."""
        self.labels: set[int] = set()
        """The case values so far (each may appear once; `default` as -1)."""


class Checker:
    def __init__(
        self,
        source: str,
        dialect: str,
        snapshot: Snapshot,
        limit: int,
        *,
        parameters: bool = False,
        device: Device | None = None,
    ) -> None:
        """`parameters`: accept `input float[64] name;` declarations (a PUB's circuit; `stats.inputs` lists
        them). `device`: the snapshot's `Device`, when one is already built (checking many circuits)."""
        self.source, self.dialect, self.limit = source, dialect, limit
        self.device = Device(snapshot) if device is None else device
        self.registers = Registers(dialect)
        self.tally = Tally(self.device.num_qubits)
        self.statements = Statements(
            dialect, self.device, self.registers, self._report, self.tally, parameters=parameters
        )
        self.lines = Lines(source)
        self.violations: list[Violation] = []
        self.switch_width = 0
        """The target's width of the switch header just read (see `_control_flow`)."""
        self.probe = 0
        """Where the piece being checked starts (see `lexer.Piece`): its line is counted only if reported."""

    def run(self) -> list[Violation]:
        with contextlib.suppress(_Stop):
            self._walk()
        return self.violations

    @property
    def stats(self) -> CircuitStats:
        """The program's size as far as `run` read it: the whole program's when it found no violation."""
        return self.tally.freeze(self.registers.classical, tuple(self.registers.inputs))

    # --- blocks -------------------------------------------------------------------

    def _walk(self) -> None:
        lexer = Lexer(self.source)
        opened: list[_Block] = []  # the open blocks, outermost first
        skipping = 0  # braces open in a body that is not checked, its own included
        first = True
        fast = _FAST.match
        tally = self.tally
        for text, probe, end in lexer:
            self.probe = probe
            if not end:
                if text.strip():
                    self._report(parse_error(f"missing ';' after {clip(text)!r}"))
            elif skipping:  # inside a body that is not checked (a definition, an unsupported block)
                if end == "{":
                    skipping += 1
                elif end == "}":
                    skipping -= 1
                    if not skipping:
                        tally.weight = opened.pop().weight
                        self.statements.depth = len(opened)
            elif end == ";":
                if opened and opened[-1].kind == "switch" and text.strip():
                    self._report(parse_error(f"a switch holds only 'case' and 'default' blocks: {clip(text)!r}"))
                    continue
                m = fast(text)
                if m is None or not self._fast(m):
                    stmt = text.strip()
                    if first and not stmt:
                        continue
                    self._statement(stmt, first)
                first = False
            elif end == "{":
                first = False
                outside = tally.weight  # a `for` header multiplies it for its body
                kind = self._block_header(text, opened[-1] if opened else None)
                switch = _Switch(self.switch_width) if kind == "switch" else None
                opened.append(_Block(probe, kind or _SKIPPED, outside, switch))
                self.statements.depth = len(opened)
                if kind == "loop":
                    self.statements.loops += 1
                if kind is None:
                    skipping = 1
            else:
                if text.strip():
                    self._report(parse_error(f"missing ';' after {clip(text)!r}"))
                if opened:
                    block = opened.pop()
                    self.statements.depth = len(opened)
                    tally.weight = block.weight
                    if block.kind == "loop":
                        self.statements.loops -= 1
                else:
                    self._report(parse_error("'}' without a matching '{'"))
        if lexer.unclosed_comment is not None:
            self.probe = lexer.unclosed_comment
            self._report(parse_error("this '/*' comment is never closed"))
        if opened:
            self.probe = opened[0].probe
            self._report(parse_error("this '{' is never closed"))

    def _block_header(self, text: str, outer: _Block | None) -> str | None:
        """The kind of block `text` opens when its statements are to be checked (`if`, `for`, `while`,
        `switch`, `case`); None for a body that is skipped (a gate definition, an unsupported block,
        which are reported). A control-flow block is checked only on a device that executes it."""
        gate = syntax.GATE_HEADER.match(text)
        if gate is not None:
            name = gate.group(2)
            if name in self.device.native:
                self._report(parse_error(f"{name} is a native gate of {self.device.id}; it cannot be redefined"))
            return None
        header = text.strip()
        if outer is not None and outer.switch is not None:
            return self._case(header, outer.switch)
        try:
            kind = self._control_flow(header)
        except Rejection as r:
            self._report(r)
            return None
        self.tally.dynamic = True  # a shot's outcome (or a loop) steers the block: Aer simulates each shot
        return kind

    def _control_flow(self, header: str) -> str:
        """The block kind of a control-flow header; raises the Rejection that makes its body unchecked."""
        word = first_word(header) or header[:1]
        device = self.device
        if word == "else":
            rest = header[4:].lstrip()
            if not rest:
                device.require_control_flow("if_else", header)
                return "if"
            header, word = rest, first_word(rest) or rest[:1]
        if word in _CONDITIONAL:
            construct, kind = _CONDITIONAL[word]
            device.require_control_flow(construct, header)
            parts = syntax.split_condition(header, word)
            if parts is None or parts[1].strip():
                raise parse_error(f"malformed '{word}' header: {clip(header)!r}")
            if kind == "switch":
                self.switch_width = self.registers.switch_target(parts[0])
            else:
                self.registers.condition(parts[0])
            return kind
        if word == "for":
            device.require_control_flow("for_loop", header)
            iterations = syntax.for_iterations(header)
            self.tally.weight = min(self.tally.weight * iterations, LARGEST_WEIGHT)
            return "loop"
        raise unsupported(word or header[:1], header)

    def _case(self, header: str, switch: _Switch) -> str | None:
        """A block directly inside a `switch`: `case 0, 1 {` or `default {`; each value (and `default`,
        as -1) at most once in a switch, and each one the target's bits can hold."""
        if header == "default":
            values = [-1]
        elif syntax.CASE.fullmatch(header):
            values = [syntax.number(v) for v in header[4:].split(",")]
        else:
            self._report(parse_error(f"a switch holds only 'case' and 'default' blocks: {clip(header)!r}"))
            return None
        labels = switch.labels
        for value in values:
            if value in labels:
                what = "'default'" if value < 0 else f"case {value}"
                self._report(parse_error(f"{what} appears twice in one switch: {clip(header)!r}"))
                return None
            if value.bit_length() > switch.width:
                self._report(parse_error(f"case {value} is no value of the switch's {switch.width}-bit target"))
                return None
            labels.add(value)
        return "case"

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
            tally.ops += tally.weight
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
        weight = tally.weight
        tally.ops += weight
        tally.two_qubit_ops += weight
        tally.active.add(a)
        tally.active.add(b)
        if tally.measured and (a in tally.measured or b in tally.measured):
            tally.dynamic = True
        low, high = (a, b) if a < b else (b, a)
        tally.spans[low] += weight
        tally.spans[high] -= weight
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
