"""Parse OpenQASM into a circuit on physical qubits, and fit it to the device without moving a qubit.

A circuit addresses physical qubits: qubit i of its register (or `$i` in OpenQASM 3) is device
qubit i. Non-native gates are translated into the native set on the same qubits; there is no
layout, routing or optimisation, so an amplified identity stays amplified.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import openqasm3
from openqasm3 import ast
from qiskit import QuantumCircuit, qasm2, transpile
from qiskit.circuit import (
    BreakLoopOp,
    CircuitInstruction,
    ClassicalRegister,
    Clbit,
    ContinueLoopOp,
    ControlFlowOp,
    ForLoopOp,
)
from qiskit.circuit.library import get_standard_gate_name_mapping
from qiskit.transpiler import Target, TranspilerError
from qiskit_qasm3_import import types
from qiskit_qasm3_import.converter import ConvertVisitor
from qiskit_qasm3_import.exceptions import raise_from_node
from qiskit_qasm3_import.state import LocalScope, State

from device_registry import Snapshot
from device_registry.admissibility import LARGEST_WEIGHT, CircuitStats, ViolationCode, disallowed_includes
from runner.errors import InvalidPayload
from vqpu_protocol.codes import ErrorCode

_STANDARD = get_standard_gate_name_mapping()


def parse(source: str, dialect: str, snapshot: Snapshot) -> QuantumCircuit:
    return parse_with_inputs(source, dialect, snapshot)[0]


def parse_with_inputs(source: str, dialect: str, snapshot: Snapshot) -> tuple[QuantumCircuit, tuple[str, ...]]:
    """The circuit on physical qubits, and the names of the `input` parameters its source declares, in
    declaration order (what each row of a PUB's `parameter_values` follows; qasm2 declares none)."""
    refused = disallowed_includes(source, dialect)
    if refused:  # refused before any parser sees them: no file is opened, none is quoted back
        raise InvalidPayload(
            ErrorCode.NOT_ADMISSIBLE,
            f"line {refused[0].line}: {refused[0].message}",
            {"violations": [v.to_dict() for v in refused]},
        )
    try:
        inputs: tuple[str, ...] = ()
        if dialect == "qasm2":
            # No include search path: qelib1.inc is built into the parser, and nothing else is ever opened.
            circuit = qasm2.loads(source, include_path=(), custom_instructions=_builtin_natives(snapshot))
        else:
            circuit, inputs = _load_qasm3(source, snapshot)
    except Exception as exc:  # each parser raises its own family; all mean the same to a user
        raise InvalidPayload(ErrorCode.PARSE_ERROR, f"cannot parse the {dialect} circuit: {exc}") from None
    return _on_physical_qubits(circuit), inputs


_PRIMER_QASM3 = """OPENQASM 3.0;
input float[64] theta;
bit[2] c;
rz(theta) $0;
sx $0;
rz(pi/2) $1;
cz $0, $1;
c[0] = measure $0;
c[1] = measure $1;
"""
_PRIMER_QASM2 = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[2];
creg c[2];
h q[0];
cx q[0],q[1];
measure q -> c;
"""


def prime() -> None:
    """Parse one small program of each dialect, so that a process forked after this one parses its first circuit
    as fast as its second: the OpenQASM 3 parser builds its lexer and parser tables lazily, on first use (about
    10 ms of a tiny task's runner time). Pure Python, no threads: safe before a fork."""
    _NativeGatesVisitor([_STANDARD[name] for name in ("cz", "rz", "sx")]).convert(
        openqasm3.parse(_PRIMER_QASM3), source=_PRIMER_QASM3
    )
    qasm2.loads(_PRIMER_QASM2, include_path=())


def _builtin_natives(snapshot: Snapshot) -> list[qasm2.CustomInstruction]:
    """Native gates need no `include "qelib1.inc"`: they are the device's vocabulary."""
    out = []
    for name in snapshot.native_gates:
        gate = _STANDARD.get(name)
        if gate is not None:
            out.append(qasm2.CustomInstruction(name, len(gate.params), gate.num_qubits, type(gate), builtin=True))
    return out


def _load_qasm3(source: str, snapshot: Snapshot) -> tuple[QuantumCircuit, tuple[str, ...]]:
    visitor = _NativeGatesVisitor([_STANDARD[name] for name in snapshot.native_gates if name in _STANDARD])
    program = openqasm3.parse(source)
    circuit: QuantumCircuit = visitor.convert(program, source=source).circuit
    inputs = tuple(
        statement.identifier.name
        for statement in program.statements
        if isinstance(statement, ast.IODeclaration) and statement.io_identifier is ast.IOKeyword.input
    )
    return circuit, inputs


class _NativeGatesVisitor(ConvertVisitor):
    """OpenQASM 3 with the device's native gates predeclared, as a QPU's hardware gates are: no
    `include "stdgates.inc"` needed, and gates stdgates.inc lacks (`ecr`, `rzz`, ...) usable at all.

    An include of stdgates.inc keeps the predeclared native gates; a program's own `gate` definition
    of a native name is an error, as any redefinition is.
    """

    def __init__(self, natives: list[Any]) -> None:
        super().__init__()
        self._natives = natives
        self._predeclared: set[str] = set()

    def visit_Program(self, node: ast.Program, context: State) -> State:
        for gate in self._natives:
            context = self._define_gate(gate.name, type(gate), len(gate.params), gate.num_qubits, node, context)
            self._predeclared.add(gate.name)
        state: State = super().visit_Program(node, context)
        return state

    def _define_gate(
        self, name: str, definition: Any, n_parameters: int, n_qubits: int, definer: Any, context: State
    ) -> State:
        if name in self._predeclared and isinstance(definer, ast.Include):
            return context
        state: State = super()._define_gate(name, definition, n_parameters, n_qubits, definer, context)
        return state

    def visit_SwitchStatement(self, node: ast.SwitchStatement, context: State) -> State:
        """`switch (c) { case 0 { ... } case 1, 2 { ... } default { ... } }` on a bit or bit register,
        which qiskit_qasm3_import 0.6 does not convert; written as its `visit_BranchingStatement` is."""
        target, kind = self._resolve_generic(node.target, context, strict=True)
        # Not a slice: Qiskit would need an aliasing register for it, which would add a register to the counts.
        if not isinstance(kind, types.Bit | types.BitArray) or not isinstance(target, Clbit | ClassicalRegister):
            raise_from_node(node.target, "a switch needs a single bit or a whole bit register to switch on")
        with context.circuit.switch(target) as case:
            for values, body in node.cases:
                with case(*(self._resolve_constant_int(value, context) for value in values)):
                    self._visit_block(body.statements, context)
            if node.default is not None:
                with case(case.DEFAULT):
                    self._visit_block(node.default.statements, context)
        return context

    def _visit_block(self, statements: list[ast.Statement], context: State) -> None:
        with LocalScope(context) as inner:
            for statement in statements:
                self.visit(statement, inner)


def _on_physical_qubits(circuit: QuantumCircuit) -> QuantumCircuit:
    """OpenQASM 3 `$n` qubits arrive as a layout; make qubit n of the circuit device qubit n."""
    layout = circuit.layout
    if layout is None:
        return circuit
    physical = {virtual: index for index, virtual in layout.initial_layout.get_physical_bits().items()}
    width = max(physical.values(), default=-1) + 1
    out = QuantumCircuit(width, name=circuit.name, global_phase=circuit.global_phase)
    for creg in circuit.cregs:
        out.add_register(creg)
    loose = [c for c in circuit.clbits if not circuit.find_bit(c).registers]
    if loose:
        out.add_bits(loose)
    out.compose(circuit, qubits=[physical[q] for q in circuit.qubits], clbits=circuit.clbits, inplace=True)
    return out


@dataclass(frozen=True)
class Fitted:
    circuit: QuantumCircuit
    transpile: Literal["native", "basis-translation"]
    """Untouched, or basis-translated on the same qubits."""


def fit_to_device(circuit: QuantumCircuit, snapshot: Snapshot, target: Target, seed: int) -> Fitted:
    if circuit.num_qubits > snapshot.num_qubits:
        raise InvalidPayload(
            ErrorCode.NOT_ADMISSIBLE,
            f"the circuit uses {circuit.num_qubits} qubits; {snapshot.device_id} has {snapshot.num_qubits}",
        )
    _refuse_unlisted_control_flow(circuit, snapshot)
    allowed = _vocabulary(snapshot)
    if all(inst.operation.name in allowed for inst in _every_instruction(circuit)):
        check_admissible(circuit, snapshot)
        return Fitted(circuit, "native")
    try:
        # The target declares the device's control flow, so the gates inside its blocks are translated too.
        translated = transpile(
            circuit,
            target=_with_loop_exits(target, circuit),
            initial_layout=list(range(circuit.num_qubits)),
            layout_method="trivial",
            routing_method="none",
            optimization_level=0,
            seed_transpiler=seed,
        )
    except TranspilerError as exc:
        raise InvalidPayload(
            ErrorCode.NOT_ADMISSIBLE, f"the circuit does not fit {snapshot.device_id}: {exc}"
        ) from None
    check_admissible(translated, snapshot)
    return Fitted(translated, "basis-translation")


_LOOP_EXITS = frozenset({"break_loop", "continue_loop"})
"""`break` and `continue`: part of the loop they leave, executable wherever that loop is."""

_LOOP_EXIT_OPS = {"break_loop": BreakLoopOp, "continue_loop": ContinueLoopOp}

_CONSTRUCTS = {"if_else": "if/else", "for_loop": "for", "while_loop": "while", "switch_case": "switch", "box": "box"}
"""Qiskit's name for a control-flow construct, and the OpenQASM 3 statement a user wrote."""


def _with_loop_exits(target: Target, circuit: QuantumCircuit) -> Target:
    """The target, declaring `break_loop` and `continue_loop` where the circuit uses them and it does not:
    they are part of the loop the target declares, and the basis translator refuses an operation it cannot
    find. A copy (about 15 ms for Fez), so the cached target is never changed."""
    used = {inst.operation.name for inst in _every_instruction(circuit)} & _LOOP_EXITS
    missing = used - set(target.operation_names)
    if not missing:
        return target
    extended = copy.deepcopy(target)
    for name in sorted(missing):
        extended.add_instruction(_LOOP_EXIT_OPS[name], name=name)
    return extended


def _vocabulary(snapshot: Snapshot) -> frozenset[str]:
    """What the device executes as written: its native gates, directives and listed control flow."""
    listed = set(snapshot.control_flow)
    loops = _LOOP_EXITS if listed & {"for_loop", "while_loop"} else frozenset()
    return frozenset(snapshot.native_gates) | set(snapshot.directives) | listed | loops


def _refuse_unlisted_control_flow(circuit: QuantumCircuit, snapshot: Snapshot) -> None:
    """A construct the device does not execute is refused by name: no translation can remove it."""
    listed = set(snapshot.control_flow)
    for inst in _every_instruction(circuit):
        name = inst.operation.name
        if isinstance(inst.operation, ControlFlowOp) and name not in listed:
            construct = _CONSTRUCTS.get(name, name)
            executes = ", ".join(_CONSTRUCTS.get(c, c) for c in snapshot.control_flow) or "none"
            raise InvalidPayload(
                ErrorCode.NOT_ADMISSIBLE,
                f"{snapshot.device_id} does not execute `{construct}` ({name}) within a shot; "
                f"the control flow it executes: {executes}",
                {"construct": name, "device_id": snapshot.device_id, "control_flow": list(snapshot.control_flow)},
            )


def check_admissible(circuit: QuantumCircuit, snapshot: Snapshot) -> None:
    """Every operation native, on ONLINE qubits, and 2-qubit ones on an AVAILABLE coupling; those inside a
    control-flow block (on the outer circuit's qubits) as much as those outside, and every construct listed."""
    _refuse_unlisted_control_flow(circuit, snapshot)
    allowed = _vocabulary(snapshot)
    couplings = snapshot.couplings()
    problems: list[dict[str, object]] = []
    for position, inst, qubits, within in _placed(circuit, [circuit.find_bit(q).index for q in circuit.qubits]):
        name = inst.operation.name
        if isinstance(inst.operation, ControlFlowOp) or name in _LOOP_EXITS:
            continue  # listed (checked above): no pulse of its own; a construct's blocks' operations follow it
        where = {"op": position} | ({"within": within} if within else {})
        if name not in allowed:
            problems.append({"code": ViolationCode.UNKNOWN_GATE, **where, "gate": name, "qubits": qubits})
            continue
        offline = [q for q in qubits if not snapshot.qubits[q].online]
        if offline and name != "barrier":  # a barrier fences scheduling; no pulse reaches its qubits
            problems.append({"code": ViolationCode.QUBIT_OFFLINE, **where, "gate": name, "qubits": offline})
        if len(qubits) == 2 and name not in snapshot.directives:
            edge = couplings.get((qubits[0], qubits[1]))
            if edge is None or not edge.available or edge.gate != name:
                problems.append({"code": ViolationCode.NO_COUPLING, **where, "gate": name, "qubits": qubits})
        if len(problems) >= 20:
            break
    if problems:
        first = problems[0]
        inside = f" inside {_CONSTRUCTS.get(str(first['within']), first['within'])}" if "within" in first else ""
        raise InvalidPayload(
            ErrorCode.NOT_ADMISSIBLE,
            f"{first['code']}: {first['gate']} on qubits {first['qubits']}{inside} is not executable on "
            f"{snapshot.device_id}" + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""),
            problems,
        )


def _placed(
    circuit: QuantumCircuit, physical: list[int], position: int | None = None, within: str | None = None
) -> Iterator[tuple[int, CircuitInstruction, list[int], str | None]]:
    """Each operation, nested ones after their construct, with its top-level position, its physical
    qubits (a block's qubit i is its instruction's qubit i) and the innermost construct it is inside."""
    index = {q: physical[i] for i, q in enumerate(circuit.qubits)}
    for here, inst in enumerate(circuit.data):
        qubits = [index[q] for q in inst.qubits]
        at = here if position is None else position
        yield at, inst, qubits, within
        for block in getattr(inst.operation, "blocks", ()):
            yield from _placed(block, qubits, at, inst.operation.name)


def measures(circuit: QuantumCircuit) -> bool:
    """Whether any operation, inside a control-flow block or not, measures a qubit."""
    return any(inst.operation.name == "measure" for inst in _every_instruction(circuit))


_NOT_OPERATIONS = frozenset({"barrier", "break_loop", "continue_loop"})
"""Instructions Aer applies to no qubit: a scheduling fence and a loop's exits (which span the loop's
qubits in Qiskit). The admission pass does not count them either."""

_NOT_ACTING = frozenset({"barrier", "measure", "delay"})
"""Operations that do not act on a measured qubit's state again (Aer still samples after them)."""

DURATION_UNITS = frozenset({"dt", "s", "ms", "us", "ns", "ps"})


def check_delays(circuit: QuantumCircuit, snapshot: Snapshot) -> None:
    """Every delay lasts a finite, non-negative, numeric time; one in `dt` needs the device's dt."""
    for inst in _every_instruction(circuit):
        operation = inst.operation
        if operation.name != "delay":
            continue
        duration, unit = operation.duration, operation.unit
        problem = None
        if not isinstance(duration, int | float) or isinstance(duration, bool):
            problem = f"a delay's duration must be a number, not {duration!r}"
        elif not math.isfinite(duration) or duration < 0:
            problem = f"a delay's duration must be finite and not negative, not {duration!r}"
        elif unit not in DURATION_UNITS:
            problem = f"a delay's unit must be one of {sorted(DURATION_UNITS)}, not {unit!r}"
        elif unit == "dt" and snapshot.dt is None:
            problem = (
                f"delay[{duration}dt]: {snapshot.device_id} declares no dt (sample time), so a duration in dt "
                "has no length; give it in s, ms, us or ns"
            )
        if problem is not None:
            raise InvalidPayload(ErrorCode.PARSE_ERROR, problem)


def _every_instruction(circuit: QuantumCircuit) -> Iterator[CircuitInstruction]:
    for inst in circuit.data:
        yield inst
        for block in getattr(inst.operation, "blocks", ()):
            yield from _every_instruction(block)


def drop_idle_delays(circuit: QuantumCircuit, active: frozenset[int]) -> QuantumCircuit:
    """The circuit without its top-level delays on qubits outside `active` (the padding a scheduler puts
    on every idle qubit of the device): nothing else touches those qubits, so they cannot change the
    counts, and Aer need not simulate them."""
    kept = [
        inst
        for inst in circuit.data
        if inst.operation.name != "delay" or circuit.find_bit(inst.qubits[0]).index in active
    ]
    if len(kept) == len(circuit.data):
        return circuit
    out = circuit.copy_empty_like()
    for inst in kept:
        out.append(inst)
    return out


def compact(circuit: QuantumCircuit, qubits: frozenset[int]) -> tuple[QuantumCircuit, tuple[int, ...]]:
    """The circuit on as few qubits as it acts on: `qubits` (its active ones, and any more to keep) and
    those any top-level operation but a barrier spans, in physical order; with that order (physical qubit
    of each of its qubits). Barriers keep the qubits kept; a delay on a qubit not kept must have been dropped
    (`drop_idle_delays`). For what reads every qubit of the circuit (Aer's EstimatorV2 saves its expectation
    values on all of them): without this, a circuit on qubits 100-102 of a device would be a 103-qubit state."""
    kept = set(qubits)
    for inst in circuit.data:
        if inst.operation.name not in ("barrier", "delay"):
            kept.update(circuit.find_bit(q).index for q in inst.qubits)
    order = tuple(sorted(kept))
    position = {physical: i for i, physical in enumerate(order)}
    out = QuantumCircuit(len(order), name=circuit.name, global_phase=circuit.global_phase)
    for creg in circuit.cregs:
        out.add_register(creg)
    loose = [c for c in circuit.clbits if not circuit.find_bit(c).registers]
    if loose:
        out.add_bits(loose)
    for inst in circuit.data:
        indices = [circuit.find_bit(q).index for q in inst.qubits]
        if inst.operation.name == "barrier":
            indices = [i for i in indices if i in position]
            if not indices:
                continue
            out.barrier(*(out.qubits[position[i]] for i in indices))
            continue
        out.append(inst.operation, [out.qubits[position[i]] for i in indices], inst.clbits, copy=False)
    return out, order


def circuit_stats(circuit: QuantumCircuit, observed: frozenset[int] = frozenset()) -> CircuitStats:
    """What the admissibility pass counts (`Checker.stats`), read off the circuit Aer is given: the same
    numbers for a native circuit, and the true ones for a translated circuit the pass could not count.
    The operations of a conditional block count as the pass counts them: each once, every branch, once
    per iteration of every enclosing `for` loop (a `while` body once). `observed`: qubits an estimator's
    observables read, active (simulated) whatever acts on them."""
    tally = _Tally()
    tally.walk(circuit, [circuit.find_bit(q).index for q in circuit.qubits])
    tally.active.update(observed)
    order = sorted(tally.active)
    crossings = tuple(sum(n for (low, high), n in tally.spans.items() if low <= here < high) for here in order[:-1])
    return CircuitStats(
        expanded_ops=tally.ops,
        two_qubit_ops=tally.two_qubit,
        active_qubits=frozenset(order),
        clbits=circuit.num_clbits,
        classical_registers=len(circuit.cregs),
        dynamic=tally.dynamic,
        crossings=crossings,
        delayed_qubits=frozenset(tally.delayed & tally.active),
    )


class _Tally:
    def __init__(self) -> None:
        self.ops = self.two_qubit = 0
        self.active: set[int] = set()
        self.delayed: set[int] = set()
        self.measured: set[int] = set()
        self.spans: dict[tuple[int, int], int] = {}
        self.dynamic = False

    def walk(self, circuit: QuantumCircuit, physical: list[int], weight: int = 1) -> None:
        """`weight`: how many times each operation of `circuit` runs (the enclosing `for` loops' iterations)."""
        index = {q: physical[i] for i, q in enumerate(circuit.qubits)}
        for inst in circuit.data:
            operation, name = inst.operation, inst.operation.name
            qubits = [index[q] for q in inst.qubits]
            blocks = getattr(operation, "blocks", ())
            if blocks:  # control flow: a shot's outcome steers it (or a loop repeats it): Aer simulates each shot
                self.dynamic = True
                inner = weight
                if isinstance(operation, ForLoopOp):  # counted once per iteration, as the admission pass does
                    inner = min(weight * len(operation.params[0]), LARGEST_WEIGHT)
                for block in blocks:
                    self.walk(block, qubits, weight=inner)
                continue
            if name in _NOT_OPERATIONS:
                continue
            self.ops += weight
            if name == "delay":  # idling activates no qubit; it relaxes an active one, at any depth
                self.delayed.update(qubits)
                continue
            self.active.update(qubits)
            if name == "reset":
                self.dynamic = True
            elif name == "measure":
                self.measured.update(qubits)
            elif name not in _NOT_ACTING and not self.measured.isdisjoint(qubits):
                self.dynamic = True
            if len(qubits) > 1:
                self.two_qubit += weight
                span = (min(qubits), max(qubits))
                self.spans[span] = self.spans.get(span, 0) + weight
