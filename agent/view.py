"""The operators' view of the agent's work in Prefect, written beside the work and brought to rest on the truth.

Each claimed attempt has a `Mirror`: what Prefect should show of it (claimed, its runner step started where,
how it ended) and what Prefect has been shown so far. The view writes the difference: the flow run of the
`vqpu-execute` deployment (created Running, with the attempt's idempotency key, so a restarted agent finds
it again), the runner step's task run, the artifacts of a completed task and, always last, the final state. It
first writes an attempt `HOLD_S` after its claim, or at its end if that comes first: then the step is created
in its final state. Nothing in an execution waits for any of it (agent.execution calls in, and returns at
once).

While Prefect does not answer, mirrors wait: the view says once that it fell behind and once that it
caught up, and `status()` says how far behind it is (count, and the age of the oldest change not shown).
A state written later than it happened says when it happened (Prefect stamps states with the time it
receives them).

The reconciler brings the view to rest on the truth, at start and every `RECONCILE_S`:
- at start, every recent attempt whose ending the claim note records but whose flow run was never
  settled (`view.json` missing: the agent died first) is mirrored again;
- every flow run of this agent that Prefect shows unsettled (Scheduled, Pending, Running, Paused,
  Cancelling) is compared with what the agent knows: an attempt that ended is put back to its final state
  (an operator's Retry on a finished run, a Suspend), a running one that was paused is put back to
  Running. Cancelling is an action the control plane owns: it is read by `cancelling()` and becomes the
  task's cancel.
The view never writes a state the control plane does not hold for the attempt: Completed, Failed or
Cancelled only as the control plane took the agent's report; Cancelled for an attempt it took away (fenced);
Running while the control plane has the task RUNNING under this attempt.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import anyio
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings
from prefect.states import Cancelled, Completed, Failed, Running

from agent.claims import CLAIM_FILE, Claim, ClaimNote, agent_notes, read_note
from agent.execution import Ending, Execution, Phase
from agent.prefect_bridge import PrefectBridge, attempt_of, away, task_run_id, unavailable
from vqpu_protocol.api.tasks import SchedulerEvidence
from vqpu_protocol.rundir import (
    ERROR_FILE,
    RESULT_FILE,
    ResultDocument,
    RunDirError,
    UnsafeRunDirName,
    atomic_write,
    read_outcome,
    run_dir_for,
)

log = logging.getLogger("agent.view")

VIEW_FILE = "view.json"
"""In a run directory: the flow run that shows the attempt, once it shows the attempt's end (written by the view)."""
RECONCILE_S = 15.0
LATE_AFTER_S = 2.0
"""A state written this long after it happened says when it happened."""
RECENT = timedelta(days=1)
"""At start, ended attempts whose view was never settled are mirrored again if their claim note is this recent."""
HOLD_S = 1.0
"""An attempt is first written this long after its claim, unless it has ended by then: a short task's step is then
created in its final state (4 requests instead of 5: the flow run, created Running; its step, in its final state;
the artifact; the flow run's final state, last), and a very short one costs Prefect's server one state change less."""
LANES = 4
MAX_BACKOFF_S = 4.0
BUSY_PAUSE_S = 0.25
REFUSAL_PAUSE_S = 1.0
MAX_REFUSALS = 5

CREATED, RUNNING, STEP, STEP_ENDED, ARTIFACTS, ENDED = "created", "running", "step", "step-ended", "artifacts", "ended"
ENDED_FIRST = "created-ended"


@dataclass
class Mirror:
    """What Prefect should show of one attempt, and what it has been shown (`shown`)."""

    task_id: str
    attempt: int
    device: str
    run_dir: Path
    task_url: str
    claimed_at: datetime
    placed: tuple[datetime, str] | None = None
    """When the runner step started, and where (for its task run)."""
    ending: Ending | None = None
    ran: bool = False
    """Whether a runner step ran (a task that failed before its step, or was cancelled first, has no task run)."""
    flow_run_id: UUID | None = None
    shown: set[str] = field(default_factory=set)
    behind_since: float = field(default_factory=time.monotonic)
    """When the oldest change not yet shown happened (time.monotonic)."""
    refusals: int = 0
    in_step: bool = False
    """Prefect shows everything known of the attempt so far."""
    changes: int = 0
    seen_at: float = field(default_factory=time.monotonic)
    """When the view learned of the attempt (time.monotonic)."""

    @property
    def key(self) -> tuple[str, int]:
        return (self.task_id, self.attempt)

    @property
    def settled(self) -> bool:
        return ENDED in self.shown


@dataclass(frozen=True)
class ViewStatus:
    behind: int
    """Attempts whose latest change Prefect does not show yet."""
    oldest_s: float
    """Age of the oldest change not shown (0 when none)."""
    reachable: bool
    """Whether Prefect answered the view's last request."""
    busy_answers: int = 0
    """How often Prefect answered the view 'busy' (5xx or 429) since the agent started: each one slows the view to
    one request at a time for a while."""


class PrefectView:
    """Owns every write the agent makes to Prefect, and every read of it but the credential check."""

    def __init__(self, bridge: PrefectBridge, run_root: Path, task_url: Callable[[str], str]) -> None:
        self.bridge = bridge
        self.run_root = run_root
        self.task_url = task_url
        self.mirrors: dict[tuple[str, int], Mirror] = {}
        self._dirty = anyio.Event()
        self._reachable = True
        self._away_since: float | None = None  # when Prefect stopped answering (time.monotonic)
        self._back_at: float | None = None  # when it first answered again
        self._syncing: set[tuple[str, int]] = set()
        self._busy_answers = 0

    # --- what the engine and the executions tell it (never blocks) --------------------------------

    def claimed(self, execution: Execution) -> None:
        mirror = Mirror(
            execution.task_id,
            execution.attempt,
            execution.claim.device,
            execution.run_dir,
            self.task_url(execution.task_id),
            execution.claimed_at,
        )
        self.mirrors[mirror.key] = mirror
        self._wake()

    def running(self, execution: Execution, evidence: SchedulerEvidence, at: datetime) -> None:
        mirror = self.mirrors.get((execution.task_id, execution.attempt))
        if mirror is not None and mirror.placed is None:
            mirror.placed = (at, _where(evidence))
            mirror.ran = True
            self._changed(mirror)

    def ended(self, execution: Execution, ending: Ending) -> None:
        mirror = self.mirrors.get((execution.task_id, execution.attempt))
        if mirror is None:
            return
        if ending.phase is Phase.HANDED_BACK:
            # The control plane still has the task RUNNING under this attempt: so does the flow run. A restarted
            # agent finishes the attempt (and its view) or finds it fenced.
            del self.mirrors[mirror.key]
            return
        mirror.ending = ending
        mirror.ran = mirror.ran or execution.submitted_at is not None
        self._changed(mirror)

    def ended_meanwhile(self, note: Claim | ClaimNote, run_dir: Path, state: str | None, fenced: bool) -> None:
        """An attempt that ended while the agent was away (its report taken, or the task moved on): show that."""
        self._adopt(note, run_dir, state=state, fenced=fenced)

    # --- status -----------------------------------------------------------------------------------

    def status(self) -> ViewStatus:
        behind = [m for m in self.mirrors.values() if not m.in_step]
        oldest = max((time.monotonic() - m.behind_since for m in behind), default=0.0)
        return ViewStatus(
            behind=len(behind), oldest_s=round(oldest, 1), reachable=self._reachable, busy_answers=self._busy_answers
        )

    async def flushed(self) -> None:
        """Returns once Prefect shows everything the view knows (never, while Prefect is away)."""
        while any(not m.in_step for m in self.mirrors.values()):
            await anyio.sleep(0.05)

    def flow_run_ids(self, keys: list[tuple[str, int]]) -> dict[UUID, tuple[str, int]]:
        return {m.flow_run_id: k for k in keys if (m := self.mirrors.get(k)) is not None and m.flow_run_id}

    async def cancelling(self, keys: list[tuple[str, int]]) -> dict[tuple[str, int], str]:
        """Which of these attempts' flow runs an operator set Cancelling, with the actor; {} while Prefect is away."""
        runs = self.flow_run_ids(keys)
        if not runs:
            return {}
        try:
            with _no_client_retries():
                found = await self.bridge.cancelling(list(runs))
        except Exception as exc:
            if away(exc):
                self._unreachable(exc)
            elif not unavailable(exc):  # a busy Prefect is asked again on the next tick
                log.warning("view: reading cancelled flow runs failed: %s", _short(exc))
            return {}
        self._answered()
        return {runs[run_id]: actor for run_id, actor in found.items()}

    # --- the loops ----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Mirror and reconcile until cancelled (the engine's loops group)."""
        with _no_client_retries():
            await anyio.to_thread.run_sync(self._adopt_unsettled)
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._sync_loop)
                tg.start_soon(self._reconcile_loop)

    async def _sync_loop(self) -> None:
        """Passes over the attempts Prefect does not show yet, up to `lanes` at a time. Prefect away (no
        connection): wait 0.5 s, doubling to MAX_BACKOFF_S. Prefect busy (it answers 5xx or 429: on SQLite, a
        locked database): one request at a time, after a short pause, until a clean pass, then more lanes."""
        backoff, lanes = 0.5, LANES
        while True:
            self._dirty = anyio.Event()
            waiting = [m for m in self.mirrors.values() if not m.in_step and m.key not in self._syncing]
            now_ = time.monotonic()
            pending = [m for m in waiting if m.ending is not None or now_ - m.seen_at >= HOLD_S]
            if not pending:
                held = [HOLD_S - (now_ - m.seen_at) for m in waiting]
                with anyio.move_on_after(min(held, default=math.inf)):
                    await self._dirty.wait()
                continue
            unreached: list[Exception] = []
            busy: list[Exception] = []
            limiter = anyio.CapacityLimiter(lanes)
            async with anyio.create_task_group() as tg:
                for mirror in sorted(pending, key=lambda m: m.behind_since):
                    tg.start_soon(self._sync_one, mirror, limiter, unreached, busy)
            if unreached:
                self._unreachable(unreached[0])
                lanes = 1
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            backoff = 0.5
            self._answered()
            if busy:
                lanes = 1
                await anyio.sleep(BUSY_PAUSE_S)
            elif any(m.refusals and not m.in_step for m in pending):
                await anyio.sleep(REFUSAL_PAUSE_S)
            else:
                lanes = min(lanes * 2, LANES)

    async def _sync_one(
        self, mirror: Mirror, limiter: anyio.CapacityLimiter, unreached: list[Exception], busy: list[Exception]
    ) -> None:
        async with limiter:
            if unreached or busy:  # Prefect is not there, or cannot keep up: the next pass, after a pause
                return
            self._syncing.add(mirror.key)
            changes = mirror.changes
            try:
                await self._sync(mirror)
                mirror.in_step = mirror.changes == changes
            except ObjectNotFound:  # the flow run was deleted in Prefect while the attempt ran: make it again
                log.info("task %s attempt %s: its flow run is gone; creating it again", *mirror.key)
                mirror.flow_run_id = None
                mirror.shown.clear()
            except Exception as exc:
                if away(exc):
                    unreached.append(exc)
                elif unavailable(exc):
                    busy.append(exc)
                    self._busy_answers += 1
                    log.debug("task %s attempt %s: Prefect is busy: %s", *mirror.key, _short(exc))
                else:  # Prefect answered, and refused: tried again on the next passes, then given up
                    mirror.refusals += 1
                    log.warning("task %s attempt %s: Prefect refused the view's update: %s", *mirror.key, _short(exc))
                    if mirror.refusals >= MAX_REFUSALS:
                        log.error(
                            "task %s attempt %s: giving up on its flow run after %d refusals", *mirror.key, MAX_REFUSALS
                        )
                        self.mirrors.pop(mirror.key, None)
            finally:
                self._syncing.discard(mirror.key)
            if mirror.settled:
                self._note_settled(mirror)
                if self.mirrors.get(mirror.key) is mirror:
                    del self.mirrors[mirror.key]

    async def _sync(self, m: Mirror) -> None:
        b = self.bridge
        if b.deployment_id is None:  # Prefect was away when the agent started
            await b.ensure_deployment()
        if m.flow_run_id is None:
            # Running; or, for an attempt that is over and has nothing to attach (no step's task run, no artifact),
            # in its final state at once. The final state always comes last: whoever sees a flow run Completed
            # (an operator, an automation) finds its step and its artifact there already.
            first = (
                _final_state(m.ending, claimed_at=m.claimed_at)
                if m.ending is not None and not m.ran and m.ending.result is None
                else Running(message=_late(f"claimed at {_at(m.claimed_at)}", m.claimed_at))
            )
            run = await b.create_run(m.task_id, m.attempt, m.device, str(m.run_dir), first)
            m.flow_run_id = run.id
            m.shown.add(CREATED)
            kind = run.state.type if run.state is not None else None
            if kind is StateType.RUNNING or (kind is not None and run.state is not None and run.state.is_final()):
                m.shown.add(RUNNING)
            if first.is_final() and kind is first.type:
                m.shown.add(ENDED_FIRST)
        run_id = m.flow_run_id
        if RUNNING not in m.shown:
            await b.set_run_state(run_id, Running(message=_late(f"claimed at {_at(m.claimed_at)}", m.claimed_at)))
            m.shown.add(RUNNING)
        if m.placed is not None and STEP not in m.shown and m.ending is None:
            at, where = m.placed
            await b.create_step(run_id, m.task_id, m.attempt, Running(message=_late(where, at)))
            m.shown.add(STEP)
        ending = m.ending
        if ending is None:
            return
        final = _final_state(ending)
        if m.ran and STEP_ENDED not in m.shown:
            if STEP not in m.shown:
                await b.create_step(run_id, m.task_id, m.attempt, final)
                m.shown.add(STEP)
            else:
                await b.set_step_state(task_run_id(m.task_id, m.attempt), _final_state(ending))
            m.shown.add(STEP_ENDED)
        if ending.result is not None and ARTIFACTS not in m.shown:
            step = task_run_id(m.task_id, m.attempt) if m.ran else None
            await b.publish_artifacts(run_id, step, m.task_id, m.task_url, ending.result)
            m.shown.add(ARTIFACTS)
        if ENDED_FIRST not in m.shown:
            await b.set_run_state(run_id, _final_state(ending))
        m.shown.add(ENDED)

    def _note_settled(self, m: Mirror) -> None:
        assert m.ending is not None
        record = {"flow_run_id": str(m.flow_run_id), "state": _final_state(m.ending).type.value}
        try:
            atomic_write(m.run_dir / VIEW_FILE, json.dumps(record).encode())
        except (OSError, RunDirError) as exc:
            log.warning("task %s attempt %s: could not note its settled view: %s", *m.key, exc)

    # --- reconciling ------------------------------------------------------------------------------

    def _adopt_unsettled(self) -> None:
        """At start: every recent ended attempt of this agent whose view was never settled."""
        horizon = datetime.now(UTC) - RECENT
        adopted = 0
        for note, run_dir in agent_notes(self.run_root, self.bridge.agent_id):
            if note.ended not in ("reported", "fenced") or (run_dir / VIEW_FILE).exists():
                continue
            try:
                changed = datetime.fromtimestamp((run_dir / CLAIM_FILE).stat().st_mtime, UTC)
            except OSError:
                continue
            if changed < horizon:
                continue
            self._adopt(note, run_dir, state=note.state, fenced=note.ended == "fenced", at=changed)
            adopted += 1
        if adopted:
            log.info("view: %d ended attempt(s) whose flow runs were never settled; settling them", adopted)

    def _adopt(
        self, note: Claim | ClaimNote, run_dir: Path, *, state: str | None, fenced: bool, at: datetime | None = None
    ) -> None:
        at = at or datetime.now(UTC)
        result = read_outcome(run_dir) if state == "COMPLETED" else None
        if fenced:
            ending = Ending(
                Phase.FENCED, None, "the control plane took the task from this attempt while the agent was away", at
            )
        else:
            message = f"the task ended {state} on the control plane while the agent was away"
            ending = Ending(Phase.ENDED, state, message, at, result if isinstance(result, ResultDocument) else None)
        ran = (run_dir / RESULT_FILE).exists() or (run_dir / ERROR_FILE).exists()
        mirror = Mirror(
            note.task_id, note.attempt, note.device, run_dir, self.task_url(note.task_id), at, ending=ending, ran=ran
        )
        self.mirrors[mirror.key] = mirror
        self._wake()

    async def _reconcile_loop(self) -> None:
        while True:
            try:
                await self.reconcile()
            except Exception as exc:
                if not unavailable(exc):
                    log.warning("view: reconciling with Prefect failed: %s", exc)
            await anyio.sleep(RECONCILE_S)

    async def reconcile(self) -> int:
        """Put back every flow run of this agent that Prefect shows unsettled but the agent knows the state of;
        returns how many it put back."""
        repaired = 0
        for run in await self.bridge.unsettled_runs():
            key = attempt_of(run)
            if key is None or run.state is None:
                continue
            mirror = self.mirrors.get(key)
            if mirror is not None:
                if mirror.ending is None and RUNNING in mirror.shown and run.state.type in _PUT_BACK_WHILE_RUNNING:
                    # Paused, Suspended, Scheduled (a Retry): the task runs on; so does its flow run.
                    await self.bridge.set_run_state(
                        run.id,
                        Running(
                            message=f"put back by the agent: the task is RUNNING on the control plane; a "
                            f"vqpu-execute run cannot be {_verb(run)} (cancel it to stop the task)"
                        ),
                    )
                    repaired += 1
                continue
            truth = self._known_end(*key)
            if truth is None:
                continue
            await self.bridge.set_run_state(run.id, truth)
            log.info(
                "view: flow run %s of task %s attempt %s was %s; put back to %s",
                run.name,
                *key,
                run.state.type.value,
                truth.type.value,
            )
            repaired += 1
        return repaired

    def _known_end(self, task_id: str, attempt: int) -> State[Any] | None:
        """The final state of an attempt that is over, from its claim note; None if it is not over (or unknown)."""
        try:
            note = read_note(run_dir_for(self.run_root, task_id, attempt))
        except UnsafeRunDirName:  # not an id this agent would have made a run directory for
            return None
        if note is None or note.agent_id != self.bridge.agent_id:
            return None
        if note.ended == "fenced":
            return Cancelled(message="put back by the agent: the control plane took the task from this attempt")
        if note.ended == "reported" and note.state is not None:
            return _STATES[note.state](
                message=f"put back by the agent: the task is {note.state} on the control plane; a vqpu-execute run "
                "cannot be retried (submit the circuit again to run it again)"
            )
        return None

    # --- reachability ------------------------------------------------------------------------------

    def _changed(self, mirror: Mirror) -> None:
        mirror.changes += 1
        if mirror.in_step:
            mirror.in_step = False
            mirror.behind_since = time.monotonic()
        self._wake()

    def _wake(self) -> None:
        self._dirty.set()

    def _unreachable(self, exc: Exception) -> None:
        self._reachable = False
        self._back_at = None
        if self._away_since is None:
            self._away_since = time.monotonic()
            status = self.status()
            log.warning(
                "view: Prefect does not answer (%s): the work goes on; %d attempt(s) not shown yet, the oldest %.0f s",
                _short(exc),
                status.behind,
                status.oldest_s,
            )

    def _answered(self) -> None:
        """Prefect answered a request. The view has caught up once every attempt that fell behind while Prefect
        was away is shown (attempts that change after its return are the ordinary traffic): said once."""
        self._reachable = True
        if self._away_since is None:
            return
        if self._back_at is None:
            self._back_at = time.monotonic()
        if any(not m.in_step and m.behind_since < self._back_at for m in self.mirrors.values()):
            return
        now_ = time.monotonic()
        log.info(
            "view: caught up: Prefect shows every attempt again, %.0f s after it answered again (it did not answer "
            "for %.0f s)",
            now_ - self._back_at,
            self._back_at - self._away_since,
        )
        self._away_since = self._back_at = None


_STATES: dict[str, Callable[..., State[Any]]] = {"COMPLETED": Completed, "FAILED": Failed, "CANCELLED": Cancelled}
_PUT_BACK_WHILE_RUNNING = {StateType.PAUSED, StateType.SCHEDULED, StateType.PENDING}


def _final_state(ending: Ending, claimed_at: datetime | None = None) -> State[Any]:
    message = ending.message if claimed_at is None else f"{ending.message}; claimed at {_at(claimed_at)}"
    message = _late(message, ending.at)
    if ending.phase is Phase.FENCED:
        return Cancelled(message=message)
    if ending.state is None:  # the control plane refused the outcome
        return Failed(message=message)
    return _STATES[ending.state](message=message)


def _late(message: str, at: datetime) -> str:
    late = (datetime.now(UTC) - at).total_seconds()
    if late <= LATE_AFTER_S:
        return message
    return f"{message} (shown {late:.0f} s late: it happened at {_at(at)})"[:2000]


def _at(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _where(evidence: SchedulerEvidence) -> str:
    if evidence.state == "PENDING":
        return f"submitted as {evidence.adapter} job {evidence.job_id or '-'}; not placed yet"
    parts = [f"{evidence.adapter} job {evidence.job_id or '-'}"]
    if evidence.node:
        parts.append(f"on {evidence.node}")
    if evidence.worker:
        parts.append(f"worker {evidence.worker}")
    return "running: " + ", ".join(parts)


def _verb(run: FlowRun) -> str:
    kind = run.state.type if run.state is not None else None
    return {StateType.PAUSED: "paused or suspended", StateType.SCHEDULED: "retried"}.get(kind, "reset")  # type: ignore[arg-type]


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


def _no_client_retries() -> Any:
    """The view retries on its own schedule; Prefect's client would otherwise hold a lane for a minute (five
    retries, 2 to 32 s apart) on every request while the server is away."""
    return temporary_settings({PREFECT_CLIENT_MAX_RETRIES: 0})
