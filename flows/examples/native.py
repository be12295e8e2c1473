"""Logical Qiskit circuits as OpenQASM 3 in a device's native gates, on chosen physical qubits.

The service runs a circuit as written (qubits are physical, native gates only: docs/devices.md), so
the examples compile theirs here: Qiskit's basis translation and 1-qubit merging to the snapshot's
native gates, without layout or routing, then logical qubit i is written as physical `$layout[i]`.
A 2-qubit gate must land on an available coupling of the snapshot; `LayoutError` says which does not,
before anything is submitted. A parametrised circuit is compiled once and bound per evaluation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from device_registry import Snapshot


class LayoutError(ValueError):
    """The physical qubits chosen do not fit the circuit or the device."""


class NativeProgram:
    """`circuit` (a QuantumCircuit, measurements included) compiled once for `snapshot` on `layout`."""

    def __init__(self, circuit: Any, layout: Sequence[int], snapshot: Snapshot) -> None:
        from qiskit import transpile

        if len(layout) != circuit.num_qubits or len(set(layout)) != len(layout):
            raise LayoutError(f"the layout {list(layout)} must name {circuit.num_qubits} distinct physical qubits")
        offline = [q for q in layout if q >= snapshot.num_qubits or not snapshot.qubit(q).online]
        if offline:
            raise LayoutError(f"qubits {offline} are not online qubits of {snapshot.device_id}")
        self.layout = list(layout)
        self.snapshot = snapshot
        basis = [g for g in snapshot.native_gates if g != "id"]
        self.compiled = transpile(circuit, basis_gates=basis, optimization_level=1, seed_transpiler=0)
        self._check_couplings()

    @property
    def parameters(self) -> list[Any]:
        return list(self.compiled.parameters)

    def qasm(self, values: Mapping[Any, float] | Sequence[float] | None = None) -> str:
        """The OpenQASM 3 source with `values` bound to the circuit's parameters (in their sorted order
        when a sequence)."""
        bound = self.compiled.assign_parameters(values) if values is not None else self.compiled
        if bound.parameters:
            raise ValueError(f"unbound parameters: {sorted(p.name for p in bound.parameters)}")
        return self._source(bound, {})

    def template(self) -> str:
        """The OpenQASM 3 source with the circuit's parameters left free, for a PUB: `input float[64] p0;`
        and so on, declared in the parameters' sorted order (`parameters`), which is therefore the order of
        a PUB's `parameter_values` columns."""
        names = {p: f"p{i}" for i, p in enumerate(self.compiled.parameters)}
        inputs = [f"input float[64] {name};" for name in names.values()]
        return self._source(self.compiled, names, inputs)

    def _source(self, bound: Any, names: Mapping[Any, str], inputs: Sequence[str] = ()) -> str:
        lines = ["OPENQASM 3.0;", *inputs]
        if bound.num_clbits:
            lines.append(f"bit[{bound.num_clbits}] c;")
        for inst in bound.data:
            op = inst.operation
            qubits = ", ".join(f"${self.layout[bound.find_bit(q).index]}" for q in inst.qubits)
            if op.name == "measure":
                lines.append(f"c[{bound.find_bit(inst.clbits[0]).index}] = measure {qubits};")
            elif op.name == "barrier":
                lines.append(f"barrier {qubits};")
            elif op.params:
                angles = ", ".join(_angle(p, names) for p in op.params)
                lines.append(f"{op.name}({angles}) {qubits};")
            else:
                lines.append(f"{op.name} {qubits};")
        return "\n".join(lines) + "\n"

    def _check_couplings(self) -> None:
        couplings = self.snapshot.couplings()
        for inst in self.compiled.data:
            if len(inst.qubits) != 2 or inst.operation.name in self.snapshot.directives:
                continue
            pair = tuple(self.layout[self.compiled.find_bit(q).index] for q in inst.qubits)
            edge = couplings.get((pair[0], pair[1]))
            if edge is None or not edge.available or edge.gate != inst.operation.name:
                raise LayoutError(
                    f"{inst.operation.name} on physical qubits {pair}: no such coupling on {self.snapshot.device_id}"
                )


_EXPRESSION = re.compile(r"[A-Za-z0-9_.+\-*/() ]+")


def _angle(value: Any, names: Mapping[Any, str]) -> str:
    """A gate angle as OpenQASM 3: a float literal, or an expression of the template's inputs."""
    free = getattr(value, "parameters", None)
    if not free:
        return repr(float(value))
    from qiskit.circuit import Parameter

    text = str(value.subs({p: Parameter(names[p]) for p in free}))
    if _EXPRESSION.fullmatch(text) is None:
        raise ValueError(f"cannot write the angle {text!r} as OpenQASM 3")
    return text


def best_coupled_pair(snapshot: Snapshot) -> tuple[int, int]:
    """The available coupler, between online qubits, with the lowest calibrated error: its own plus both
    qubits' 1-qubit and readout errors (unknown values count 0, so an ideal device gives its first)."""
    best: tuple[float, tuple[int, int]] | None = None
    for e in snapshot.edges:
        a, b = snapshot.qubit(e.source), snapshot.qubit(e.target)
        if not (e.available and a.online and b.online):
            continue
        cost = (e.error or 0.0) + sum((q.error_1q or 0.0) + (q.readout_error or 0.0) for q in (a, b))
        pair = (min(e.source, e.target), max(e.source, e.target))
        if best is None or (cost, pair) < best:
            best = (cost, pair)
    if best is None:
        raise LayoutError(f"{snapshot.device_id} has no available coupler between online qubits")
    return best[1]
