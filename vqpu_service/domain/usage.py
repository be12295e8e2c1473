"""Accounting: what the finished tasks of a period used, totalled per owner, device or agent."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Grouping(StrEnum):
    OWNER = "owner"
    DEVICE = "device"
    AGENT = "agent"


@dataclass(frozen=True)
class UsageTotals:
    """One group's terminal tasks finished in the period, and the sums of what their runs reported."""

    key: str | None
    """The owner, device or agent; None for tasks no agent held when they ended (force-failed, cancelled queued)."""
    tasks: int
    completed: int
    failed: int
    cancelled: int
    wall_s: float
    """The runners' wall seconds (the agent's clock where the runner left no account)."""
    cpu_s: float
    """Core-seconds: user + system CPU of the runners and all their threads."""
    gpu_s: float
    peak_rss_bytes: int | None
    """The largest peak resident memory of any one run; None when none was reported."""
    no_usage: int
    """Tasks without a usage record: never ran, force-failed, or reported by an agent that predates accounting."""
    agent_measured: int
    """Tasks whose usage is only the agent's clock (the runner was killed or crashed before its account)."""
