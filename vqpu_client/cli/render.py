"""Where the CLI writes: results on stdout (text, or JSON with --json), everything else on stderr.

With --json, stdout carries only JSON documents: one per command, or one per line for `watch`.
Text is for a terminal, and what it shows comes from the server and, through it, from other users
(tags, names, messages): every character a terminal could act on is shown escaped (`visible`), so a
tag cannot clear an admin's screen, retitle the window or reorder what it shows. JSON stays exact:
the same characters are written as JSON's own `\\u` escapes, which decode to the very same strings.
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
        print(json_text(plain(value), indent=2), file=self.stdout, flush=True)

    def json_line(self, value: Any) -> None:
        print(json_text(plain(value), separators=(",", ":")), file=self.stdout, flush=True)

    def line(self, text: str = "") -> None:
        print(visible(text), file=self.stdout, flush=True)

    def lines(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.line(text)

    def note(self, text: str) -> None:
        """A remark for the person at the terminal, never part of the result."""
        print(visible(text), file=self.stderr, flush=True)

    def warning(self, code: str, message: str) -> None:
        """Something the person should fix, though the command goes on: `vqpu: warning: ...`, or a JSON line."""
        if self.as_json:
            print(json_text({"warning": {"code": code, "message": message}}), file=self.stderr, flush=True)
        else:
            print(f"vqpu: warning: {visible(message)}", file=self.stderr, flush=True)

    def error(self, body: dict[str, Any], message: str) -> None:
        """`message` may span lines (a usage error's usage); each is shown escaped."""
        if self.as_json:
            print(json_text(body), file=self.stderr, flush=True)
        else:
            shown = "\n".join(visible(part) for part in message.split("\n"))
            print(f"vqpu: error: {shown}", file=self.stderr, flush=True)


def visible(text: str) -> str:
    """`text` with every character that is not printable escaped as Python writes it (`\\x1b`, `\\u202e`).

    Not printable, as `str.isprintable` says: C0 controls and DEL, C1 controls (`\\x9b` is a CSI to
    some terminals), format characters (bidi overrides and isolates, zero-width characters), line and
    paragraph separators, surrogates, private-use and unassigned code points, and every space but
    ASCII's. Backslashes stay as they are, so escaping twice changes nothing.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ord(ch)) for ch in text)


def json_text(value: Any, **dumps: Any) -> str:
    """`value` as JSON, readable (UTF-8, not `\\u` for every accent) yet safe on a terminal: each character
    `visible` would escape is written as its `\\uXXXX` escape, which decodes to the same string."""
    text = json.dumps(value, ensure_ascii=False, **dumps)
    # Outside strings JSON is printable ASCII and the indent's newlines, so what is left to escape is in a string.
    if text.replace("\n", "").isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == "\n" else _json_escape(ch) for ch in text)


def _json_escape(ch: str) -> str:
    units = ch.encode("utf-16-be", "surrogatepass")  # a lone surrogate too: it never reaches stdout raw
    return "".join(f"\\u{int.from_bytes(units[i : i + 2]):04x}" for i in range(0, len(units), 2))


def _escape(code: int) -> str:
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


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
    return visible(str(value))  # before the widths are measured, so that columns stay aligned


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
