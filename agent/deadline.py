"""A run's wall-time limit as the agent enforces it from outside the runner: the grace past the limit
before a runner is killed, the kill timer the Dask worker's runners use, and the failure reported when
an adapter (not the runner's own watchdog) had to stop a run.

The runner ends itself at its limit (runner/limits.py writes error.json TIME_LIMIT_EXCEEDED); these
are the backstop for a runner that cannot, e.g. one wedged in C code that holds the GIL.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

from vqpu_protocol.codes import ErrorCode
from vqpu_protocol.errors import ErrorDocument

KILL_GRACE_S = 2.0
"""How long past its limit a run may go before the adapter kills it; the runner's own watchdog ends it
at the limit and needs a moment to write error.json and exit."""
TIMEOUT = "TIMEOUT"
"""The scheduler state of a run an adapter stopped at its wall-time limit (Slurm's own word for it)."""


def kill_after_s(limit_s: float) -> float:
    """When the adapter kills a run whose limit is `limit_s`, counted from the runner's start."""
    return limit_s + KILL_GRACE_S


def slurm_minutes(limit_s: float) -> int:
    """Slurm's `--time` for a run of this limit: limit plus grace, rounded up to whole minutes (Slurm's unit;
    it also checks limits only about every 30 s, so the runner's own watchdog is what meets the deadline)."""
    return max(1, math.ceil(kill_after_s(limit_s) / 60))


class KillTimer:
    """Calls `kill` once `kill_after_s(limit_s)` has passed since `start()`, unless `stop()` came first.

    One daemon thread per run, sleeping: a run's end (`stop`) wakes it at once."""

    def __init__(self, limit_s: float, kill: Callable[[], Any]) -> None:
        self.limit_s = limit_s
        self._kill = kill
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.started_at: float | None = None
        self.fired_at: float | None = None

    def start(self) -> None:
        self.started_at = time.monotonic()
        self._thread = threading.Thread(target=self._wait, name="vqpu-kill-timer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    @property
    def fired(self) -> bool:
        return self.fired_at is not None

    @property
    def used_s(self) -> float | None:
        """How long the run had run when it was killed; None if it was not."""
        if self.fired_at is None or self.started_at is None:
            return None
        return self.fired_at - self.started_at

    def _wait(self) -> None:
        if self._stopped.wait(kill_after_s(self.limit_s)):
            return
        self.fired_at = time.monotonic()
        self._kill()


def time_limit_error(limit_s: float | None, used_s: float | None, **evidence: Any) -> ErrorDocument:
    """The failure of a run an adapter stopped at its limit (the runner left no outcome of its own)."""
    used = f"{used_s:.1f} s" if used_s is not None else "an unknown time"
    limit = f"of {limit_s:g} s " if limit_s is not None else ""
    return ErrorDocument(
        code=ErrorCode.TIME_LIMIT_EXCEEDED,
        message=f"the run reached its wall-time limit {limit}and was stopped after {used}",
        detail={"limit_s": limit_s, "used_s": None if used_s is None else round(used_s, 3), **evidence},
    )
