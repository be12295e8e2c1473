"""The agent's loops: claim (bounded by free slots), heartbeat (acts on cancel and fenced), the watch for
flow runs cancelled in Prefect, and the operators' view (agent.view); each claimed task runs as one
Execution (agent.execution), which waits on nothing but the scheduler and the control plane.

Stopping (SIGTERM): claiming stops at once; in-flight tasks get `grace_s` to finish and report; any
still running then have their runner stopped and report nothing, so the control plane sees them go
stale and an operator (or the auto-requeue policy) hands them to another attempt. Last, the view gets up
to VIEW_FLUSH_S to show in Prefect what it does not show yet (a restart settles whatever is left).

Retention (agent/retention.py) runs at start and every hour, in a thread, on the run directories no
execution holds. The agent's status (in flight, and how far the Prefect view is behind) is written to
RUN_ROOT/.agent-status.json every STATUS_S (`vqpu-agent status` prints it).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import anyio

from agent.claims import Claim, open_claims
from agent.control_plane import ControlPlane, ControlPlaneError
from agent.execution import PREFECT, Execution
from agent.retention import sweep
from agent.scheduler.base import JobHandle, Resources, Scheduler
from agent.site import Retention, run_limits
from agent.view import PrefectView
from vqpu_protocol.api.agent import ClaimedTask
from vqpu_protocol.rundir import RunDirError, RunLimits, UnsafeRunDirName, atomic_write, run_dir_for, write_inputs

log = logging.getLogger("agent")

PREFECT_CANCEL_POLL_S = 0.5
RETENTION_INTERVAL_S = 3600.0
STATUS_S = 2.0
VIEW_FLUSH_S = 10.0
STATUS_FILE = ".agent-status.json"


@dataclass(frozen=True)
class EngineSettings:
    slots: int
    run_root: Path
    claim_wait_s: float
    heartbeat_s: float
    grace_s: float
    resources: Resources
    devices: list[str] | None = None
    retention: Retention | None = None
    limits: RunLimits | None = None
    """The site's bounds on every run (SiteConfig.site_limits): each run's task.json gets them, its wall-time
    limit lowered to the task's own."""


class Engine:
    def __init__(
        self, settings: EngineSettings, control_plane: ControlPlane, scheduler: Scheduler, view: PrefectView
    ) -> None:
        self.settings = settings
        self.control_plane = control_plane
        self.scheduler = scheduler
        self.view = view
        self.inflight: dict[str, Execution] = {}
        self._slot_freed = anyio.Event()
        self._stop = anyio.Event()
        self.stopped = anyio.Event()

    def stop(self) -> None:
        """Stop claiming and drain (see the module docstring). Safe to call more than once."""
        self._stop.set()

    async def run(self) -> None:
        """Claim and execute until stop(); returns once in-flight work is finished or handed back."""
        try:
            async with anyio.create_task_group() as loops, anyio.create_task_group() as runs:
                await self._reconcile(runs)
                loops.start_soon(self.view.run)
                loops.start_soon(self._heartbeat_loop)
                loops.start_soon(self._prefect_cancel_loop)
                loops.start_soon(self._claim_loop, runs)
                loops.start_soon(self._retention_loop)
                loops.start_soon(self._status_loop)
                await self._stop.wait()
                log.info("stopping: no more claims; %d task(s) in flight", len(self.inflight))
                await self._drain(loops)
        finally:
            self.stopped.set()

    async def _drain(self, loops: anyio.abc.TaskGroup) -> None:
        with anyio.move_on_after(self.settings.grace_s):
            while self.inflight:
                await self._wait_slot()
        for execution in list(self.inflight.values()):
            log.warning(
                "task %s: still running after the %.0f s grace period: stopping its runner and handing it back "
                "(a restarted agent finishes it; otherwise it goes stale on the control plane: requeue it there)",
                execution.task_id,
                self.settings.grace_s,
            )
            execution.hand_back()
        with anyio.move_on_after(10):
            while self.inflight:
                await self._wait_slot()
        with anyio.move_on_after(VIEW_FLUSH_S):  # what Prefect does not show yet; a restart settles the rest
            await self.view.flushed()
        loops.cancel_scope.cancel()

    async def _wait_slot(self) -> None:
        await self._slot_freed.wait()
        self._slot_freed = anyio.Event()

    # --- claiming ------------------------------------------------------------------------------

    async def _claim_loop(self, runs: anyio.abc.TaskGroup) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            free = self.settings.slots - len(self.inflight)
            if free <= 0:
                await self._wait_slot()
                continue
            try:
                claimed = await self.control_plane.claim(free, self.settings.claim_wait_s, self.settings.devices)
            except ControlPlaneError as exc:
                log.warning("claim failed: %s; retrying in %.1f s", exc, backoff)
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = 0.5
            # Each claim is acknowledged by its RUNNING report, or else by the next heartbeat: both well inside the
            # control plane's window (at least three heartbeat intervals) for taking back a claim into the void.
            for task in claimed:
                self._start(task, runs)

    def _start(self, claimed: ClaimedTask, runs: anyio.abc.TaskGroup) -> None:
        task = claimed.task
        try:
            run_dir = run_dir_for(self.settings.run_root, task.id, claimed.attempt)
        except UnsafeRunDirName as exc:
            # The control plane's ids are checked there, but the agent trusts no id with a path. Such an id is
            # no safe URL either, so nothing is reported: the task goes stale there, for an operator to see.
            log.error("claim refused, nothing written or reported: %s", exc)
            return
        limits = run_limits(self.settings.limits or RunLimits(), task.options.max_runtime_s)
        claim = Claim.of(claimed, self.control_plane.agent_id, limits.max_runtime_s)
        log.info("task %s attempt %s claimed (%s, %d shots)", task.id, claimed.attempt, task.device, task.shots)
        try:
            document = claimed.task_document().model_copy(update={"limits": limits})
            write_inputs(run_dir, document, claimed.snapshot.encode())
            claim.save(run_dir)
        except (OSError, RunDirError) as exc:  # a full or unwritable run_root: say so for this task, go on
            log.error("task %s: cannot write its run directory %s: %s", task.id, run_dir, exc)
            self._launch(claim, run_dir, runs, setup_error=f"the agent could not write the run directory: {exc}")
            return
        self._launch(claim, run_dir, runs)

    def _launch(
        self,
        claim: Claim,
        run_dir: Path,
        runs: anyio.abc.TaskGroup,
        handle: JobHandle | None = None,
        setup_error: str | None = None,
    ) -> None:
        execution = self._execution(claim, run_dir, handle)
        execution.setup_error = setup_error
        self.inflight[claim.task_id] = execution
        self.view.claimed(execution)
        runs.start_soon(self._execute, execution)

    def _execution(self, claim: Claim, run_dir: Path, handle: JobHandle | None = None) -> Execution:
        # The run's own limit, as its task.json has it; a claim noted by an older agent has the site's.
        limit = claim.max_runtime_s
        if limit is None and self.settings.limits is not None:
            limit = self.settings.limits.max_runtime_s
        return Execution(
            claim=claim,
            run_dir=run_dir,
            control_plane=self.control_plane,
            scheduler=self.scheduler,
            resources=replace(self.settings.resources, max_runtime_s=limit),
            observer=self.view,
            handle=handle,
        )

    async def _reconcile(self, runs: anyio.abc.TaskGroup) -> None:
        """After a restart: finish what this agent claimed and never reported, if it is still ours.

        Run directories first (the claim notes, and any outcome the runner left), then the scheduler
        (a job that outlived the agent is followed again, not started twice), then the control plane
        (the heartbeat reply says which claims were handed to another attempt meanwhile)."""
        found = open_claims(self.settings.run_root, self.control_plane.agent_id)
        if not found:
            return
        log.info("restart: %d claim(s) of this agent were never reported; asking the control plane", len(found))
        delay = 0.5
        while True:  # the control plane may be away while the site restarts: nothing is claimed until it answers
            try:
                reply = await self.control_plane.heartbeat({c.task_id: c.claim_token for c, _ in found})
                break
            except ControlPlaneError as exc:
                log.warning("restart: the control plane did not answer (%s); retrying in %.1f s", exc, delay)
                await anyio.sleep(delay)
                delay = min(delay * 2, 30.0)
        active = {h.run_dir: h for h in await self.scheduler.observe_active()}
        for claim, run_dir in found:
            if (state := reply.ended.get(claim.task_id)) is not None:
                # The agent died after its terminal report was taken (and before it noted so): the task is
                # over on this very attempt; its flow run shows the control plane's state, not a fencing.
                log.info("restart: task %s attempt %s already ended %s", claim.task_id, claim.attempt, state)
                claim.save(run_dir, ended="reported", state=state)
                self.view.ended_meanwhile(claim, run_dir, state=state, fenced=False)
                continue
            if claim.task_id in reply.fenced:
                log.info("restart: task %s attempt %s is no longer ours; leaving it", claim.task_id, claim.attempt)
                claim.save(run_dir, ended="fenced")
                self.view.ended_meanwhile(claim, run_dir, state=None, fenced=True)
                continue
            log.info("restart: task %s attempt %s is still ours; finishing it", claim.task_id, claim.attempt)
            self._launch(claim, run_dir, runs, handle=active.get(run_dir))
            if claim.task_id in reply.cancel:
                self.inflight[claim.task_id].cancel("control plane")

    async def _execute(self, execution: Execution) -> None:
        try:
            ending = await execution.drive()
            log.info(
                "task %s attempt %s: %s %s", execution.task_id, execution.attempt, ending.phase, ending.state or ""
            )
            self.view.ended(execution, ending)
        except Exception:  # a bug: the agent goes on; the task's claim stays open for a restart to finish
            log.exception("task %s attempt %s: the execution ended unexpectedly", execution.task_id, execution.attempt)
        finally:
            self.inflight.pop(execution.task_id, None)
            self._slot_freed.set()

    async def _retention_loop(self) -> None:
        policy = self.settings.retention
        if policy is None:
            return
        while True:
            busy = {e.run_dir for e in self.inflight.values()}
            try:
                swept = await anyio.to_thread.run_sync(partial(sweep, self.settings.run_root, policy, busy=busy))
            except OSError as exc:
                log.warning("retention: the sweep of %s failed: %s", self.settings.run_root, exc)
            else:
                if swept.removed or swept.bundles_removed:
                    log.info(
                        "retention: removed %d finished run directories (%d kept as bundles) and %d old bundles",
                        len(swept.removed),
                        len(swept.bundled),
                        len(swept.bundles_removed),
                    )
            await anyio.sleep(RETENTION_INTERVAL_S)

    # --- watching ------------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            owned = {t: e.token for t, e in self.inflight.items() if e.reporting}
            try:
                reply = await self.control_plane.heartbeat(owned)
            except ControlPlaneError as exc:
                log.warning("heartbeat failed: %s", exc)
            else:
                for task_id in reply.cancel:
                    if (execution := self.inflight.get(task_id)) is not None:
                        log.info("task %s: cancel requested on the control plane", task_id)
                        execution.cancel("control plane")
                for task_id in reply.fenced:
                    if (execution := self.inflight.get(task_id)) is not None and execution.reporting:
                        log.warning("task %s: fenced (requeued or force-failed): stopping it", task_id)
                        execution.fence()
            await anyio.sleep(self.settings.heartbeat_s)

    async def _prefect_cancel_loop(self) -> None:
        while True:
            await anyio.sleep(PREFECT_CANCEL_POLL_S)
            running = {(e.task_id, e.attempt): e for e in self.inflight.values() if e.reporting}
            for key, actor in (await self.view.cancelling(list(running))).items():
                log.info("task %s: flow run cancelled in Prefect by %s", key[0], actor)
                running[key].cancel(PREFECT, actor=actor)  # reported as an operator's cancel, not the owner's

    def status(self) -> dict[str, object]:
        view = self.view.status()
        return {
            "agent_id": self.control_plane.agent_id,
            "slots": self.settings.slots,
            "in_flight": len(self.inflight),
            "prefect": {"reachable": view.reachable, **{k: v for k, v in asdict(view).items() if k != "reachable"}},
            "written_at": time.time(),
        }

    async def _status_loop(self) -> None:
        path = self.settings.run_root / STATUS_FILE
        while True:
            try:
                atomic_write(path, json.dumps(self.status()).encode())
            except (OSError, RunDirError) as exc:
                log.warning("cannot write the agent status %s: %s", path, exc)
            await anyio.sleep(STATUS_S)
