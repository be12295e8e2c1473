"""One claimed task's execution, and the one owner of its progress: submit the runner step, report RUNNING
with where it runs, wait for the end or a cancel, then report exactly one outcome and note how it ended.

Its progress is an explicit state (`Phase`) that moves only along `TRANSITIONS`, as a task's does on the
control plane (vqpu_service/domain/lifecycle.py). The engine and the heartbeat only *ask* (`cancel`, `fence`,
`hand_back`); `drive` decides, reports, writes the claim note (agent.claims) and returns the `Ending`.

Nothing here waits on Prefect. The operators' view of the execution (agent.view) is told through the
`Observer` it is given, which must never block: the flow run, the runner step's task run and the
artifacts are written beside the work, and after it when Prefect is away."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import anyio

from agent.claims import Claim
from agent.control_plane import ControlPlane, ControlPlaneError, Fenced, Rejected, Report
from agent.deadline import time_limit_error
from agent.scheduler.base import JobHandle, JobState, Resources, Scheduler, TerminalEvidence
from vqpu_protocol.api.agent import CancelledReport, CompletedReport, FailedReport, RunningReport
from vqpu_protocol.api.tasks import SchedulerEvidence
from vqpu_protocol.codes import ErrorCode
from vqpu_protocol.errors import ErrorDocument
from vqpu_protocol.rundir import LOG_FILE, ResultDocument, RunDirError, RunUsage, read_outcome, read_usage

log = logging.getLogger("agent.execution")

LOG_TAIL_LINES = 20
PLACEMENT_WAIT_S = 30.0
PREFECT = "prefect"
"""The cancel source of a flow run set Cancelling in Prefect (the other is the control plane's heartbeat reply)."""


class Phase(StrEnum):
    CLAIMED = "claimed"
    """The run directory is written; no runner step yet."""
    STARTED = "started"
    """The runner step is submitted (or, after a restart, found running and followed again)."""
    ENDED = "ended"
    """A terminal report was taken (or refused as not this attempt's to make): nothing more is reported."""
    FENCED = "fenced"
    """The task is another attempt's now (requeued or force-failed): the runner is stopped, nothing reported."""
    HANDED_BACK = "handed-back"
    """The agent stopped first: the runner is stopped, nothing reported, the claim note stays open so that a
    restarted agent finishes the task (or it goes stale on the control plane)."""


class Step(StrEnum):
    SUBMIT = "submit"
    END = "end"
    FENCE = "fence"
    HAND_BACK = "hand back"


TRANSITIONS: dict[tuple[Phase, Step], Phase] = {
    (Phase.CLAIMED, Step.SUBMIT): Phase.STARTED,
    (Phase.CLAIMED, Step.END): Phase.ENDED,
    (Phase.CLAIMED, Step.FENCE): Phase.FENCED,
    (Phase.CLAIMED, Step.HAND_BACK): Phase.HANDED_BACK,
    (Phase.STARTED, Step.END): Phase.ENDED,
    (Phase.STARTED, Step.FENCE): Phase.FENCED,
    (Phase.STARTED, Step.HAND_BACK): Phase.HANDED_BACK,
}
"""Every move an execution may make; ENDED, FENCED and HANDED_BACK absorb."""
FINAL = frozenset({Phase.ENDED, Phase.FENCED, Phase.HANDED_BACK})


class IllegalStep(RuntimeError):
    """A step the transition table does not allow from the execution's phase (a bug, never a user's doing)."""


@dataclass(frozen=True)
class Ending:
    """How an execution ended, for the operators' view: `state` is what the control plane holds for the task
    (COMPLETED, FAILED, CANCELLED), None where the execution cannot know it (fenced, handed back, refused)."""

    phase: Phase
    state: str | None
    message: str
    """For the flow run: never the runner's own message, which may quote the tenant's circuit."""
    at: datetime
    result: ResultDocument | None = None


class Observer(Protocol):
    """The operators' view of executions (agent.view.PrefectView). Calls return at once, whatever Prefect does."""

    def running(self, execution: Execution, evidence: SchedulerEvidence, at: datetime) -> None: ...


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Execution:
    claim: Claim
    run_dir: Path
    control_plane: ControlPlane
    scheduler: Scheduler
    resources: Resources
    observer: Observer | None = None
    handle: JobHandle | None = None
    setup_error: str | None = None
    """The agent could not prepare the run (its run directory could not be written): report that, run nothing."""
    phase: Phase = Phase.CLAIMED
    ending: Ending | None = None
    cancel_source: str | None = None
    cancel_actor: str | None = None  # who, as Prefect records it, set the flow run Cancelling
    claimed_at: datetime = field(default_factory=now)
    submitted_at: float | None = None  # time.monotonic() when this agent submitted the runner step
    _stop_requested: str | None = None  # "fence" or "hand back", asked by the engine
    _result_refused: Rejected | None = None
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

    @property
    def reporting(self) -> bool:
        """Whether this execution still speaks for the task (its token belongs in the heartbeat)."""
        return self.phase not in FINAL and self._stop_requested is None

    # --- what others may ask ---------------------------------------------------------------

    def cancel(self, source: str, actor: str | None = None) -> None:
        """Stop the runner and report the task cancelled: from the heartbeat reply (the owner or an admin asked
        the control plane), or from Prefect (`source` PREFECT, with the actor the view read)."""
        if self.cancel_source is None:
            self.cancel_source = source
            self.cancel_actor = actor
        self._stop.set()

    def fence(self) -> None:
        """The control plane says the task is no longer this attempt's: stop the runner, report nothing."""
        if self.phase not in FINAL:
            self._stop_requested = "fence"
            self._stop.set()

    def hand_back(self) -> None:
        """The agent is stopping and cannot wait: stop the runner and report nothing."""
        if self.phase not in FINAL and self._stop_requested is None:
            self._stop_requested = "hand back"
            self._stop.set()

    # --- the one driver ----------------------------------------------------------------------

    async def drive(self) -> Ending:
        """Run the task to one of the final phases and return how it ended. Never raises for a scheduler's or
        the control plane's failure: a scheduler that fails is reported as the task's EXECUTION_ERROR."""
        try:
            await self._drive()
        except Exception as exc:
            log.exception("task %s attempt %s: execution failed", self.task_id, self.attempt)
            if self.phase not in FINAL:
                await self._report_failure(f"{type(exc).__name__}: {exc}")
        finally:
            self.done.set()
        if self.phase not in FINAL:  # the control plane could not be reached for the terminal report
            self._move(Step.HAND_BACK, "the control plane did not take the outcome; the claim stays open")
        assert self.ending is not None
        return self.ending

    async def _drive(self) -> None:
        if self.setup_error is not None:
            await self._report_failure(self.setup_error)
            return
        if self._stop.is_set() and self._stopped_without_report():
            return
        outcome = read_outcome(self.run_dir)
        if outcome is not None:  # a restarted agent finds the runner finished: report what it left, once
            log.info("task %s attempt %s: the runner had finished; reporting its outcome", self.task_id, self.attempt)
            job = outcome.provenance.scheduler_job_id if isinstance(outcome, ResultDocument) else None
            await self._report_outcome(
                outcome, TerminalEvidence(JobState.COMPLETED, scheduler_state="found", job_id=job)
            )
            return
        if self._stop.is_set():  # cancelled before anything ran
            await self._report_cancelled(None)
            return
        if self.handle is None:
            self.submitted_at = time.monotonic()
            self.handle = await self.scheduler.submit(self.run_dir, self.resources)
            log.info("task %s attempt %s: submitted as %s job %s", self.task_id, self.attempt, *self._job())
        else:
            log.info("task %s attempt %s: following %s job %s again", self.task_id, self.attempt, *self._job())
        self._move(Step.SUBMIT)
        evidence = await self._run(self.handle)
        if self._stopped_without_report():
            return
        outcome = read_outcome(self.run_dir)
        if self.cancel_source is not None and not isinstance(outcome, ResultDocument):
            await self._report_cancelled(evidence)
        else:
            await self._report_outcome(outcome, evidence)

    def _stopped_without_report(self) -> bool:
        if self._stop_requested == "fence":
            self._move(Step.FENCE, "the control plane took the task from this attempt: nothing reported")
            return True
        if self._stop_requested == "hand back":
            self._move(Step.HAND_BACK, "the agent stopped before the task finished: nothing reported; it stays RUNNING")
            return True
        return False

    def _move(
        self, step: Step, message: str = "", state: str | None = None, result: ResultDocument | None = None
    ) -> None:
        target = TRANSITIONS.get((self.phase, step))
        if target is None:
            raise IllegalStep(f"task {self.task_id} attempt {self.attempt}: {step} from {self.phase}")
        self.phase = target
        if target in FINAL:
            self.ending = Ending(target, state, message, now(), result)
            try:
                if target is Phase.ENDED:  # noted at once, so that a restart never reports it again
                    self.claim.save(self.run_dir, ended="reported", state=state)
                elif target is Phase.FENCED:
                    self.claim.save(self.run_dir, ended="fenced")
            except (OSError, RunDirError) as exc:  # the run directory could not be written in the first place
                log.error("task %s attempt %s: cannot note how it ended: %s", self.task_id, self.attempt, exc)

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
        if self.observer is not None:
            self.observer.running(self, evidence, now())
        with anyio.CancelScope(shield=True):  # a job that ends meanwhile must not cut the report off mid-request
            await self._send(RunningReport(claim_token=self.token, scheduler=evidence))

    # --- terminal reports: each moves the execution to a final phase ---------------------------

    async def _report_failure(self, message: str) -> None:
        """The agent could not execute the task (the scheduler failed, the run directory could not be written)."""
        error = ErrorDocument(code=ErrorCode.EXECUTION_ERROR, message=message[:4000])
        report = FailedReport(claim_token=self.token, error=error, scheduler=self._evidence(None))
        await self._terminal(report, "FAILED", f"{ErrorCode.EXECUTION_ERROR}: {message}"[:2000])

    async def _report_cancelled(self, evidence: TerminalEvidence | None) -> None:
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
        await self._terminal(report, "CANCELLED", f"cancelled ({self.cancel_source}); the runner was stopped")

    async def _report_outcome(self, outcome: ResultDocument | ErrorDocument | None, evidence: TerminalEvidence) -> None:
        scheduler = self._evidence(evidence)
        usage = self._usage(evidence)
        if isinstance(outcome, ResultDocument):
            report = CompletedReport(claim_token=self.token, result=outcome, scheduler=scheduler, usage=usage)
            message = f"{ran(outcome)} in {outcome.timings.total_s:.3f} s"
            if await self._terminal(report, "COMPLETED", message, outcome) or self._result_refused is None:
                return
            # The control plane found the result is not this task's (wrong shots, provenance, widths): what the
            # runner left cannot be reported as its outcome, and the task must not wait to go stale.
            error = ErrorDocument(
                code=ErrorCode.INVALID_RESULT,
                message=f"the control plane refused the runner's result: {self._result_refused}"[:2000],
                detail={"status": self._result_refused.status},
            )
            failed = FailedReport(claim_token=self.token, error=error, scheduler=scheduler, usage=usage)
            await self._terminal(
                failed, "FAILED", f"{ErrorCode.INVALID_RESULT}: the runner's result did not match its task"
            )
            return
        error = outcome if outcome is not None else self._no_outcome(evidence)
        failure = FailedReport(claim_token=self.token, error=error, scheduler=scheduler, usage=usage)
        if outcome is not None:  # the runner's own message may quote the tenant's circuit (a parse error does)
            message = f"{error.code}: the runner's message is with the task, on the control plane"
        else:
            message = f"{error.code}: {error.message}"[:2000]
        await self._terminal(failure, "FAILED", message)

    async def _terminal(self, report: Report, state: str, message: str, result: ResultDocument | None = None) -> bool:
        """Send a terminal report and move to the final phase its answer decides. True when it was taken;
        False when it was refused (fenced, or rejected: the task is terminal already) or could not be delivered."""
        try:
            await self.control_plane.report(self.task_id, report)
        except Fenced as exc:
            log.warning("task %s: fenced, reporting nothing more (%s)", self.task_id, exc)
            self._move(Step.FENCE, "the control plane took the task from this attempt: nothing reported")
            return False
        except Rejected as exc:
            log.warning("task %s: report refused: %s", self.task_id, exc)
            if (
                isinstance(report, CompletedReport)
                and exc.code == ErrorCode.INVALID_RESULT
                and self._result_refused is None
            ):
                self._result_refused = exc  # still ours, nothing stored: report it failed instead
                return False
            self._move(Step.END, f"the control plane refused the outcome: {exc}"[:2000])
            return False
        except ControlPlaneError as exc:
            log.error("task %s: could not report %s: %s", self.task_id, state, exc)
            return False
        self._move(Step.END, message, state, result)
        return True

    async def _send(self, report: RunningReport) -> None:
        try:
            await self.control_plane.report(self.task_id, report)
        except Fenced as exc:
            log.warning("task %s: fenced at its running report (%s): stopping it", self.task_id, exc)
            self.fence()
        except Rejected as exc:
            log.info("task %s: running report refused (%s)", self.task_id, exc)
        except ControlPlaneError as exc:
            log.warning("task %s: running report not delivered: %s", self.task_id, exc)

    # --- evidence -----------------------------------------------------------------------------

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


def ran(result: ResultDocument) -> str:
    """What the task ran, in words: its shots, or its PUBs."""
    if result.pubs is None:
        return f"{result.shots} shots"
    n = len(result.pubs.pubs)
    what = f"{n} {result.pubs.kind} PUB{'s' * (n != 1)}"
    return what if result.pubs.kind == "estimator" else f"{what}, {result.shots} shots"


def _log_tail(path: Path) -> list[str]:
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 16384))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []
    return [line[:500] for line in lines[-LOG_TAIL_LINES:]]
