"""The includes of a program other than its dialect's standard library, found without a device.

The runner refuses these before it parses a circuit, so that no parser is ever asked to open a file;
the rule is the admission check's own (`statements.include_rejection`).
"""

from __future__ import annotations

from device_registry.admissibility.dialects import DIALECTS
from device_registry.admissibility.lexer import Lexer, Lines
from device_registry.admissibility.statements import include_rejection
from device_registry.admissibility.syntax import first_word
from device_registry.admissibility.violations import Violation


def disallowed_includes(source: str, dialect: str) -> list[Violation]:
    """Every include statement of `source` that is not its dialect's standard library, in source order."""
    if dialect not in DIALECTS:
        return []
    lines = Lines(source)
    found = []
    for text, probe, end in Lexer(source):
        stmt = text.strip()
        if end == ";" and first_word(stmt) == "include":
            rejection = include_rejection(stmt, dialect)
            if rejection is not None:
                found.append(Violation(rejection.code, lines.of(probe), rejection.message))
    return found
