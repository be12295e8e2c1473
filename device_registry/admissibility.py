"""Admissibility: can this OpenQASM program run, as written, on this device snapshot? (DESIGN §3)

A single linear-time lexical pass over the source, no compiler: comments are dropped, the text is
cut into statements at `;`, `{` and `}`, and each statement is recognised by its first word. Every
gate symbol must be in the snapshot's native set, every qubit an operation touches must exist and
be ONLINE, and every two-qubit gate must sit on an AVAILABLE coupling of that gate, in the listed
direction on a directed device. Directives (`measure`, `reset`, `delay`, `barrier`, as the snapshot
lists them) are allowed on ONLINE qubits; a barrier touches no qubit physically and may span
offline ones.

Qubits are physical: qubit i of the program is device qubit i. Registers (`qreg`, `qubit[n]`) are
laid out in declaration order from qubit 0; OpenQASM 3 `$n` names device qubit n directly. This is
the same convention the runner uses when it executes the program.

What the pass cannot verify without a compiler (loops, subroutines, `input` parameters, gate
modifiers applied to non-native gates, index expressions) is not waved through: it is reported as a
`PARSE_ERROR` (or `UNKNOWN_GATE` for modified gates), so nothing admitted is unchecked.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from device_registry.snapshot import Snapshot

DIALECTS = ("qasm2", "qasm3")
MAX_VIOLATIONS = 100
"""`check` stops after this many violations: a 10⁶-gate program of unknown gates is one answer, not 10⁶."""


class ViolationCode(StrEnum):
    UNKNOWN_GATE = "UNKNOWN_GATE"
    QUBIT_OUT_OF_RANGE = "QUBIT_OUT_OF_RANGE"
    QUBIT_OFFLINE = "QUBIT_OFFLINE"
    NO_COUPLING = "NO_COUPLING"
    PARSE_ERROR = "PARSE_ERROR"
    UNKNOWN_DIALECT = "UNKNOWN_DIALECT"


@dataclass(frozen=True)
class Violation:
    code: ViolationCode
    line: int | None
    """1-based line of the statement's first character; None for the program as a whole."""
    message: str
    operands: tuple[int, ...] = ()
    """The physical qubits concerned, in the order the statement names them."""
    gate: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": str(self.code),
            "line": self.line,
            "gate": self.gate,
            "operands": list(self.operands),
            "message": self.message,
        }


# Arity of the standard OpenQASM 2 (qelib1.inc) and OpenQASM 3 (stdgates.inc) gates. A native gate not
# listed here is two-qubit if some edge of the snapshot carries it and one-qubit otherwise.
_ARITY = {
    **dict.fromkeys(
        [
            "id",
            "x",
            "y",
            "z",
            "h",
            "s",
            "sdg",
            "t",
            "tdg",
            "sx",
            "sxdg",
            "rx",
            "ry",
            "rz",
            "p",
            "phase",
            "u",
            "u0",
            "u1",
            "u2",
            "u3",
            "U",
            "r",
        ],
        1,
    ),
    **dict.fromkeys(
        [
            "cx",
            "CX",
            "cy",
            "cz",
            "ch",
            "csx",
            "crx",
            "cry",
            "crz",
            "cp",
            "cphase",
            "cu",
            "cu1",
            "cu3",
            "swap",
            "iswap",
            "dcx",
            "ecr",
            "rxx",
            "ryy",
            "rzz",
            "rzx",
        ],
        2,
    ),
    **dict.fromkeys(["ccx", "cswap", "rccx"], 3),
}

_BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_LINE_COMMENT = re.compile(r"//[^\n]*")
_SEGMENT = re.compile(r"([^;{}]*)([;{}])")
_PLAIN_OPERAND = r"\s*(?:([A-Za-z_][A-Za-z0-9_]*)\s*\[\s*(\d+)\s*\]|\$(\d+))\s*"
_FAST = re.compile(r"\s*([a-z][a-z0-9_]*)\s*(?:\([^()]*\))?" + _PLAIN_OPERAND + "(?:," + _PLAIN_OPERAND + r")?\Z")
_BLANK = re.compile(r"\s*")
_FIRST_WORD = re.compile(r"\s*(\$\d+|[A-Za-z_][A-Za-z0-9_]*)")
_OPERAND = re.compile(r"\s*(?:\$(\d+)|([A-Za-z_][A-Za-z0-9_]*)\s*(?:\[\s*(\d+)\s*\])?)\s*\Z")
_VERSION = re.compile(r"\s*OPENQASM\s+(\d+)(?:\.(\d+))?\s*\Z")
_QASM2_DECL = re.compile(r"\s*(qreg|creg)\s+([A-Za-z_][A-Za-z0-9_]*)\s*\[\s*(\d+)\s*\]\s*\Z")
_QASM3_DECL = re.compile(
    r"\s*(qubit|bit)\s*(?:\[\s*(\d+)\s*\])?\s+([A-Za-z_][A-Za-z0-9_]*)\s*(?:=\s*(measure\b.*))?\Z", re.DOTALL
)
_INCLUDE = re.compile(r'\s*include\s+"[^"]*"\s*\Z')
_GATE_HEADER = re.compile(r"\s*(gate|opaque)\s+([A-Za-z_][A-Za-z0-9_]*)\b")
_ASSIGN_MEASURE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*\s*(?:\[\s*\d+\s*\])?)\s*=\s*(measure\b.*)\Z", re.DOTALL)
_UNSUPPORTED = {
    "for": "loops",
    "while": "loops",
    "def": "subroutines",
    "defcal": "calibration blocks",
    "cal": "calibration blocks",
    "defcalgrammar": "calibration blocks",
    "box": "boxes",
    "let": "aliases",
    "input": "input parameters (bind them before submitting)",
    "output": "output declarations",
    "extern": "extern functions",
    "return": "subroutines",
    "break": "loops",
    "continue": "loops",
    "end": "end statements",
    "switch": "switch statements",
}


def check(source: str, dialect: str, snapshot: Snapshot, *, limit: int = MAX_VIOLATIONS) -> list[Violation]:
    """Every reason `source` cannot run as written on `snapshot`; empty when it can.

    Linear in the length of the source. At most `limit` violations are returned, in source order.
    """
    if dialect not in DIALECTS:
        return [
            Violation(
                ViolationCode.UNKNOWN_DIALECT,
                None,
                f"unknown dialect {dialect!r}; expected one of {', '.join(DIALECTS)}",
            )
        ]
    return _Pass(source, dialect, snapshot, limit).run()


def is_admissible(source: str, dialect: str, snapshot: Snapshot) -> bool:
    return not check(source, dialect, snapshot, limit=1)


class _Stop(Exception):
    """Raised once `limit` violations are collected."""


@dataclass
class _Register:
    offset: int | None
    """First physical qubit of a quantum register; None for a classical one."""
    size: int
    """0 for a single `qubit q;` / `bit c;`, which has no index."""


@dataclass
class _Pass:
    source: str
    dialect: str
    snapshot: Snapshot
    limit: int
    violations: list[Violation] = field(default_factory=list)
    qregs: dict[str, _Register] = field(default_factory=dict)
    cregs: dict[str, _Register] = field(default_factory=dict)
    width: int = 0
    physical_used: bool = False
    text: str = ""
    at: int = 0
    """Offset in `text` of the statement being checked; its line is counted only when it is reported."""
    _line_cursor: tuple[int, int] = (0, 1)

    def __post_init__(self) -> None:
        s = self.snapshot
        self.native = frozenset(s.native_gates)
        self.directives = frozenset(s.directives)
        self.online = [q.online for q in s.qubits]
        self.couplings = {pair: e for pair, e in s.couplings().items() if e.available}
        self.coupled_gates = s.two_qubit_gates()
        self.native_arity = {
            g: _ARITY.get(g) or (2 if g in self.coupled_gates else 1) for g in self.native - self.directives
        }

    # --- driver -------------------------------------------------------------------

    def run(self) -> list[Violation]:
        with contextlib.suppress(_Stop):
            self._statements()
        return self.violations

    def _statements(self) -> None:
        text = _LINE_COMMENT.sub("", _BLOCK_COMMENT.sub(lambda m: "\n" * m.group().count("\n"), self.source))
        self.text = text
        opened: list[int] = []  # where each open block's header starts
        skip_depth: int | None = None
        pos, first = 0, True
        for match in _SEGMENT.finditer(text):
            body, end = match.group(1, 2)
            pos = match.end()
            if skip_depth is not None:  # inside a body that is not checked (a definition, an unsupported block)
                if end == "{":
                    opened.append(match.start(1))
                elif end == "}":
                    opened.pop()
                    if len(opened) == skip_depth:
                        skip_depth = None
                continue
            self.at = match.start(1)
            if end == ";":
                if first and not body.strip():
                    continue
                if not (fast := _FAST.match(body)) or not self._fast(fast):
                    self._statement(body.strip(), first)
                first = False
            elif end == "{":
                opened.append(self.at)
                first = False
                if (gate := _GATE_HEADER.match(body)) is not None:
                    skip_depth = len(opened) - 1
                    if gate.group(2) in self.native:
                        self._parse_error(
                            f"{gate.group(2)} is a native gate of {self.snapshot.device_id}; it cannot be redefined"
                        )
                elif not self._block_header(body.strip()):
                    skip_depth = len(opened) - 1
            else:
                if body.strip():
                    self._parse_error(f"missing ';' after {_clip(body)!r}")
                if opened:
                    opened.pop()
                else:
                    self._parse_error("'}' without a matching '{'")
        self.at = pos
        if text[pos:].strip():
            self._parse_error(f"missing ';' after {_clip(text[pos:])!r}")
        if opened:
            self.at = opened[0]
            self._parse_error("this '{' is never closed")

    def _block_header(self, header: str) -> bool:
        """`if (...) {`, `else {`, `else if (...) {`: True when the block's statements are to be checked."""
        rest = header
        if re.match(r"else\b", rest):
            rest = rest[4:].lstrip()
            if not rest:
                return True
        condition = _strip_if(rest)
        if condition is None or condition.strip():
            self._unsupported(_first_word(header) or header[:1], header)
            return False
        return True

    def _fast(self, m: re.Match[str]) -> bool:
        """The common case, a native gate on one or two plain operands, all fine: True. Anything else
        (including every violation) goes to the general path, which reports it."""
        name = m.group(1)
        arity = self.native_arity.get(name)
        if arity is None:
            return False
        a = self._fast_operand(m.group(2), m.group(3), m.group(4))
        if a is None or not self.online[a]:
            return False
        if m.group(5) is None and m.group(7) is None:
            return arity == 1
        b = self._fast_operand(m.group(5), m.group(6), m.group(7))
        if arity != 2 or b is None or not self.online[b]:
            return False
        edge = self.couplings.get((a, b))
        return edge is not None and edge.gate == name

    def _fast_operand(self, reg_name: str | None, index: str | None, physical: str | None) -> int | None:
        if physical is not None:
            if self.dialect == "qasm2" or self.qregs:
                return None
            q = int(physical)
            self.physical_used = True
        else:
            reg = self.qregs.get(reg_name or "")
            if reg is None or reg.offset is None or int(index or 0) >= reg.size:
                return None
            q = reg.offset + int(index or 0)
        return q if q < self.snapshot.num_qubits else None

    # --- statements ---------------------------------------------------------------

    def _statement(self, stmt: str, first: bool) -> None:
        version = _VERSION.match(stmt)
        if version:
            self._version(version.group(1), first)
            return
        if stmt.startswith("else") and re.match(r"else\b", stmt):
            stmt = stmt[4:].lstrip()
        if stmt.startswith("if") and re.match(r"if\s*\(", stmt):
            body = _strip_if(stmt)
            if body is None:
                self._parse_error(f"unbalanced parentheses in {_clip(stmt)!r}")
                return
            stmt = body.strip()
            if not stmt:
                self._parse_error("an 'if' without a statement")
                return
        if _INCLUDE.match(stmt):
            return
        word = _first_word(stmt)
        if word is None:
            self._parse_error(f"cannot read statement {_clip(stmt)!r}")
            return
        if word.startswith("$"):
            self._parse_error(f"a statement cannot start with the qubit {word}: {_clip(stmt)!r}")
        elif word in ("qreg", "creg"):
            self._qasm2_declaration(stmt)
        elif word in ("qubit", "bit") and self.dialect == "qasm3":
            self._qasm3_declaration(stmt)
        elif word in ("gate", "opaque"):
            if word == "gate":
                self._parse_error(f"gate definition without a body: {_clip(stmt)!r}")
        elif word in _UNSUPPORTED or (word in ("qubit", "bit") and self.dialect == "qasm2"):
            self._unsupported(word, stmt)
        elif word == "measure":
            self._measure(stmt[len("measure") :], stmt)
        elif "@" in stmt.split("(", 1)[0] or word in ("ctrl", "negctrl", "inv", "pow"):
            self._modified_gate(stmt)
        else:
            assign = _ASSIGN_MEASURE.match(stmt)
            if assign:
                self._classical_target(assign.group(1))
                self._measure(assign.group(2)[len("measure") :], stmt, target_given=True)
            else:
                self._application(word, stmt)

    def _version(self, major: str, first: bool) -> None:
        wanted = self.dialect[-1]
        if not first:
            self._parse_error("the OPENQASM version statement must come first")
        elif major != wanted:
            self._parse_error(f"the program declares OPENQASM {major}, but was submitted as {self.dialect}")

    def _qasm2_declaration(self, stmt: str) -> None:
        m = _QASM2_DECL.match(stmt)
        if not m:
            self._parse_error(f"malformed register declaration {_clip(stmt)!r}")
            return
        kind, name, size = m.group(1), m.group(2), int(m.group(3))
        if size < 1:
            self._parse_error(f"register {name} must have at least one bit")
            return
        self._declare(kind == "qreg", name, size, indexed=True)

    def _qasm3_declaration(self, stmt: str) -> None:
        m = _QASM3_DECL.match(stmt)
        if not m:
            self._parse_error(f"malformed declaration {_clip(stmt)!r}")
            return
        kind, size_text, name, init = m.groups()
        size = int(size_text) if size_text is not None else 1
        if size < 1:
            self._parse_error(f"register {name} must have at least one bit")
            return
        if kind == "qubit" and init is not None:
            self._parse_error(f"a qubit cannot be initialised: {_clip(stmt)!r}")
            return
        if not self._declare(kind == "qubit", name, size, indexed=size_text is not None):
            return
        if init is not None:
            self._measure(init[len("measure") :], stmt, target_given=True)

    def _declare(self, quantum: bool, name: str, size: int, *, indexed: bool) -> bool:
        if name in self.qregs or name in self.cregs:
            self._parse_error(f"{name} is declared twice")
            return False
        if not quantum:
            self.cregs[name] = _Register(None, size if indexed else 0)
            return True
        if self.physical_used:
            self._parse_error("a program addresses qubits either as $n or through declared registers, not both")
            return False
        self.qregs[name] = _Register(self.width, size if indexed else 0)
        before, self.width = self.width, self.width + size
        if self.width > self.snapshot.num_qubits:
            self._violation(
                ViolationCode.QUBIT_OUT_OF_RANGE,
                f"register {name} brings the program to {self.width} qubits; "
                f"{self.snapshot.device_id} has {self.snapshot.num_qubits}",
                tuple(range(max(before, self.snapshot.num_qubits), self.width))[:16],
            )
        return True

    def _measure(self, rest: str, stmt: str, *, target_given: bool = False) -> None:
        if not self._directive_allowed("measure"):
            return
        source, arrow, target = rest.partition("->")
        if arrow and target_given:
            self._parse_error(f"malformed measurement {_clip(stmt)!r}")
            return
        if arrow:
            self._classical_target(target)
        elif self.dialect == "qasm2":
            self._parse_error(f"an OpenQASM 2 measurement needs '-> creg': {_clip(stmt)!r}")
            return
        qubits = self._operand(source)
        if qubits is not None:
            self._require_online(qubits, "measure")

    def _classical_target(self, text: str) -> None:
        m = _OPERAND.match(text)
        if not m or m.group(1) is not None:
            self._parse_error(f"malformed classical target {_clip(text.strip())!r}")
            return
        name, index = m.group(2), m.group(3)
        reg = self.cregs.get(name)
        if reg is None:
            self._parse_error(f"classical register {name} is not declared")
        elif index is not None and int(index) >= max(reg.size, 1):
            self._parse_error(f"bit {name}[{index}] is out of range for {name}[{reg.size}]")

    def _modified_gate(self, stmt: str) -> None:
        head = stmt.split("@")[-1].strip()
        name = _first_word(head) or "?"
        operands = self._operands(_after_gate_name(head, name) or "")
        flat = tuple(q for group in operands or () for q in group)
        self._violation(
            ViolationCode.UNKNOWN_GATE,
            f"gate modifiers (ctrl/negctrl/inv/pow @ {name}) are not native to {self.snapshot.device_id}",
            flat,
            gate=f"{stmt.split('@')[0].strip()} @ {name}",
        )

    def _application(self, name: str, stmt: str) -> None:
        rest = _after_gate_name(stmt, name)
        if rest is None:
            self._parse_error(f"unbalanced parentheses in {_clip(stmt)!r}")
            return
        if name == "delay":
            rest = _strip_designator(rest)
            if rest is None:
                self._parse_error(f"delay needs a duration in brackets: {_clip(stmt)!r}")
                return
        operands = self._operands(rest)
        if operands is None:
            return
        if name in self.directives:
            if name == "barrier":  # a scheduling fence: no pulse reaches the qubits it spans
                return
            for group in operands:
                self._require_online(group, name)
            return
        if name not in self.native:
            flat = tuple(q for group in operands for q in group)
            self._violation(
                ViolationCode.UNKNOWN_GATE,
                f"{name} is not a native gate of {self.snapshot.device_id} (native: {', '.join(sorted(self.native))})",
                flat,
                gate=name,
            )
            return
        arity = self.native_arity.get(name, 1)
        if not operands:
            self._parse_error(f"{name} needs {arity} qubit operand(s)")
            return
        if arity == 1:
            for group in operands:
                self._require_online(group, name)
            if len(operands) != 1:
                self._parse_error(f"{name} acts on 1 qubit; {len(operands)} operands given")
            return
        if len(operands) != arity:
            self._parse_error(f"{name} acts on {arity} qubits; {len(operands)} operand(s) given")
            return
        for qubits in _broadcast(operands) or self._mismatched_broadcast(stmt):
            self._multi_qubit(name, qubits)

    def _mismatched_broadcast(self, stmt: str) -> list[tuple[int, ...]]:
        self._parse_error(f"registers of different sizes in one broadcast: {_clip(stmt)!r}")
        return []

    def _multi_qubit(self, name: str, qubits: tuple[int, ...]) -> None:
        if len(set(qubits)) != len(qubits):
            self._parse_error(f"{name} names qubit {qubits[0]} more than once", qubits)
            return
        offline = tuple(q for q in qubits if not self.online[q])
        if offline:
            self._violation(ViolationCode.QUBIT_OFFLINE, _offline_message(name, offline), offline, gate=name)
            return
        edge = self.couplings.get(qubits) if len(qubits) == 2 else None
        if edge is not None and edge.gate == name:
            return
        self._violation(ViolationCode.NO_COUPLING, self._no_coupling_message(name, qubits), qubits, gate=name)

    def _no_coupling_message(self, name: str, qubits: tuple[int, ...]) -> str:
        device = self.snapshot.device_id
        if len(qubits) != 2:
            return f"{device} has no {len(qubits)}-qubit couplings for {name}"
        a, b = qubits
        edge = self.snapshot.couplings().get((a, b))
        if edge is not None and not edge.available:
            return f"the {edge.gate} coupling ({a}, {b}) of {device} is UNAVAILABLE"
        if edge is not None:
            return f"coupling ({a}, {b}) of {device} carries {edge.gate}, not {name}"
        if self.snapshot.directed and (b, a) in self.snapshot.couplings():
            return f"{device} is directed: {name} runs on ({b}, {a}), not ({a}, {b})"
        return f"qubits {a} and {b} are not coupled on {device}"

    # --- operands -----------------------------------------------------------------

    def _operands(self, text: str) -> list[tuple[int, ...]] | None:
        """Each comma-separated operand as the physical qubits it stands for; None after a reported error."""
        if not text.strip():
            return []
        out = []
        for part in text.split(","):
            qubits = self._operand(part)
            if qubits is None:
                return None
            out.append(qubits)
        return out

    def _operand(self, text: str) -> tuple[int, ...] | None:
        m = _OPERAND.match(text)
        if not m:
            self._parse_error(f"cannot read qubit operand {_clip(text.strip())!r}")
            return None
        physical, name, index = m.groups()
        if physical is not None:
            return self._physical(int(physical))
        reg = self.qregs.get(name)
        if reg is None:
            self._parse_error(f"{name} is not a declared quantum register")
            return None
        assert reg.offset is not None
        if index is None:
            return self._in_range(tuple(range(reg.offset, reg.offset + max(reg.size, 1))))
        if reg.size == 0:
            self._parse_error(f"{name} is a single qubit and cannot be indexed")
            return None
        if int(index) >= reg.size:
            self._parse_error(f"qubit {name}[{index}] is out of range for {name}[{reg.size}]")
            return None
        return self._in_range((reg.offset + int(index),))

    def _physical(self, qubit: int) -> tuple[int, ...] | None:
        if self.dialect == "qasm2":
            self._parse_error(f"${qubit}: physical qubits are OpenQASM 3 syntax")
            return None
        if self.qregs:
            self._parse_error("a program addresses qubits either as $n or through declared registers, not both")
            return None
        self.physical_used = True
        return self._in_range((qubit,))

    def _in_range(self, qubits: tuple[int, ...]) -> tuple[int, ...] | None:
        outside = tuple(q for q in qubits if q >= self.snapshot.num_qubits)
        if outside:
            self._violation(
                ViolationCode.QUBIT_OUT_OF_RANGE,
                f"qubit {outside[0]} does not exist on {self.snapshot.device_id} "
                f"(qubits 0..{self.snapshot.num_qubits - 1})",
                outside,
            )
            return None
        return qubits

    def _require_online(self, qubits: tuple[int, ...], name: str) -> None:
        offline = tuple(q for q in qubits if q < len(self.online) and not self.online[q])
        if offline:
            self._violation(ViolationCode.QUBIT_OFFLINE, _offline_message(name, offline), offline, gate=name)

    def _directive_allowed(self, name: str) -> bool:
        if name in self.directives:
            return True
        self._violation(ViolationCode.UNKNOWN_GATE, f"{self.snapshot.device_id} does not support {name}", gate=name)
        return False

    # --- reporting ----------------------------------------------------------------

    def _unsupported(self, word: str, stmt: str) -> None:
        what = _UNSUPPORTED.get(word, f"'{word}' statements")
        self._parse_error(f"{what} are not supported by the admissibility check: {_clip(stmt)!r}")

    def _parse_error(self, message: str, operands: tuple[int, ...] = ()) -> None:
        self._violation(ViolationCode.PARSE_ERROR, message, operands)

    def _violation(
        self, code: ViolationCode, message: str, operands: tuple[int, ...] = (), gate: str | None = None
    ) -> None:
        self.violations.append(Violation(code, self._line(), message, operands, gate))
        if len(self.violations) >= self.limit:
            raise _Stop

    def _line(self) -> int:
        """1-based line of the first non-blank character at or after `at` (counted on from the last report)."""
        blank = _BLANK.match(self.text, min(self.at, len(self.text)))
        at = blank.end() if blank else len(self.text)
        offset, line = self._line_cursor
        if at < offset:
            offset, line = 0, 1
        line += self.text.count("\n", offset, at)
        self._line_cursor = (at, line)
        return line


def _first_word(text: str) -> str | None:
    m = _FIRST_WORD.match(text)
    return m.group(1) if m else None


def _after_gate_name(stmt: str, name: str) -> str | None:
    """The operand text after `name` and its optional `(parameters)`; None if the parentheses do not close."""
    rest = stmt.lstrip()[len(name) :].lstrip()
    if not rest.startswith("("):
        return rest
    close = _matching(rest, 0, "(", ")")
    return None if close is None else rest[close + 1 :]


def _strip_designator(rest: str) -> str | None:
    rest = rest.lstrip()
    if not rest.startswith("["):
        return None
    close = _matching(rest, 0, "[", "]")
    return None if close is None else rest[close + 1 :]


def _strip_if(stmt: str) -> str | None:
    """`if (cond) rest` -> `rest`; None if this is not a well-formed `if (...)`."""
    m = re.match(r"if\s*", stmt)
    if not m or not stmt[m.end() :].startswith("("):
        return None
    close = _matching(stmt, m.end(), "(", ")")
    return None if close is None else stmt[close + 1 :]


def _matching(text: str, start: int, open_: str, close: str) -> int | None:
    depth = 0
    for i in range(start, len(text)):
        ch = text[i]
        if ch == open_:
            depth += 1
        elif ch == close:
            depth -= 1
            if depth == 0:
                return i
    return None


def _broadcast(operands: list[tuple[int, ...]]) -> list[tuple[int, ...]] | None:
    """OpenQASM broadcasting: registers of one size pair up element-wise; single qubits repeat."""
    sizes = {len(group) for group in operands if len(group) > 1}
    if len(sizes) > 1:
        return None
    n = sizes.pop() if sizes else 1
    return [tuple(group[i] if len(group) > 1 else group[0] for group in operands) for i in range(n)]


def _offline_message(name: str, qubits: tuple[int, ...]) -> str:
    listed = ", ".join(map(str, qubits))
    return f"{name} touches OFFLINE qubit{'s' if len(qubits) > 1 else ''} {listed}"


def _clip(text: str, limit: int = 60) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"
