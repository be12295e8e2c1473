"""The identifiers and secrets the control plane mints: task ids and claim tokens."""

from __future__ import annotations

import secrets


def task_id() -> str:
    """A new task's id: 80 random bits, so ids reveal neither order nor count."""
    return f"t-{secrets.token_hex(10)}"


def claim_token() -> str:
    """A claim's fencing token: 192 random bits, a bearer secret of one attempt."""
    return secrets.token_urlsafe(24)
