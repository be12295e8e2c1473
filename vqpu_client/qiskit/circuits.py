"""A Qiskit circuit as the OpenQASM 3 source the service runs, refused here when it cannot round-trip.

The runner reads qubit i of the circuit (or `$i` once transpiled) as device qubit i, which is what
`transpile(circuit, backend)` produces. Its counts come back split by classical register, in the order
of the registers' bits, so a circuit whose bits are not exactly its registers laid end to end (a loose
bit, two registers sharing one, a register whose bits are out of order) would come back with bits lost
or misplaced: it is refused before anything is sent.
"""

from __future__ import annotations

from collections.abc import Iterable

from qiskit import QuantumCircuit, qasm3
from qiskit.qasm3 import STDGATES_INC_GATES, QASM3ExporterError

from vqpu_client.qiskit.errors import UnsupportedCircuitError


def to_openqasm(circuit: QuantumCircuit, native_gates: Iterable[str]) -> str:
    """OpenQASM 3 for `circuit` under `include "stdgates.inc"`. Native gates outside stdgates.inc (`ecr`,
    `rzz`, ...) are left undefined: the runner predeclares a device's natives and refuses a program
    that defines one again."""
    if not isinstance(circuit, QuantumCircuit):
        raise UnsupportedCircuitError(f"backend.run takes QuantumCircuits, not {type(circuit).__name__}")
    if circuit.parameters:
        names = ", ".join(sorted(p.name for p in circuit.parameters)[:5])
        raise UnsupportedCircuitError(
            f"circuit {circuit.name!r} has unbound parameters ({names}); assign_parameters() before running it"
        )
    check_registers(circuit)
    try:
        builtin = ("U", *sorted(set(native_gates) - _STDGATES))
        source: str = qasm3.dumps(circuit, basis_gates=builtin)
    except QASM3ExporterError as exc:
        raise UnsupportedCircuitError(f"circuit {circuit.name!r} cannot be written as OpenQASM 3: {exc}") from exc
    return source


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
