"""What the control-plane benchmark submits: a 1,000-gate native circuit on Fez, and `harness.circuits.BELL`."""

from __future__ import annotations

import math
from functools import cache

from device_registry import catalog
from device_registry.snapshot import Snapshot

FEZ = "ibm-fez"
GATES = 1000
QUBITS = 16
"""The circuit stays on Fez's first 16 qubits: admission prices a task (issue 18), and the same 1,000 gates
spread over all 154 usable qubits are a noisy statevector no slot can hold (refused TOO_LARGE), so no
longer a task that admission stores. 16 noisy qubits, 1,000 shots: an estimate of minutes, admitted."""
SMALL_DEVICE = "line-16"
"""Where the dispatch and throughput tasks go; nothing else in the run queues work for it."""


@cache
def fez() -> Snapshot:
    return catalog.load(FEZ)


@cache
def fez_circuit(gates: int = GATES) -> str:
    """`gates` native gate applications spread over the usable couplers of Fez's first `QUBITS` qubits, then
    measure what was touched.

    Rounds of sx, rz, cz, x walk the AVAILABLE cz edges whose qubits are both online, so the
    admission check has to resolve every operand, every coupling and every qubit's status.
    """
    snap = fez()
    edges = sorted(
        (a, b)
        for (a, b), edge in snap.couplings().items()
        if a < b < QUBITS and edge.available and snap.qubit(a).online and snap.qubit(b).online
    )
    ops: list[str] = []
    touched: set[int] = set()
    i = 0
    while len(ops) < gates:
        a, b = edges[i % len(edges)]
        theta = math.pi / (i % 7 + 2)
        for op in (f"sx ${a};", f"rz({theta:.12f}) ${b};", f"cz ${a}, ${b};", f"x ${b};"):
            if len(ops) < gates:
                ops.append(op)
        touched |= {a, b}
        i += 1
    measured = sorted(touched)
    lines = ["OPENQASM 3.0;", f"bit[{len(measured)}] c;", *ops]
    lines += [f"c[{k}] = measure ${q};" for k, q in enumerate(measured)]
    return "\n".join(lines) + "\n"
