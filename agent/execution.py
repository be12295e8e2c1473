"""One claimed task's execution: submit the runner step, report RUNNING with where it runs, wait for
the end or a cancel, then report exactly one outcome and mirror it as the flow run's final state.

The flow run's states and artifacts are the site operators' view: they carry no tenant data beyond the
summary in agent.artifacts (a runner's error message may quote the circuit: it goes to the control plane
only), and a cancel set in Prefect is reported as the operator's, with the Prefect actor."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from prefect.client.schemas.objects import State
from prefect.states import Cancelled, Completed, Failed

from agent.artifacts import publish_artifacts, ran
from agent.claims import Claim
from agent.control_plane import ControlPlane, ControlPlaneError, Fenced, Rejected, Report
from agent.deadline import time_limit_error
from agent.scheduler.base import JobHandle, JobState, Resources, Scheduler, TerminalEvidence
from vqpu_protocol.api.agent import CancelledReport, CompletedReport, FailedReport, RunningReport
from vqpu_protocol.api.tasks import SchedulerEvidence
from vqpu_protocol.codes import ErrorCode
from vqpu_protocol.errors import ErrorDocument
from vqpu_protocol.rundir import LOG_FILE, ResultDocument, RunUsage, read_outcome, read_usage

log = logging.getLogger("agent.execution")

LOG_TAIL_LINES = 20
PLACEMENT_WAIT_S = 30.0
PREFECT = "prefect"
"""The cancel source of a flow run set Cancelling in Prefect (the other is the control plane's heartbeat reply)."""


@dataclass
class Execution:
    claim: Claim
    run_dir: Path
    control_plane: ControlPlane
    scheduler: Scheduler
    resources: Resources
    flow_run_id: str | None = None
    handle: JobHandle | None = None
    cancel_source: str | None = None
    cancel_actor: str | None = None  # who, as Prefect records it, set the flow run Cancelling
    include_counts: bool = False  # the counts artifact too (the site's prefect.artifacts_include_counts)
    fenced: bool = False
    handed_back: bool = False
    refusal: str | None = None
    result_refused: Rejected | None = None  # the control plane refused the result as not this task's (422)
    finished: bool = False  # a terminal report was taken or refused: nothing more will be sent
    submitted_at: float | None = None  # time.monotonic() when this agent submitted the runner step
    _stop: anyio.Event = field(default_factory=anyio.Event)
    done: anyio.Event = field(default_factory=anyio.Event)

    @property
    def task_id(self) -> str:
        return self.claim.task_id

    @property
    def attempt(self) -> int:
        return self.claim.attempt

    @property
    def token(self) -> str:
        return self.claim.claim_token

    def cancel(self, source: str, actor: str | None = None) -> None:
        """Stop the runner and report the task cancelled: from the heartbeat reply (the owner or an admin asked
        the control plane), or from Prefect (`source` PREFECT, with the actor PrefectBridge.cancelling read)."""
        if self.cancel_source is None:
            self.cancel_source = source
            self.cancel_actor = actor
        self._stop.set()

    def fence(self) -> None:
        """The task is no longer ours: stop the runner and report nothing."""
        self.fenced = True
        self._stop.set()

    def hand_back(self) -> None:
        """The agent is stopping and cannot wait: stop the runner and report nothing. The task stays this
        agent's (its claim note stays open), so a restarted agent finishes it, or it goes stale."""
        self.handed_back = True
        self._stop.set()

    @property
    def silent(self) -> bool:
        """Nothing more may be reported for this task by this execution."""
        return self.fenced or self.handed_back

    async def drive(self) -> State[Any]:
        try:
            return await self._drive()
        finally:
            self.done.set()

    async def _drive(self) -> State[Any]:
        if self._stop.is_set():
            return await self._finish_unstarted()
        outcome = read_outcome(self.run_dir)
        if outcome is not None:  # a restarted agent finds the runner finished: report what it left, once
            log.info("task %s attempt %s: the runner had finished; reporting its outcome", self.task_id, self.attempt)
            job = outcome.provenance.scheduler_job_id if isinstance(outcome, ResultDocument) else None
            found = TerminalEvidence(JobState.COMPLETED, scheduler_state="found", job_id=job)
            return await self._report_outcome(outcome, found)
        if self.handle is None:
            self.submitted_at = time.monotonic()
            self.handle = await self.scheduler.submit(self.run_dir, self.resources)
            log.info("task %s attempt %s: submitted as %s job %s", self.task_id, self.attempt, *self._job())
        else:
            log.info("task %s attempt %s: following %s job %s again", self.task_id, self.attempt, *self._job())
        evidence = await self._run(self.handle)
        if self.silent:
            return self._silent_state()
        outcome = read_outcome(self.run_dir)
        if self.cancel_source is not None and not isinstance(outcome, ResultDocument):
            return await self._report_cancelled(evidence)
        return await self._report_outcome(outcome, evidence)

    async def _run(self, handle: JobHandle) -> TerminalEvidence:
        ended: TerminalEvidence | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._report_running, handle)

            async def stop_on_request() -> None:
                await self._stop.wait()
                await self.scheduler.cancel(handle)

            tg.start_soon(stop_on_request)
            ended = await self.scheduler.wait(handle)
            tg.cancel_scope.cancel()
        assert ended is not None
        return ended

    async def _report_running(self, handle: JobHandle) -> None:
        placement = None
        with anyio.move_on_after(PLACEMENT_WAIT_S):
            while placement is None:
                placement = await self.scheduler.placement(handle)
                if placement is None:
                    await anyio.sleep(0.02)
        evidence = SchedulerEvidence(
            adapter=self.scheduler.name,
            job_id=(placement.job_id if placement else None) or handle.job_id,
            node=placement.node if placement else None,
            worker=placement.worker if placement else None,
            state="RUNNING" if placement else "PENDING",
        )
        with anyio.CancelScope(shield=True):  # a job that ends meanwhile must not cut the report off mid-request
            await self._send(RunningReport(claim_token=self.token, scheduler=evidence))

    async def _finish_unstarted(self) -> State[Any]:
        if self.silent:
            return self._silent_state()
        return await self._report_cancelled(None)

    def _silent_state(self) -> State[Any]:
        if self.fenced:
            return Cancelled(message=f"task {self.task_id} was handed to another attempt: nothing reported")
        return Cancelled(message="the agent stopped before the task finished: nothing reported; it stays RUNNING")

    async def _report_cancelled(self, evidence: TerminalEvidence | None) -> State[Any]:
        scheduler = self._evidence(evidence)
        if self.cancel_source == PREFECT:  # an operator's cancel (whoever holds the site's Prefect credential)
            report = CancelledReport(
                claim_token=self.token,
                scheduler=scheduler,
                requested_by="prefect",
                actor=self.cancel_actor,
                usage=self._usage(evidence),
            )
        else:  # the control plane knows who asked it (the owner or an admin)
            report = CancelledReport(
                claim_token=self.token, scheduler=scheduler, requested_by="control-plane", usage=self._usage(evidence)
            )
        if not await self._send(report):
            return self._state_after_refusal()
        return Cancelled(message=f"cancelled ({self.cancel_source}); the runner was stopped")

    async def _report_outcome(
        self, outcome: ResultDocument | ErrorDocument | None, evidence: TerminalEvidence
    ) -> State[Any]:
        scheduler = self._evidence(evidence)
        usage = self._usage(evidence)
        report: Report
        if isinstance(outcome, ResultDocument):
            report = CompletedReport(claim_token=self.token, result=outcome, scheduler=scheduler, usage=usage)
        else:
            error = outcome if outcome is not None else self._no_outcome(evidence)
            report = FailedReport(claim_token=self.token, error=error, scheduler=scheduler, usage=usage)
        if not await self._send(report):
            if self.result_refused is None:
                return self._state_after_refusal()
            # The control plane found the result is not this task's (wrong shots, provenance, widths): what the
            # runner left cannot be reported as its outcome, and the task must not wait to go stale.
            error = ErrorDocument(
                code=ErrorCode.INVALID_RESULT,
                message=f"the control plane refused the runner's result: {self.result_refused}"[:2000],
                detail={"status": self.result_refused.status},
            )
            report = FailedReport(claim_token=self.token, error=error, scheduler=scheduler, usage=usage)
            if not await self._send(report):
                return self._state_after_refusal()
            return Failed(message=f"{ErrorCode.INVALID_RESULT}: the runner's result did not match its task")
        if isinstance(outcome, ResultDocument):
            await publish_artifacts(self, outcome, include_counts=self.include_counts)
            return Completed(message=f"{ran(outcome)} in {outcome.timings.total_s:.3f} s")
        assert isinstance(report, FailedReport)
        if outcome is not None:  # the runner's own message may quote the tenant's circuit (a parse error does)
            return Failed(message=f"{report.error.code}: the runner's message is with the task, on the control plane")
        return Failed(message=f"{report.error.code}: {report.error.message}"[:2000])

    def _no_outcome(self, evidence: TerminalEvidence) -> ErrorDocument:
        """The runner left neither result.json nor error.json: say what the scheduler saw. A job the scheduler
        stopped at its wall-time limit (the runner's own watchdog did not get to) is TIME_LIMIT_EXCEEDED."""
        detail = {
            "exit_code": evidence.exit_code,
            "scheduler_state": evidence.scheduler_state or str(evidence.state),
            "reason": evidence.reason,
            "runner_log_tail": _log_tail(self.run_dir / LOG_FILE),
        }
        if evidence.timed_out:
            return time_limit_error(self.resources.max_runtime_s, evidence.used_s, **detail)
        code = evidence.exit_code if evidence.exit_code is not None else "none"
        return ErrorDocument(
            code=ErrorCode.RUNNER_CRASH,
            message=f"the runner left no result (exit code {code}, scheduler state {detail['scheduler_state']})",
            detail=detail,
        )

    async def _send(self, report: Report) -> bool:
        """True when the control plane took the report; False when it refused it (fenced or rejected)."""
        terminal = not isinstance(report, RunningReport)
        try:
            await self.control_plane.report(self.task_id, report)
        except Fenced as exc:
            log.warning("task %s: fenced, reporting nothing more (%s)", self.task_id, exc)
            self.fenced = True
            self._stop.set()
            self.claim.save(self.run_dir, ended="fenced")
            return False
        except Rejected as exc:
            if isinstance(report, RunningReport):
                log.info("task %s: running report refused (%s)", self.task_id, exc)
                return True
            log.warning("task %s: report refused: %s", self.task_id, exc)
            if (
                isinstance(report, CompletedReport)
                and exc.code == ErrorCode.INVALID_RESULT
                and self.result_refused is None
            ):
                self.result_refused = exc  # still ours, nothing stored: report it failed instead
                return False
            self.refusal = str(exc)
            self._ended()
            return False
        except ControlPlaneError as exc:
            if isinstance(report, RunningReport):
                log.warning("task %s: running report not delivered: %s", self.task_id, exc)
                return True
            raise
        if terminal:
            self._ended()
        return True

    def _ended(self) -> None:
        """Nothing more will be reported: note it at once, so that a restart never reports it again."""
        self.finished = True
        self.claim.save(self.run_dir, ended="reported")

    def _state_after_refusal(self) -> State[Any]:
        if self.fenced:
            return Cancelled(message=f"task {self.task_id} was handed to another attempt: nothing reported")
        return Failed(message=f"the control plane refused the outcome: {self.refusal}"[:2000])

    def _usage(self, evidence: TerminalEvidence | None) -> RunUsage | None:
        """What the run used, for the site's accounting: the runner's own account (usage.json), else the
        scheduler's or this agent's clock; None for a run that never started here."""
        found = read_usage(self.run_dir)
        if found is not None:
            return found
        if evidence is not None and evidence.used_s is not None:
            return RunUsage(wall_s=evidence.used_s, measured_by="agent")
        if self.submitted_at is not None:
            return RunUsage(wall_s=time.monotonic() - self.submitted_at, measured_by="agent")
        return None

    def _evidence(self, evidence: TerminalEvidence | None) -> SchedulerEvidence:
        handle = self.handle
        if evidence is None:
            return SchedulerEvidence(adapter=self.scheduler.name, job_id=handle.job_id if handle else None)
        return SchedulerEvidence(
            adapter=self.scheduler.name,
            job_id=evidence.job_id or (handle.job_id if handle else None),
            node=evidence.node,
            worker=evidence.worker,
            state=evidence.scheduler_state or str(evidence.state),
            exit_code=evidence.exit_code,
        )

    def _job(self) -> tuple[str, str]:
        return (self.scheduler.name, self.handle.job_id if self.handle else "-")


def _log_tail(path: Path) -> list[str]:
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 16384))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []
    return [line[:500] for line in lines[-LOG_TAIL_LINES:]]
