"""Each limit and error code is defined in exactly one module; everything else imports it.

A code written out as a bare string, or a limit re-declared, drifts: the runner and the server
once disagreed about the largest shot count this way.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import vqpu_protocol.limits as limits
from device_registry import EdgeStatus
from device_registry.admissibility import ViolationCode
from vqpu_protocol.codes import ErrorCode

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("device_registry", "vqpu_protocol", "runner", "vqpu_service")
CODES_MODULE = ROOT / "vqpu_protocol" / "codes.py"
LIMITS_MODULE = ROOT / "vqpu_protocol" / "limits.py"
DIALECTS_OWNER = ROOT / "device_registry" / "admissibility"
"""The admissibility check owns the dialects it understands; vqpu_protocol.limits re-exports them."""
DISTINCT = (limits.MAX_SHOTS, limits.MAX_SEED, limits.MAX_SERIAL, limits.MAX_CIRCUIT_BYTES)
"""Limits whose value is distinctive enough that the same literal elsewhere is a copy of it."""


def _modules() -> Iterator[tuple[Path, ast.Module]]:
    for package in SHIPPED:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def test_no_error_code_is_spelled_out_outside_the_codes_module() -> None:
    # A violation's code and an edge's status are their own vocabularies, whatever the spelling.
    codes = {c.value for c in ErrorCode} - {v.value for v in ViolationCode} - {s.value for s in EdgeStatus}
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}"
        for path, tree in _modules()
        if path != CODES_MODULE
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in codes
    ]
    assert found == [], "use vqpu_protocol.codes.ErrorCode instead of bare strings:\n" + "\n".join(found)


def test_no_limit_is_declared_twice() -> None:
    names = {name for name in vars(limits) if name.isupper()}
    found = []
    for path, tree in _modules():
        if path == LIMITS_MODULE:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                found += [
                    f"{path.relative_to(ROOT)}:{node.lineno}: {t.id}"
                    for t in targets
                    if isinstance(t, ast.Name)
                    and t.id in names
                    and not (t.id == "DIALECTS" and path.is_relative_to(DIALECTS_OWNER))
                ]
            elif isinstance(node, ast.Constant) and type(node.value) is int and node.value in DISTINCT:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: the literal {node.value}")
    assert found == [], "import the limit from vqpu_protocol.limits:\n" + "\n".join(found)
