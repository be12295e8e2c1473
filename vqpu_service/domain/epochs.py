"""Device epochs: every change to a device is a new immutable epoch, numbered after every one before it."""

from __future__ import annotations

from vqpu_protocol.codes import ErrorCode
from vqpu_service.domain.errors import Conflict


def next_epoch(current: int, last: int | None) -> int:
    """The number a device's next epoch takes: after its current one and after any stored (never reused)."""
    return max(current, last or 0) + 1


def device_exists(device_id: str) -> Conflict:
    return Conflict(
        f"device {device_id} is already registered; PUT a new epoch instead",
        {"device_id": device_id},
        code=ErrorCode.DEVICE_EXISTS,
    )
