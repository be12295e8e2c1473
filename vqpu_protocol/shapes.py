"""Array shapes as NumPy treats them, in pure Python: what PUBs are sized by (`vqpu_protocol.pubs`) and
what the control plane's domain checks a result's shape with. The standard library only, so that the
domain may import it (it knows no pydantic)."""

from __future__ import annotations

import math

__all__ = ["broadcast", "size"]


def size(shape: list[int] | tuple[int, ...]) -> int:
    """How many elements an array of this shape holds (1 for the scalar shape `[]`)."""
    return math.prod(shape)


def broadcast(a: list[int] | tuple[int, ...], b: list[int] | tuple[int, ...]) -> list[int] | None:
    """NumPy's broadcast of two shapes, or None where they do not broadcast."""
    out: list[int] = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x != y and 1 not in (x, y):
            return None
        out.append(y if x == 1 else x)
    return out[::-1]
