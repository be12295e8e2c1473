"""Admissibility: can this OpenQASM program run, as written, on this device snapshot?

A single linear-time lexical pass over the source, no compiler: comments are dropped, the text is
cut into statements at `;`, `{` and `}`, and each statement is recognised by its first word. Every
gate symbol must be in the snapshot's native set, every qubit an operation touches must exist and
be ONLINE, and every two-qubit gate must sit on an AVAILABLE coupling of that gate, in the listed
direction on a directed device. Directives (`measure`, `reset`, `delay`, `barrier`, as the snapshot
lists them) are allowed on ONLINE qubits; a barrier touches no qubit physically and may span
offline ones. The only include a program may use is its dialect's standard library
(`include "qelib1.inc";` in OpenQASM 2, `include "stdgates.inc";` in OpenQASM 3); no file is read.

Qubits are physical: qubit i of the program is device qubit i. Registers (`qreg`, `qubit[n]`) are
laid out in declaration order from qubit 0; OpenQASM 3 `$n` names device qubit n directly. This is
the same convention the runner uses when it executes the program.

What the pass cannot verify without a compiler (subroutines, gate modifiers applied to non-native
gates, index expressions) is not waved through: it is reported as a `PARSE_ERROR` (or `UNKNOWN_GATE`
for modified gates), so nothing admitted is unchecked. `input` parameters are refused too, unless the
pass is asked to accept them (`parameters=True`, a PUB's circuit): then `input float[64] name;` at top
level, each name once, is read, and `CircuitStats.inputs` lists the names in declaration order. A gate's
arguments are never evaluated, so an expression of parameters (`rz(2*theta + 1) $0;`) is as good as a
number.

On the way the pass counts what a price needs (`Checker.stats`, a `CircuitStats`): operations as
broadcast, the qubits they touch, the classical bits, and whether Aer must simulate shot by shot.
"""

from __future__ import annotations

from device_registry.admissibility.checker import Checker
from device_registry.admissibility.dialects import DIALECTS, INCLUDES
from device_registry.admissibility.includes import disallowed_includes
from device_registry.admissibility.stats import LARGEST_WEIGHT, CircuitStats
from device_registry.admissibility.violations import Violation, ViolationCode
from device_registry.snapshot import Snapshot

__all__ = [
    "DIALECTS",
    "INCLUDES",
    "LARGEST_WEIGHT",
    "MAX_VIOLATIONS",
    "Checker",
    "CircuitStats",
    "Violation",
    "ViolationCode",
    "check",
    "disallowed_includes",
    "is_admissible",
]

MAX_VIOLATIONS = 100
"""`check` stops after this many violations: a 10⁶-gate program of unknown gates is one answer, not 10⁶."""


def check(
    source: str, dialect: str, snapshot: Snapshot, *, limit: int = MAX_VIOLATIONS, parameters: bool = False
) -> list[Violation]:
    """Every reason `source` cannot run as written on `snapshot`; empty when it can.

    Linear in the length of the source, whatever its shape. At most `limit` violations are returned,
    in source order. `parameters`: accept `input float[64] name;` declarations (a PUB's circuit).
    """
    if dialect not in DIALECTS:
        return [
            Violation(
                ViolationCode.UNKNOWN_DIALECT,
                None,
                f"unknown dialect {dialect!r}; expected one of {', '.join(DIALECTS)}",
            )
        ]
    return Checker(source, dialect, snapshot, limit, parameters=parameters).run()


def is_admissible(source: str, dialect: str, snapshot: Snapshot) -> bool:
    return not check(source, dialect, snapshot, limit=1)
