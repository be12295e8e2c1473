"""The scheduler boundary: three verbs between the agent and whatever runs the runner.

`submit(run_dir, resources)` starts the runner on a prepared run directory and returns a handle at
once; `observe_active()` says which of this adapter's jobs are still queued or running;
`query_terminal(handle)` gives the scheduler's evidence about a job that has ended (None while it
has not). `cancel(handle)` ends a job; `wait(handle)` blocks until it ends. Every adapter passes one
contract-test suite (tests/integration/agent/test_scheduler_contract.py).

The runner writes its outcome into the run directory (result.json or error.json); the scheduler's
evidence is what the agent reports beside it, and all it has when the runner never got to write.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import anyio

from agent.deadline import TIMEOUT


@dataclass(frozen=True)
class Resources:
    """What one runner process needs."""

    cpus: int = 1
    gpus: int = 0
    memory_mb: int | None = None
    max_runtime_s: float | None = None
    """The run's wall-time limit (task.json limits.max_runtime_s): the adapter stops a runner still running
    `agent.deadline.KILL_GRACE_S` past it, and its evidence then says TIMEOUT. None: no limit."""


@dataclass(frozen=True)
class JobHandle:
    """One submitted runner job: which adapter, the scheduler's id for it, and its run directory."""

    adapter: str
    job_id: str
    run_dir: Path


class JobState(StrEnum):
    COMPLETED = "COMPLETED"  # the runner process exited (any exit code: the run dir says what happened)
    CANCELLED = "CANCELLED"  # ended by cancel(), or by the scheduler on request
    FAILED = "FAILED"  # the job could not run the runner to its end (launch failure, node failure, TIMEOUT)
    LOST = "LOST"  # the scheduler no longer knows the job and it left no evidence


@dataclass(frozen=True)
class TerminalEvidence:
    """What the scheduler says about a job that has ended."""

    state: JobState
    exit_code: int | None = None
    scheduler_state: str | None = None  # the scheduler's own word: COMPLETED, TIMEOUT, NODE_FAIL, ...
    node: str | None = None
    worker: str | None = None
    job_id: str | None = None
    reason: str | None = None
    used_s: float | None = None  # how long the runner ran, when the scheduler says (a TIMEOUT always does)

    @property
    def timed_out(self) -> bool:
        """The scheduler stopped the job at its wall-time limit (agent.deadline.TIMEOUT)."""
        return self.scheduler_state == TIMEOUT


@dataclass(frozen=True)
class Placement:
    """Where a job runs, as soon as the scheduler knows (for the RUNNING report)."""

    job_id: str | None = None
    node: str | None = None
    worker: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


class SchedulerError(Exception):
    """The scheduler refused or failed a request (the message says which and why)."""


class Scheduler(abc.ABC):
    """One adapter. Methods are async; an adapter that shells out does so off the event loop."""

    name: str

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Acquire what the adapter holds for the agent's lifetime (a cluster, a client)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release it: cancel this adapter's jobs, stop the cluster."""

    @abc.abstractmethod
    async def submit(self, run_dir: Path, resources: Resources) -> JobHandle:
        """Start the runner on `run_dir`; returns without waiting for it to start."""

    @abc.abstractmethod
    async def observe_active(self) -> set[JobHandle]:
        """This adapter's jobs that are queued or running now."""

    @abc.abstractmethod
    async def query_terminal(self, handle: JobHandle) -> TerminalEvidence | None:
        """The evidence about a job that has ended; None while it is queued or running."""

    @abc.abstractmethod
    async def cancel(self, handle: JobHandle) -> None:
        """End the job now (kill the runner process); a job already ended is left as it is."""

    async def placement(self, handle: JobHandle) -> Placement | None:
        """Where the job runs, once it has started; None while it waits."""
        return None

    async def wait(self, handle: JobHandle, poll_s: float = 0.02, max_poll_s: float = 0.5) -> TerminalEvidence:
        """Block until the job ends; polls query_terminal with a backoff (adapters may do better)."""
        delay = poll_s
        while True:
            evidence = await self.query_terminal(handle)
            if evidence is not None:
                return evidence
            await anyio.sleep(delay)
            delay = min(delay * 1.5, max_poll_s)
