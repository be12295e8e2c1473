"""Where the CLI writes: results on stdout (text, or JSON with --json), everything else on stderr.

With --json, stdout carries only JSON documents: one per command, or one per line for `watch`.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from pydantic import BaseModel


class Output:
    def __init__(self, *, as_json: bool, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self.as_json = as_json
        self.stdout = stdout if stdout is not None else sys.stdout
        self.stderr = stderr if stderr is not None else sys.stderr

    def document(self, value: Any) -> None:
        """One JSON document on stdout (pydantic models as their wire form)."""
        print(json.dumps(plain(value), indent=2, ensure_ascii=False), file=self.stdout, flush=True)

    def json_line(self, value: Any) -> None:
        print(json.dumps(plain(value), separators=(",", ":"), ensure_ascii=False), file=self.stdout, flush=True)

    def line(self, text: str = "") -> None:
        print(text, file=self.stdout, flush=True)

    def lines(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.line(text)

    def note(self, text: str) -> None:
        """A remark for the person at the terminal, never part of the result."""
        print(text, file=self.stderr, flush=True)

    def error(self, body: dict[str, Any], message: str) -> None:
        if self.as_json:
            print(json.dumps(body, ensure_ascii=False), file=self.stderr, flush=True)
        else:
            print(f"vqpu: error: {message}", file=self.stderr, flush=True)


def plain(value: Any) -> Any:
    """A value as JSON data: models by their wire names (`schema`, not `schema_`)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], *, right: Iterable[int] = ()) -> list[str]:
    """Aligned columns; the columns named in `right` (by index) right-aligned (numbers)."""
    body = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in body)]) for i, h in enumerate(headers)]
    aligned = set(right)

    def fmt(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if i in aligned else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return [fmt(list(headers)), *(fmt(r) for r in body)]


def cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return number(value)
    if isinstance(value, list | tuple):
        return ",".join(cell(v) for v in value) or "-"
    return str(value)


def number(value: float | None) -> str:
    """Calibration values: SI floats in 4 significant digits (1.45e-04), integers as they are."""
    if value is None:
        return "-"
    if value == 0 or math.isinf(value) or math.isnan(value):
        return f"{value:g}"
    if float(value).is_integer() and abs(value) < 1e6:
        return f"{int(value)}"
    return f"{value:.4g}" if 1e-3 <= abs(value) < 1e4 else f"{value:.3e}"


def change(a: float | None, b: float | None) -> str:
    """`a -> b (+x%)`; the percentage only when both are numbers and a is not zero."""
    text = f"{number(a)} -> {number(b)}"
    if a is not None and b is not None and a != 0:
        text += f" ({(b - a) / abs(a):+.1%})"
    return text


def short(sha256: str | None) -> str:
    return "-" if sha256 is None else sha256[:12]
