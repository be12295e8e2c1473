"""Strict wire types: what every document is built from, and the safe decoding of a JSON body.

Strict means no coercion (`true` is not 1, `"100"` is not 100), integers bounded by the columns
that store them, and text free of NUL (PostgreSQL cannot store it) and of lone surrogates (they
cannot be encoded as UTF-8, so a stored one poisons every later read).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from vqpu_protocol.limits import MAX_ID_CHARS, MAX_JSON_DEPTH, MAX_SEED, MAX_SERIAL

_UNSAFE = re.compile("[\x00\ud800-\udfff]")


class UnsafeText(ValueError):
    """A decoded document holds text that cannot be stored or re-encoded, or nests too deep."""


def unsafe_reason(text: str) -> str | None:
    """Why `text` cannot travel or be stored, or None when it can. Linear in its length."""
    found = _UNSAFE.search(text)
    if found is None:
        return None
    return "contains a NUL character" if found.group() == "\x00" else "contains a lone UTF-16 surrogate"


def _safe(text: str) -> str:
    reason = unsafe_reason(text)
    if reason is not None:
        raise ValueError(f"text {reason}")
    return text


SafeStr = Annotated[str, AfterValidator(_safe)]
Id = Annotated[SafeStr, Field(min_length=1, max_length=MAX_ID_CHARS)]
"""Any text but NUL and lone surrogates: an `Id` is not safe as a file name (`..`, `a/b`, a newline are Ids)."""
PATH_SAFE_ID = "[A-Za-z0-9][A-Za-z0-9_-]*"
"""What an id must look like to become one path component (a run directory's name): letters, digits, `-`
and `_`, starting with a letter or a digit. Match it whole (`re.fullmatch`): never `.`, `..`, `/` or a newline."""
Serial = Annotated[int, Field(ge=0, le=MAX_SERIAL)]
"""An epoch, attempt, sequence number or event id."""
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Request(BaseModel):
    """A document received from another process: strict types, unknown fields refused, immutable."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Document(BaseModel):
    """A document this project writes and another process reads back strictly (run-dir files)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, populate_by_name=True)


class Response(BaseModel):
    """A response body: what the server sends; clients may validate it (unknown fields are ignored,
    so a newer server's additions do not break an older client)."""

    model_config = ConfigDict(frozen=True)


def decode_json(body: bytes | str) -> Any:
    """Decode a JSON body and refuse what must never be stored: NUL, lone surrogates, deep nesting.

    Raises `json.JSONDecodeError` for text that is not JSON and `UnsafeText` for the rest. Linear in
    the size of the body.
    """
    try:
        value = json.loads(body)
    except UnicodeDecodeError as exc:  # bytes that are not UTF-8 are not JSON text either
        raise json.JSONDecodeError(f"not UTF-8 ({exc.reason})", "", exc.start) from None
    except RecursionError:
        raise UnsafeText(f"JSON nests deeper than {MAX_JSON_DEPTH} levels") from None
    check_json(value)
    return value


def check_json(value: Any) -> None:
    """Walk a decoded JSON value once: depth within MAX_JSON_DEPTH, every string and key safe."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item, "a string")
        elif isinstance(item, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise UnsafeText(f"JSON nests deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_text(key, "an object key")
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def _check_text(text: str, what: str) -> None:
    reason = unsafe_reason(text)
    if reason is not None:
        raise UnsafeText(f"{what} {reason}: NUL and unpaired surrogates cannot be stored")
