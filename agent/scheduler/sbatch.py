"""One Slurm batch job per task, for sites whose compute nodes may not connect back to the login node.

Each job runs `exec PYTHON -m runner RUN_DIR` from a script rendered by `render_script`, named
`vqpu-<run dir name>` with the comment `vqpu-agent:<agent id>`, so an agent that restarts finds its
own jobs again (`observe_active` lists the current user's jobs and keeps those with its comment; the
job's working directory is its run directory). States come from `squeue` and `scontrol show job -o`,
polled every `poll_s`: `sbatch --wait` sleeps 2 s before its first look. Once the controller has
forgotten a job (MinJobAge), its evidence comes from the jobcomp/filetxt log when the site writes
one, else the job is LOST.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
import re
import shlex
import sys
from datetime import datetime
from pathlib import Path

from agent.deadline import slurm_minutes
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
from agent.site import SbatchScheduler, TaskResources, walltime_seconds

log = logging.getLogger(__name__)

TERMINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
    }
)
"""Slurm's final job states; anything else (PENDING, RUNNING, COMPLETING, SUSPENDED, ...) is still active.
COMPLETING counts as active: the job's processes may still be alive and its exit code is not final."""

COMMAND_TIMEOUT_S = 30.0
"""A Slurm command that takes longer means the controller is not answering (sbatch retries for minutes)."""
CANCEL_TIMEOUT_S = 30.0
"""How long cancel() waits for Slurm to say the job ended: KillWait (often 30 s) bounds the SIGKILL."""
CANCEL_POLL_S = 0.02
JOBCOMP_TAIL_BYTES = 16 * 1024 * 1024
"""How much of the end of the jobcomp log is searched: the jobs asked about ended minutes ago."""

_SEP = "\x1f"  # squeue field separator: no job name, comment or path contains a unit separator
_KEY = re.compile(r"(?:^|(?<=\s))([A-Za-z][\w:/]*)=")
_NO_VALUE = {"", "(null)", "None", "N/A"}


def job_name(run_dir: Path) -> str:
    return f"vqpu-{run_dir.name}"


def agent_comment(agent_id: str) -> str:
    return f"vqpu-agent:{agent_id}"


def slurm_duration(seconds: int) -> str:
    """Seconds as Slurm's `[D-]HH:MM:SS`."""
    days, rest = divmod(max(1, seconds), 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock


def job_walltime(settings: SbatchScheduler, max_runtime_s: float | None) -> str:
    """The job's `--time`: the run's limit plus the kill grace in whole minutes (Slurm's unit; it stops the job
    a little after the limit, and the runner's own watchdog ends the run at it), never beyond the site's
    walltime; the walltime for a run without a limit."""
    if max_runtime_s is None:
        return settings.walltime
    return slurm_duration(min(walltime_seconds(settings.walltime), 60 * slurm_minutes(max_runtime_s)))


def render_script(
    settings: SbatchScheduler,
    resources: TaskResources,
    run_dir: Path,
    job_name: str,
    python: str,
    comment: str | None = None,
    *,
    cwd: Path | None = None,
) -> str:
    """The batch script of one task: directives, `module load` lines, the site's prologue, then the
    runner in place of the shell (so the job's exit code is the runner's and a cancel reaches it).

    The job's working directory is the run directory (its stdout lands there unless the site names a
    log_directory); `cwd`, when given, is where the runner starts, for a runner that is not
    installed but imported from a checkout."""
    if any(c in part for c in "\r\n" for part in (job_name, str(run_dir), python, comment or "", str(cwd or ""))):
        raise ValueError("a job name, path, python or comment with a line break would inject lines into the script")
    if settings.log_directory is not None:
        output = f"{_pattern_literal(str(settings.log_directory))}/{_pattern_literal(job_name)}-%j.out"
    else:
        output = f"{_pattern_literal(str(run_dir))}/slurm-%j.out"
    directives = [
        f"--job-name={shlex.quote(job_name)}",
        f"--chdir={shlex.quote(str(run_dir))}",
        f"--output={shlex.quote(output)}",
        f"--error={shlex.quote(output)}",
        "--nodes=1",
        "--ntasks=1",
        f"--cpus-per-task={resources.cpus}",
        # One attempt per job: a requeue after a node failure would rerun a task the agent has
        # already reported; the control plane decides about a new attempt.
        "--no-requeue",
    ]
    if resources.memory_mb is not None:
        directives.append(f"--mem={resources.memory_mb}M")
    if resources.gpus > 0:
        directives.append(f"--gres=gpu:{resources.gpus}")
    directives.append(f"--time={settings.walltime}")
    for option, value in (("partition", settings.partition), ("account", settings.account), ("qos", settings.qos)):
        if value is not None:
            directives.append(f"--{option}={shlex.quote(value)}")
    if comment is not None:
        directives.append(f"--comment={shlex.quote(comment)}")
    lines = ["#!/bin/bash", *(f"#SBATCH {d}" for d in directives)]
    # dask-jobqueue's convention: extra directives are given without the prefix; accept both.
    lines += [d if d.startswith("#SBATCH") else f"#SBATCH {d}" for d in settings.job_extra_directives]
    lines += [f"module load {shlex.quote(module)}" for module in settings.modules]
    lines += settings.prologue
    if cwd is not None:
        lines.append(f"cd {shlex.quote(str(cwd))}")
    lines.append(f"exec {shlex.quote(python)} -m runner {shlex.quote(str(run_dir))}")
    return "\n".join(lines) + "\n"


def _pattern_literal(text: str) -> str:
    # Slurm expands %j, %x, ... in --output; a literal % in a path is written %%.
    return text.replace("%", "%%")


def parse_fields(line: str) -> dict[str, str]:
    """`Key=value` pairs of one `scontrol show job -o` (or jobcomp) line; a value runs to the next key,
    so values with spaces (paths, names) survive."""
    matches = list(_KEY.finditer(line))
    fields: dict[str, str] = {}
    for m, following in zip(matches, [*matches[1:], None], strict=True):
        end = following.start() if following is not None else len(line)
        fields.setdefault(m.group(1), line[m.end() : end].strip())
    return fields


def evidence_from_fields(fields: dict[str, str], job_id: str) -> TerminalEvidence | None:
    """Slurm's record of a job as evidence; None while the job is still active."""
    state = fields.get("JobState", "")
    if state not in TERMINAL_STATES:
        return None
    code, signum = _exit_code(fields.get("ExitCode", ""))
    node = _value(fields.get("NodeList")) or _value(fields.get("BatchHost"))
    reason = _value(fields.get("Reason"))
    # The runner's own exit status is the evidence; a signal is given as Python gives it (-N).
    exit_code = -signum if signum else code

    used_s = _used_s(fields)

    def evidence(job_state: JobState, exit_status: int | None) -> TerminalEvidence:
        return TerminalEvidence(
            state=job_state,
            exit_code=exit_status,
            scheduler_state=state,
            node=node,
            job_id=job_id,
            reason=reason,
            used_s=used_s,
        )

    if state == "CANCELLED":  # 0:0 when it was cancelled before it started: no exit status at all
        return evidence(JobState.CANCELLED, exit_code if (code or signum) else None)
    if state == "COMPLETED" or (state == "FAILED" and (code or signum)):
        return evidence(JobState.COMPLETED, exit_code)
    # FAILED with 0:0 is a launch failure (a runner that exited 0 is COMPLETED); the rest never ran to the end.
    return evidence(JobState.FAILED, exit_code if (code or signum) else None)


def _used_s(fields: dict[str, str]) -> float | None:
    """How long the job ran: `scontrol`'s RunTime, or the jobcomp record's EndTime less its StartTime."""
    with contextlib.suppress(ValueError):
        if (run_time := _value(fields.get("RunTime"))) is not None:
            return float(walltime_seconds(run_time))
        start, end = _value(fields.get("StartTime")), _value(fields.get("EndTime"))
        if start is not None and end is not None:
            return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    return None


def _exit_code(text: str) -> tuple[int | None, int]:
    m = re.fullmatch(r"(\d+):(\d+)", text)
    if m is None:
        return None, 0
    return int(m.group(1)), int(m.group(2))


def _value(text: str | None) -> str | None:
    return None if text is None or text in _NO_VALUE else text


class SbatchAdapter(Scheduler):
    """The `sbatch` scheduler. `python` (default: the site's, else this interpreter) runs the runner on
    the compute node; `cwd` is where it starts; `jobcomp_log` overrides the jobcomp/filetxt log
    found through `scontrol show config`."""

    name = "sbatch"

    def __init__(
        self,
        settings: SbatchScheduler,
        agent_id: str,
        python: str | None = None,
        cwd: Path | None = None,
        jobcomp_log: Path | None = None,
    ) -> None:
        self.settings = settings
        self.agent_id = agent_id
        self.comment = agent_comment(agent_id)
        self.python = python or settings.python or sys.executable
        self.cwd = cwd
        self._jobcomp_log = jobcomp_log
        self._jobcomp_known = jobcomp_log is not None
        self._waiters: dict[str, tuple[JobHandle, list[asyncio.Future[TerminalEvidence]]]] = {}
        self._poller: asyncio.Task[None] | None = None

    # --- the boundary ---------------------------------------------------------------------------

    async def submit(self, run_dir: Path, resources: Resources) -> JobHandle:
        run_dir = Path(os.path.abspath(run_dir))
        settings = self.settings.model_copy(update={"walltime": job_walltime(self.settings, resources.max_runtime_s)})
        task_resources = TaskResources(cpus=resources.cpus, gpus=resources.gpus, memory_mb=resources.memory_mb)
        script = render_script(
            settings, task_resources, run_dir, job_name(run_dir), self.python, self.comment, cwd=self.cwd
        )
        rc, out, err = await _command("sbatch", "--parsable", stdin=script)
        if rc != 0:
            raise SchedulerError(f"sbatch refused the job for {run_dir}: {err.strip() or f'exit {rc}'}")
        job_id = out.strip().split(";")[0]
        if not job_id.isdigit():
            raise SchedulerError(f"sbatch answered {out.strip()!r}, not a job id")
        return JobHandle(adapter=self.name, job_id=job_id, run_dir=run_dir)

    async def observe_active(self) -> set[JobHandle]:
        fmt = _SEP.join(("%i", "%T", "%k", "%Z"))
        rc, out, err = await _command(
            "squeue", "--noheader", f"--user={getpass.getuser()}", "--states=all", f"--format={fmt}"
        )
        if rc != 0:
            raise SchedulerError(f"squeue failed: {err.strip() or f'exit {rc}'}")
        active: set[JobHandle] = set()
        for line in out.splitlines():
            parts = line.split(_SEP)
            if len(parts) != 4:
                continue
            job_id, state, comment, work_dir = parts
            if comment == self.comment and state not in TERMINAL_STATES:
                active.add(JobHandle(adapter=self.name, job_id=job_id, run_dir=Path(work_dir)))
        return active

    async def query_terminal(self, handle: JobHandle) -> TerminalEvidence | None:
        fields = await self._show(handle)
        if fields is not None:
            return evidence_from_fields(fields, handle.job_id)
        fields = await self._jobcomp(handle)
        if fields is not None:
            return evidence_from_fields(fields, handle.job_id)
        return TerminalEvidence(
            state=JobState.LOST,
            job_id=handle.job_id,
            reason="Slurm no longer knows the job and no jobcomp record names it",
        )

    async def placement(self, handle: JobHandle) -> Placement | None:
        fields = await self._show(handle)
        if fields is None or fields.get("JobState") == "PENDING":
            return None
        node = _value(fields.get("BatchHost")) or _value(fields.get("NodeList"))
        if node is None:
            return None
        extra = {k: v for k in ("Partition", "NodeList") if (v := _value(fields.get(k))) is not None}
        return Placement(job_id=handle.job_id, node=node, extra=extra)

    async def cancel(self, handle: JobHandle) -> None:
        # scancel says nothing (and exits 0) for a job that has already ended: the poll below decides.
        rc, _, err = await _command("scancel", handle.job_id)
        if rc != 0:
            log.warning("scancel %s: %s", handle.job_id, err.strip())
        await self._until_ended(handle, CANCEL_TIMEOUT_S)

    async def wait(self, handle: JobHandle, poll_s: float = 0.02, max_poll_s: float = 0.5) -> TerminalEvidence:
        """Every waiting job is polled by one `squeue` call per `settings.poll_s` (the site's
        choice, not `poll_s`); `scontrol` is asked only about a job squeue says has ended or forgotten."""
        evidence = await self.query_terminal(handle)
        if evidence is not None:
            return evidence
        future: asyncio.Future[TerminalEvidence] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(handle.job_id, (handle, []))[1].append(future)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll(), name="vqpu-sbatch-poller")
        try:
            return await future
        finally:
            entry = self._waiters.get(handle.job_id)
            if entry is not None and future in entry[1]:
                entry[1].remove(future)
                if not entry[1]:
                    del self._waiters[handle.job_id]

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        for _, futures in self._waiters.values():
            for future in futures:
                if not future.done():
                    future.set_exception(SchedulerError("the sbatch scheduler was closed"))
        handles = await self.observe_active()
        if not handles:
            return
        await _command("scancel", *sorted(h.job_id for h in handles))
        await asyncio.gather(*(self._until_ended(h, CANCEL_TIMEOUT_S) for h in handles))

    # --- Slurm ----------------------------------------------------------------------------------

    async def _show(self, handle: JobHandle) -> dict[str, str] | None:
        """The controller's record of this job; None once it has forgotten it (or the id now names
        another job: ids restart when a cluster's state is reset)."""
        rc, out, err = await _command("scontrol", "show", "job", "-o", handle.job_id)
        if rc != 0:
            if "Invalid job id" in err:
                return None
            raise SchedulerError(f"scontrol show job {handle.job_id} failed: {err.strip() or f'exit {rc}'}")
        line = out.strip().splitlines()[0] if out.strip() else ""
        fields = parse_fields(line)
        if fields.get("JobId") != handle.job_id or fields.get("JobName") != job_name(handle.run_dir):
            return None
        return fields

    async def _jobcomp(self, handle: JobHandle) -> dict[str, str] | None:
        path = await self._jobcomp_path()
        if path is None:
            return None
        return await asyncio.to_thread(_jobcomp_record, path, handle.job_id, job_name(handle.run_dir))

    async def _jobcomp_path(self) -> Path | None:
        if not self._jobcomp_known:
            rc, out, _ = await _command("scontrol", "show", "config")
            config = dict(
                (key.strip(), value.strip())
                for key, sep, value in (line.partition("=") for line in out.splitlines())
                if sep
            )
            if rc == 0 and config.get("JobCompType") == "jobcomp/filetxt" and config.get("JobCompLoc"):
                self._jobcomp_log = Path(config["JobCompLoc"])
            self._jobcomp_known = rc == 0
        return self._jobcomp_log

    async def _states(self, job_ids: list[str]) -> dict[str, str]:
        """Slurm states of these jobs in one call; a job the controller has forgotten is absent."""
        rc, out, err = await _command(
            "squeue", "--noheader", "--states=all", f"--jobs={','.join(job_ids)}", f"--format=%i{_SEP}%T"
        )
        if rc != 0:
            if "Invalid job id" in err:  # squeue fails only when it knows none of them
                return {}
            raise SchedulerError(f"squeue failed: {err.strip() or f'exit {rc}'}")
        return dict(line.split(_SEP, 1) for line in out.splitlines() if _SEP in line)

    async def _poll(self) -> None:
        while self._waiters:
            await asyncio.sleep(self.settings.poll_s)
            waiting = {job_id: entry[0] for job_id, entry in self._waiters.items()}
            if not waiting:
                return
            try:
                states = await self._states(sorted(waiting))
                for job_id, handle in waiting.items():
                    state = states.get(job_id)
                    if state is not None and state not in TERMINAL_STATES:
                        continue
                    evidence = await self.query_terminal(handle)
                    if evidence is not None:
                        self._resolve(job_id, evidence)
            except SchedulerError as exc:
                # A controller that restarts or stalls is retried at the next poll, not fatal to the waits.
                log.warning("polling Slurm: %s", exc)

    def _resolve(self, job_id: str, evidence: TerminalEvidence) -> None:
        _, futures = self._waiters.pop(job_id, (None, []))
        for future in futures:
            if not future.done():
                future.set_result(evidence)

    async def _until_ended(self, handle: JobHandle, timeout_s: float) -> TerminalEvidence:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            evidence = await self.query_terminal(handle)
            if evidence is not None:
                return evidence
            if loop.time() > deadline:
                raise SchedulerError(f"Slurm job {handle.job_id} has not ended {timeout_s:.0f} s after scancel")
            await asyncio.sleep(CANCEL_POLL_S)


def _jobcomp_record(path: Path, job_id: str, name: str) -> dict[str, str] | None:
    """The newest jobcomp/filetxt line for this job id and name, read from the end of the log."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - JOBCOMP_TAIL_BYTES))
            tail = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    prefix = f"JobId={job_id} "
    for line in reversed(tail.splitlines()):
        if line.startswith(prefix):
            fields = parse_fields(line)
            if fields.get("Name") == name:
                return fields
    return None


async def _command(*argv: str, stdin: str | None = None, timeout_s: float = COMMAND_TIMEOUT_S) -> tuple[int, str, str]:
    """Run a Slurm command off the event loop: (exit status, stdout, stderr)."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # sbatch hands its whole environment to the job: only the allow-listed part goes.
            env=child_environment(),
        )
    except OSError as exc:
        raise SchedulerError(f"cannot run {argv[0]}: {exc}") from exc
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin.encode() if stdin is not None else None), timeout_s)
    except BaseException as exc:
        # Timed out or cancelled: the command must not outlive the call that wanted its answer.
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        if isinstance(exc, TimeoutError):
            raise SchedulerError(f"{argv[0]} did not answer within {timeout_s:.0f} s") from None
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")
