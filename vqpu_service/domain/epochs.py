"""Device epochs: every change to a device is a new immutable epoch, numbered after every one before it."""

from __future__ import annotations


def next_epoch(current: int, last: int | None) -> int:
    """The number a device's next epoch takes: after its current one and after any stored (never reused)."""
    return max(current, last or 0) + 1
