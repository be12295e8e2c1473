"""A Qiskit circuit as the OpenQASM 3 source the service runs, refused here when it cannot round-trip.

The runner reads qubit i of the circuit (or `$i` once transpiled) as device qubit i, which is what
`transpile(circuit, backend)` produces. Its counts come back split by classical register, in the order
of the registers' bits, so a circuit whose bits are not exactly its registers laid end to end (a loose
bit, two registers sharing one, a register whose bits are out of order) would come back with bits lost
or misplaced: it is refused before anything is sent.

A `switch` is written as the `if`/`else` chain it means (Qiskit writes OpenQASM 3's `switch` only in a
pre-standard form that no OpenQASM 3 parser reads): each case value becomes `if (target == value)`, in
order, and `default` the last `else`. The service runs the same operations on the same shots.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from qiskit import QuantumCircuit, qasm3
from qiskit.circuit import CASE_DEFAULT, ClassicalRegister, Clbit, IfElseOp, SwitchCaseOp
from qiskit.qasm3 import STDGATES_INC_GATES, QASM3ExporterError

from vqpu_client.qiskit.errors import UnsupportedCircuitError


def to_openqasm(circuit: QuantumCircuit, native_gates: Iterable[str], *, parameters: bool = False) -> str:
    """OpenQASM 3 for `circuit` under `include "stdgates.inc"`. Native gates outside stdgates.inc (`ecr`,
    `rzz`, ...) are left undefined: the runner predeclares a device's natives and refuses a program
    that defines one again.

    `parameters=True` (a PUB's circuit) keeps free parameters as `input float[64] name;` declarations, in
    `circuit.parameters` order (what `qasm3.dumps` writes, checked here): the column order of the PUB's
    parameter values. Otherwise a circuit with free parameters is refused."""
    if not isinstance(circuit, QuantumCircuit):
        raise UnsupportedCircuitError(f"backend.run takes QuantumCircuits, not {type(circuit).__name__}")
    if circuit.parameters and not parameters:
        names = ", ".join(sorted(p.name for p in circuit.parameters)[:5])
        raise UnsupportedCircuitError(
            f"circuit {circuit.name!r} has unbound parameters ({names}); assign_parameters() before running it"
        )
    check_registers(circuit)
    try:
        builtin = ("U", *sorted(set(native_gates) - _STDGATES))
        source: str = qasm3.dumps(switches_as_if_chains(circuit), basis_gates=builtin)
    except QASM3ExporterError as exc:
        raise UnsupportedCircuitError(f"circuit {circuit.name!r} cannot be written as OpenQASM 3: {exc}") from exc
    if parameters:
        declared = _INPUT.findall(source)
        if len(declared) != circuit.num_parameters:
            raise UnsupportedCircuitError(
                f"circuit {circuit.name!r}: its OpenQASM 3 declares {len(declared)} inputs for its "
                f"{circuit.num_parameters} parameters; the parameter values could not be matched to them"
            )
    return source


_INPUT = re.compile(r"^input\s+float\[64\]\s+([^\s;]+)\s*;", re.MULTILINE)


_STDGATES = frozenset(gate.name for gate in STDGATES_INC_GATES)


def check_registers(circuit: QuantumCircuit) -> None:
    """Every classical bit in exactly one register, the registers covering the bits in order."""
    laid_out = [bit for register in circuit.cregs for bit in register]
    if laid_out != list(circuit.clbits):
        raise UnsupportedCircuitError(
            f"circuit {circuit.name!r}: its classical bits must be its registers laid end to end "
            f"({circuit.num_clbits} bits, registers {[(r.name, r.size) for r in circuit.cregs]}); a bit in no "
            "register or in two would come back lost or misplaced. Measure into ClassicalRegisters "
            "(QuantumCircuit(n, m), measure_all(), add_register(ClassicalRegister(k, name)))"
        )


def switches_as_if_chains(circuit: QuantumCircuit) -> QuantumCircuit:
    """`circuit` with every `switch` (at any depth) replaced by the `if`/`else` chain it means."""
    if not any(getattr(inst.operation, "blocks", ()) for inst in circuit.data):
        return circuit
    out = circuit.copy_empty_like()
    for inst in circuit.data:
        operation = inst.operation
        if isinstance(operation, SwitchCaseOp):
            chain = _if_chain(operation, list(inst.clbits), circuit.name)
            if isinstance(chain, QuantumCircuit):  # a switch with only a default: its body, always
                out.compose(chain, qubits=inst.qubits, clbits=inst.clbits, inplace=True)
            else:
                out.append(chain, inst.qubits, inst.clbits)
        elif getattr(operation, "blocks", ()):
            blocks = [switches_as_if_chains(block) for block in operation.blocks]
            out.append(operation.replace_blocks(blocks), inst.qubits, inst.clbits)
        else:
            out.append(inst)
    return out


def _if_chain(switch: SwitchCaseOp, clbits: list[Clbit], name: str) -> IfElseOp | QuantumCircuit:
    """`if (t == v1) {case v1} else { if (t == v2) {...} else {default} }`. The blocks of a switch are laid
    on the instruction's bits by position (`clbits`), so a nested `if` names the target by its bits'
    positions in the enclosing block."""
    target = switch.target
    if not isinstance(target, Clbit | ClassicalRegister):
        raise UnsupportedCircuitError(
            f"circuit {name!r}: a switch on an expression cannot be sent; switch on a classical register or bit"
        )
    cases: list[tuple[int | bool, QuantumCircuit]] = []
    rest: QuantumCircuit | None = None  # the default
    for values, block in switch.cases_specifier():
        lowered = switches_as_if_chains(block)
        for value in values:
            if value is CASE_DEFAULT:
                rest = lowered
            else:
                cases.append((value, lowered))
    if not cases:
        assert rest is not None, "a switch has at least one case"
        return rest
    for value, block in reversed(cases[1:]):
        body = block.copy_empty_like()
        body.append(IfElseOp((_target_in(body, target, clbits), value), block, rest), body.qubits, body.clbits)
        rest = body
    value, block = cases[0]
    return IfElseOp((target, value), block, rest)


def _target_in(
    body: QuantumCircuit, target: Clbit | ClassicalRegister, clbits: list[Clbit]
) -> Clbit | ClassicalRegister:
    if isinstance(target, Clbit):
        return body.clbits[clbits.index(target)]
    bits = [body.clbits[clbits.index(bit)] for bit in target]
    for register in body.cregs:
        if list(register) == bits:
            return register
    register = ClassicalRegister(name=target.name, bits=bits)
    body.add_register(register)
    return register
