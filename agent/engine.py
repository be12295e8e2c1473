"""The agent's loops: claim (bounded by free slots), heartbeat (acts on cancel and fenced), and the
watch for flow runs cancelled in Prefect; each claimed task runs as one flow run in this process.

Stopping (SIGTERM): claiming stops at once; in-flight tasks get `grace_s` to finish and report; any
still running then have their runner stopped and report nothing, so the control plane sees them go
stale and an operator (or the auto-requeue policy) hands them to another attempt.

Retention (agent/retention.py) runs at start and every hour, in a thread, on the run directories no
execution holds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import anyio

from agent.claims import Claim, open_claims
from agent.control_plane import ControlPlane, ControlPlaneError
from agent.execution import Execution
from agent.prefect_bridge import PrefectBridge
from agent.retention import sweep
from agent.scheduler.base import JobHandle, Resources, Scheduler
from agent.site import Retention, run_limits
from vqpu_protocol.api.agent import ClaimedTask, FailedReport
from vqpu_protocol.codes import ErrorCode
from vqpu_protocol.errors import ErrorDocument
from vqpu_protocol.rundir import RunDirError, RunLimits, UnsafeRunDirName, run_dir_for, write_inputs

log = logging.getLogger("agent")

PREFECT_CANCEL_POLL_S = 0.5
RETENTION_INTERVAL_S = 3600.0


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
        self, settings: EngineSettings, control_plane: ControlPlane, scheduler: Scheduler, prefect: PrefectBridge
    ) -> None:
        self.settings = settings
        self.control_plane = control_plane
        self.scheduler = scheduler
        self.prefect = prefect
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
                loops.start_soon(self._heartbeat_loop)
                loops.start_soon(self._prefect_cancel_loop)
                loops.start_soon(self._claim_loop, runs)
                loops.start_soon(self._retention_loop)
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
            execution = self._execution(claim, run_dir)
            runs.start_soon(self._fail, execution, f"the agent could not write the run directory: {exc}")
            return
        self._launch(claim, run_dir, runs)

    def _launch(self, claim: Claim, run_dir: Path, runs: anyio.abc.TaskGroup, handle: JobHandle | None = None) -> None:
        execution = self._execution(claim, run_dir, handle)
        self.inflight[claim.task_id] = execution
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
                log.info(
                    "restart: task %s attempt %s already ended %s; mirroring it", claim.task_id, claim.attempt, state
                )
                claim.save(run_dir, ended="reported")
                await self.prefect.mirror_ended(claim.task_id, claim.attempt, state)
                continue
            if claim.task_id in reply.fenced:
                log.info("restart: task %s attempt %s is no longer ours; leaving it", claim.task_id, claim.attempt)
                claim.save(run_dir, ended="fenced")
                await self.prefect.mirror_fenced(claim.task_id, claim.attempt)
                continue
            log.info("restart: task %s attempt %s is still ours; finishing it", claim.task_id, claim.attempt)
            self._launch(claim, run_dir, runs, handle=active.get(run_dir))
            if claim.task_id in reply.cancel:
                self.inflight[claim.task_id].cancel("control plane")

    async def _execute(self, execution: Execution) -> None:
        claim = execution.claim
        try:
            flow_run = await self.prefect.create_run(claim.task_id, claim.attempt, claim.device, str(execution.run_dir))
            execution.flow_run_id = str(flow_run.id)
            state = await self.prefect.execute(flow_run, execution)
            log.info(
                "task %s attempt %s: flow run %s %s", claim.task_id, claim.attempt, flow_run.name, state.type.value
            )
            if not execution.finished and not execution.silent:
                await self._fail(
                    execution, f"the flow run ended {state.type.value} without an outcome: {state.message}"
                )
        except Exception as exc:
            log.exception("task %s: execution failed", claim.task_id)
            if not execution.finished and not execution.silent:
                await self._fail(execution, f"{type(exc).__name__}: {exc}")
        finally:
            if execution.finished or execution.fenced:
                claim.save(execution.run_dir, ended="reported" if execution.finished else "fenced")
            self.inflight.pop(claim.task_id, None)
            self._slot_freed.set()

    async def _fail(self, execution: Execution, message: str) -> None:
        """The agent could not execute the task (Prefect or the scheduler failed): say so, once."""
        error = ErrorDocument(code=ErrorCode.EXECUTION_ERROR, message=message[:4000])
        try:
            await self.control_plane.report(execution.task_id, FailedReport(claim_token=execution.token, error=error))
        except ControlPlaneError as exc:
            log.error("task %s: could not report the failure: %s", execution.task_id, exc)
        execution.finished = True

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
            owned = {t: e.token for t, e in self.inflight.items() if not (e.fenced or e.finished)}
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
                    if (execution := self.inflight.get(task_id)) is not None and not execution.finished:
                        log.warning("task %s: fenced (requeued or force-failed): stopping it", task_id)
                        execution.fence()
            await anyio.sleep(self.settings.heartbeat_s)

    async def _prefect_cancel_loop(self) -> None:
        while True:
            await anyio.sleep(PREFECT_CANCEL_POLL_S)
            by_run = {e.flow_run_id: e for e in self.inflight.values() if e.flow_run_id and not e.fenced}
            if not by_run:
                continue
            try:
                cancelling = await self.prefect.cancelling(list(by_run))
            except Exception as exc:  # Prefect being away must not stop the agent; the control plane still rules
                log.warning("reading cancelling flow runs failed: %s", exc)
                continue
            for run_id, actor in cancelling.items():
                log.info("task %s: flow run cancelled in Prefect by %s", by_run[run_id].task_id, actor)
                by_run[run_id].cancel("prefect", actor=actor)  # reported as an operator's cancel, not the owner's
