"""The in-memory scheduler: each job is a local `python -m runner RUN_DIR` process, its state held in
this object only (nothing survives the agent). For tests and single-machine use."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from agent.deadline import TIMEOUT, kill_after_s
from agent.environment import child_environment
from agent.scheduler.base import (
    JobHandle,
    JobState,
    Placement,
    Resources,
    Scheduler,
    SchedulerError,
    TerminalEvidence,
)
from vqpu_protocol.rundir import LOG_FILE, SCHEDULER_JOB_VARIABLES

TERM_GRACE_S = 0.2
"""How long a cancelled runner gets to exit on SIGTERM before SIGKILL (cancel must stay well under 0.5 s)."""

# An agent that itself runs inside a batch job must not hand its job id to the runner, which would
# record it as its own scheduler_job_id.


@dataclass
class _Job:
    handle: JobHandle
    process: asyncio.subprocess.Process
    log: IO[bytes] | None
    limit_s: float | None = None
    started: float = field(default_factory=time.monotonic)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: bool = False
    timed_out_after_s: float | None = None  # killed at its wall-time limit plus the grace, after this long
    watcher: asyncio.Task[None] | None = None


class MemoryScheduler(Scheduler):
    """Runs each runner as a child process of the agent, in its own session so a cancel reaches every
    process the runner started."""

    name = "memory"

    def __init__(self, python: str | None = None, cwd: Path | None = None) -> None:
        self.python = python or sys.executable
        self.cwd = cwd
        self.node = socket.gethostname()
        self._ids = itertools.count(1)
        self._jobs: dict[str, _Job] = {}

    async def submit(self, run_dir: Path, resources: Resources) -> JobHandle:
        run_dir = Path(os.path.abspath(run_dir))
        handle = JobHandle(adapter=self.name, job_id=f"mem-{next(self._ids)}", run_dir=run_dir)
        log = await asyncio.to_thread(_open_log, run_dir)
        env = child_environment(source={k: v for k, v in os.environ.items() if k not in SCHEDULER_JOB_VARIABLES})
        out = log if log is not None else asyncio.subprocess.DEVNULL
        try:
            process = await asyncio.create_subprocess_exec(
                self.python,
                "-m",
                "runner",
                str(run_dir),
                cwd=self.cwd,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        except OSError as exc:
            if log is not None:
                log.close()
            raise SchedulerError(f"cannot start {self.python} -m runner: {exc}") from exc
        job = _Job(handle=handle, process=process, log=log, limit_s=resources.max_runtime_s)
        job.watcher = asyncio.create_task(_watch(job), name=f"vqpu-memory-{handle.job_id}")
        self._jobs[handle.job_id] = job
        return handle

    async def observe_active(self) -> set[JobHandle]:
        return {job.handle for job in self._jobs.values() if not job.ended.is_set()}

    async def query_terminal(self, handle: JobHandle) -> TerminalEvidence | None:
        job = self._jobs.get(handle.job_id)
        if job is None:
            return TerminalEvidence(state=JobState.LOST, job_id=handle.job_id, reason="not a job of this scheduler")
        if not job.ended.is_set():
            return None
        return self._evidence(job)

    async def wait(self, handle: JobHandle, poll_s: float = 0.02, max_poll_s: float = 0.5) -> TerminalEvidence:
        job = self._jobs.get(handle.job_id)
        if job is not None:
            await job.ended.wait()
        evidence = await self.query_terminal(handle)
        assert evidence is not None  # the job has ended or is unknown, and both give evidence
        return evidence

    async def placement(self, handle: JobHandle) -> Placement | None:
        if handle.job_id not in self._jobs:
            return None
        return Placement(
            job_id=handle.job_id, node=self.node, extra={"pid": str(self._jobs[handle.job_id].process.pid)}
        )

    async def cancel(self, handle: JobHandle) -> None:
        job = self._jobs.get(handle.job_id)
        if job is None or job.ended.is_set():
            return
        job.cancelled = True
        _signal_group(job, signal.SIGTERM)
        try:
            await asyncio.wait_for(job.ended.wait(), TERM_GRACE_S)
        except TimeoutError:
            _signal_group(job, signal.SIGKILL)
            await job.ended.wait()

    async def close(self) -> None:
        active = [job.handle for job in self._jobs.values() if not job.ended.is_set()]
        await asyncio.gather(*(self.cancel(handle) for handle in active))

    def _evidence(self, job: _Job) -> TerminalEvidence:
        code = job.process.returncode
        if job.cancelled:
            return TerminalEvidence(
                state=JobState.CANCELLED, exit_code=code, node=self.node, job_id=job.handle.job_id, reason="cancelled"
            )
        if job.timed_out_after_s is not None:
            return TerminalEvidence(
                state=JobState.FAILED,
                exit_code=code,
                scheduler_state=TIMEOUT,
                node=self.node,
                job_id=job.handle.job_id,
                reason=f"killed past its wall-time limit of {job.limit_s:g} s",
                used_s=job.timed_out_after_s,
            )
        # A negative code is Python's way of saying the runner was killed by that signal.
        reason = f"killed by signal {-code}" if code is not None and code < 0 else None
        return TerminalEvidence(
            state=JobState.COMPLETED, exit_code=code, node=self.node, job_id=job.handle.job_id, reason=reason
        )


async def _watch(job: _Job) -> None:
    """Wait for the runner to end; one still running at its limit plus the grace is killed (its own watchdog
    should have ended it at the limit)."""
    try:
        if job.limit_s is None:
            await job.process.wait()
        else:
            try:
                await asyncio.wait_for(job.process.wait(), kill_after_s(job.limit_s) - (time.monotonic() - job.started))
            except TimeoutError:
                job.timed_out_after_s = time.monotonic() - job.started
                _signal_group(job, signal.SIGKILL)
                await job.process.wait()
    finally:
        if job.log is not None:
            job.log.close()
        job.ended.set()


def _signal_group(job: _Job, signum: signal.Signals) -> None:
    # Only while the process is unreaped: afterwards its id (and group id) may belong to another.
    if job.process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(job.process.pid, signum)


def _open_log(run_dir: Path) -> IO[bytes] | None:
    """RUN_DIR/runner.log for what the runner prints outside its own log (a traceback before logging
    starts); None when the run dir cannot take it, and the runner then reports that itself."""
    try:
        fd = os.open(run_dir / LOG_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        return os.fdopen(fd, "ab")  # closed by the job's watcher
    except OSError:
        return None
