"""One statement at a time: the version line, includes, declarations, measurements, gate applications.

Each reader raises the `Rejection` that ends its statement; a statement with several independent
faults (a bad classical target and an offline qubit, several pairs of a broadcast) reports the
earlier ones as it goes.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from device_registry.admissibility import syntax
from device_registry.admissibility.device import Device
from device_registry.admissibility.dialects import INCLUDES
from device_registry.admissibility.registers import Registers
from device_registry.admissibility.stats import Tally
from device_registry.admissibility.syntax import clip, first_word
from device_registry.admissibility.violations import Rejection, ViolationCode, parse_error

_MODIFIERS = ("ctrl", "negctrl", "inv", "pow")
_UNSUPPORTED = {
    "for": "loops without braces (write 'for ... { ... }')",
    "while": "loops without braces (write 'while (...) { ... }')",
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
    "end": "end statements",
    "switch": "switch statements without 'case' blocks",
    "case": "'case' blocks outside a switch",
    "default": "'default' blocks outside a switch",
}


class Statements:
    def __init__(
        self,
        dialect: str,
        device: Device,
        registers: Registers,
        report: Callable[[Rejection], None],
        tally: Tally,
        *,
        parameters: bool = False,
    ) -> None:
        self.dialect, self.device, self.registers, self.report = dialect, device, registers, report
        self.tally = tally
        self.parameters = parameters
        """`input float[64] name;` declarations are accepted (a PUB's circuit); else refused."""
        self.included = False
        self.loops = 0
        """How many loop blocks enclose the statement being read (the checker keeps count)."""
        self.depth = 0
        """How many blocks enclose the statement being read (the checker keeps count)."""

    def read(self, stmt: str, first: bool) -> None:
        """Check one statement (stripped); raise the Rejection that ends it, report any before."""
        version = syntax.VERSION.match(stmt)
        if version:
            self._version(version.group(1), first)
            return
        if stmt.startswith("else") and syntax.ELSE.match(stmt):
            stmt = stmt[4:].lstrip()
        top_level = not self.depth
        if stmt.startswith("if") and syntax.IF.match(stmt):
            top_level = False
            self.device.require_control_flow("if_else", stmt)
            self.tally.dynamic = True  # a shot's outcome steers the rest: Aer simulates each shot
            parts = syntax.split_condition(stmt, "if")
            if parts is None:
                raise parse_error(f"unbalanced parentheses in {clip(stmt)!r}")
            self.registers.condition(parts[0])
            body = parts[1]
            stmt = body.strip()
            if not stmt:
                raise parse_error("an 'if' without a statement")
        if stmt in ("break", "continue"):
            if not self.loops:
                raise parse_error(f"'{stmt}' outside a loop")
            return
        word = first_word(stmt)
        if word is None:
            raise parse_error(f"cannot read statement {clip(stmt)!r}")
        if word.startswith("$"):
            raise parse_error(f"a statement cannot start with the qubit {clip(word)}: {clip(stmt)!r}")
        if word == "include":
            self._include(stmt)
        elif word in ("qreg", "creg"):
            self._qasm2_declaration(stmt)
        elif word in ("qubit", "bit") and self.dialect == "qasm3":
            self._qasm3_declaration(stmt)
        elif word == "input" and self.parameters:
            self._input(stmt, top_level)
        elif word in ("gate", "opaque"):
            if word == "gate":
                raise parse_error(f"gate definition without a body: {clip(stmt)!r}")
        elif word in _UNSUPPORTED or word in ("qubit", "bit"):
            raise unsupported(word, stmt)
        elif word == "measure":
            self._measure(stmt[len("measure") :], stmt)
        elif word in _MODIFIERS or syntax.has_modifier(stmt):
            self._modified_gate(stmt)
        elif assign := syntax.ASSIGN_MEASURE.match(stmt):
            bits = self._classical_target(assign.group(1))
            self._measure(assign.group(2)[len("measure") :], stmt, target_given=True, bits=bits)
        else:
            self._application(word, stmt)

    def _version(self, major: str, first: bool) -> None:
        if not first:
            raise parse_error("the OPENQASM version statement must come first")
        if major != self.dialect[-1]:
            raise parse_error(f"the program declares OPENQASM {clip(major)}, but was submitted as {self.dialect}")

    def _include(self, stmt: str) -> None:
        """Only the dialect's standard library, spelt exactly, once; no file is ever read."""
        rejection = include_rejection(stmt, self.dialect)
        if rejection is not None:
            raise rejection
        if self.included:  # both parsers refuse to define the library's gates a second time
            raise parse_error(f'"{INCLUDES[self.dialect]}" is included twice')
        self.included = True

    def _input(self, stmt: str, top_level: bool) -> None:
        """A PUB circuit's parameter: `input float[64] name;` at top level, as `qiskit.qasm3.dumps` writes it
        (its value comes from the PUB's `parameter_values`, in declaration order)."""
        if self.dialect != "qasm3":
            raise parse_error(f"input parameters are OpenQASM 3; a {self.dialect} program cannot declare one")
        if not top_level:
            raise parse_error(f"an input parameter is declared at top level, outside any block: {clip(stmt)!r}")
        m = syntax.INPUT.match(stmt)
        if m is None:
            raise parse_error(f"an input parameter is declared as 'input float[64] name;', not {clip(stmt)!r}")
        self.registers.declare_input(m.group(1))

    def _qasm2_declaration(self, stmt: str) -> None:
        m = syntax.QASM2_DECLARATION.match(stmt)
        if not m:
            raise parse_error(f"malformed register declaration {clip(stmt)!r}")
        kind, name, size = m.group(1), m.group(2), syntax.number(m.group(3))
        _require_a_bit(name, size)
        self._declare(kind == "qreg", name, size, indexed=True)

    def _qasm3_declaration(self, stmt: str) -> None:
        m = syntax.QASM3_DECLARATION.match(stmt)
        if not m:
            raise parse_error(f"malformed declaration {clip(stmt)!r}")
        kind, size_text, name, init = m.groups()
        size = syntax.number(size_text) if size_text is not None else 1
        _require_a_bit(name, size)
        if kind == "qubit" and init is not None:
            raise parse_error(f"a qubit cannot be initialised: {clip(stmt)!r}")
        self._declare(kind == "qubit", name, size, indexed=size_text is not None)
        if init is not None:
            self._measure(init[len("measure") :], stmt, target_given=True, bits=size)

    def _declare(self, quantum: bool, name: str, size: int, *, indexed: bool) -> None:
        before = self.registers.width
        self.registers.declare(quantum, name, size, indexed=indexed)
        if quantum and self.registers.width > self.device.num_qubits:
            self.report(self.device.register_too_wide(name, before, self.registers.width))

    def _measure(self, rest: str, stmt: str, *, target_given: bool = False, bits: int | None = None) -> None:
        """`bits`: how many classical bits the target names, where it was read (None: no target, or a
        target already reported); the qubits measured must be as many, as both importers require."""
        self.device.require_directive("measure")
        source, arrow, target = rest.partition("->")
        if arrow and target_given:
            raise parse_error(f"malformed measurement {clip(stmt)!r}")
        if arrow:
            bits = self._classical_target(target)
        elif self.dialect == "qasm2":
            raise parse_error(f"an OpenQASM 2 measurement needs '-> creg': {clip(stmt)!r}")
        qubits = self._operand(source)
        if bits is not None and bits != len(qubits):
            raise parse_error(f"{len(qubits)} qubit(s) measured into {bits} bit(s): {clip(stmt)!r}")
        self.tally.measure(qubits)
        self._require_online(qubits, "measure")

    def _classical_target(self, text: str) -> int | None:
        """How many bits `text` names; None once its fault is reported."""
        try:
            return self.registers.check_classical(text)
        except Rejection as r:
            self.report(r)
            return None

    def _modified_gate(self, stmt: str) -> None:
        head = stmt.rpartition("@")[2].strip()
        name = first_word(head) or "?"
        try:
            operands = self._operands(syntax.after_gate_name(head, name) or "")
        except Rejection as r:
            self.report(r)
            operands = []
        modifiers = clip(stmt.partition("@")[0])
        raise Rejection(
            ViolationCode.UNKNOWN_GATE,
            f"gate modifiers (ctrl/negctrl/inv/pow @ {clip(name)}) are not native to {self.device.id}",
            tuple(q for group in operands for q in group),
            gate=f"{modifiers} @ {clip(name)}",
        )

    def _application(self, name: str, stmt: str) -> None:
        rest = syntax.after_gate_name(stmt, name)
        if rest is None:
            raise parse_error(f"unbalanced parentheses in {clip(stmt)!r}")
        if name == "delay":
            bracketed = rest.lstrip()
            rest = syntax.strip_designator(rest)
            if rest is None:
                raise parse_error(f"delay needs a duration in brackets: {clip(stmt)!r}")
            self._duration(bracketed[1 : len(bracketed) - len(rest) - 1], stmt)
        operands = self._operands(rest)
        device = self.device
        if name in device.directives:
            if name != "barrier":  # a barrier is a scheduling fence: no pulse reaches the qubits it spans
                self._directive(name, operands)
            return
        if name not in device.native:
            raise device.not_native(name, tuple(q for group in operands for q in group))
        arity = device.arity.get(name, 1)
        if not operands:
            raise parse_error(f"{name} needs {arity} qubit operand(s)")
        if arity == 1:
            for group in operands:
                self._require_online(group, name, raising=False)
            if len(operands) != 1:
                raise parse_error(f"{name} acts on 1 qubit; {len(operands)} operands given")
            self.tally.each(operands[0])
            return
        if len(operands) != arity:
            raise parse_error(f"{name} acts on {arity} qubits; {len(operands)} operand(s) given")
        pairs = _broadcast(operands)
        if pairs is None:
            raise parse_error(f"registers of different sizes in one broadcast: {clip(stmt)!r}")
        for qubits in pairs:
            self.tally.multi(qubits)
        for qubits in pairs:
            problem = device.multi_qubit_problem(name, qubits)
            if problem is not None:
                self.report(problem)

    def _directive(self, name: str, operands: list[tuple[int, ...]]) -> None:
        """`reset` or `delay`: one operation per qubit named; a reset anywhere makes every shot its own."""
        tally = self.tally
        for group in operands:
            self._require_online(group, name, raising=False)
            if name == "reset":
                tally.each(group)
                tally.dynamic = True
            else:  # a delay on a measured qubit still lets Aer sample (measured: Aer 0.18)
                tally.delay(group)

    def _duration(self, text: str, stmt: str) -> None:
        """A delay lasts a literal duration (the runner's OpenQASM 3 importer takes nothing else: no sign,
        no expression), finite, a whole number of samples in dt, and in dt only on a device with a dt."""
        literal = syntax.DURATION.fullmatch(text)
        if literal is None:
            raise parse_error(f"a delay's duration must be a literal such as 100ns or 25000dt: {clip(stmt)!r}")
        value = float(literal.group(1).replace("_", ""))
        if not math.isfinite(value):
            raise parse_error(f"a delay's duration must be finite: {clip(stmt)!r}")
        if literal.group(2) == "dt":
            if not value.is_integer():
                raise parse_error(f"a duration in dt is a whole number of samples: {clip(stmt)!r}")
            if self.device.snapshot.dt is None:
                raise parse_error(
                    f"{self.device.id} declares no dt (sample time), so a duration in dt has no length; give "
                    f"it in s, ms, us or ns: {clip(stmt)!r}"
                )

    # --- operands -----------------------------------------------------------------

    def _operands(self, text: str) -> list[tuple[int, ...]]:
        """Each comma-separated operand as the physical qubits it stands for."""
        if not text or text.isspace():
            return []
        return [self._operand(part) for part in text.split(",")]

    def _operand(self, text: str) -> tuple[int, ...]:
        qubits = self.registers.qubits(text)
        self.device.require_existing(qubits)
        return tuple(qubits)

    def _require_online(self, qubits: tuple[int, ...], name: str, *, raising: bool = True) -> None:
        offline = self.device.offline(qubits)
        if offline:
            problem = self.device.offline_violation(name, offline)
            if raising:
                raise problem
            self.report(problem)


def _require_a_bit(name: str, size: int) -> None:
    if size < 1:
        raise parse_error(f"register {clip(name)} must have at least one bit")


def unsupported(word: str, stmt: str) -> Rejection:
    what = _UNSUPPORTED.get(word, f"'{clip(word)}' statements")
    return parse_error(f"{what} are not supported by the admissibility check: {clip(stmt)!r}")


def _broadcast(operands: list[tuple[int, ...]]) -> list[tuple[int, ...]] | None:
    """OpenQASM broadcasting: registers of one size pair up element-wise; single qubits repeat."""
    sizes = {len(group) for group in operands if len(group) > 1}
    if len(sizes) > 1:
        return None
    n = sizes.pop() if sizes else 1
    return [tuple(group[i] if len(group) > 1 else group[0] for group in operands) for i in range(n)]


def include_rejection(stmt: str, dialect: str) -> Rejection | None:
    """Why the include statement `stmt` may not be used, or None for the dialect's standard library."""
    allowed = f'"{INCLUDES[dialect]}"'
    name = stmt[len("include") :].strip()
    if name == allowed:
        return None
    if not syntax.STRING.fullmatch(name):
        return parse_error(f"malformed include {clip(stmt)!r}")
    return Rejection(
        ViolationCode.INCLUDE_NOT_ALLOWED,
        f"include {clip(name, 120)} is not allowed: the only include a {dialect} program may use is {allowed}",
    )
