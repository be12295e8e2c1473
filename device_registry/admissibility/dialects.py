"""The OpenQASM dialects the check reads, and the one include each may use."""

from __future__ import annotations

DIALECTS = ("qasm2", "qasm3")

INCLUDES = {"qasm2": "qelib1.inc", "qasm3": "stdgates.inc"}
"""The standard library of each dialect: the only file a program may include (nothing else is ever read)."""
