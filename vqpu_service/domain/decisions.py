"""What each lifecycle command does to a task: pure functions over a loaded Task, returning events.

The store loads the task inside its transaction, calls one of these, and writes back the task and
the events together; nothing here touches storage or the clock.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from vqpu_protocol.codes import ErrorCode
from vqpu_service.domain import results
from vqpu_service.domain.errors import Fenced, IdempotencyConflict, IllegalTransition, InvalidResult
from vqpu_service.domain.events import EventType, NewEvent, task_event
from vqpu_service.domain.lifecycle import TERMINAL_REPORTS, Action, TaskState, next_state
from vqpu_service.domain.model import Task

PREFECT = "prefect"
"""A cancelled report's `requested_by` for a cancel set in Prefect: the site operators' view."""


@dataclass(frozen=True)
class Report:
    action: Action
    claim_token: str
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    requested_by: str | None = None
    """A cancelled report: where the cancel came from (`control-plane`, `prefect`); None: not said."""
    actor: str | None = None
    """A cancelled report: who asked, as that source names them."""
    usage: dict[str, Any] | None = None
    """A terminal report: what the run used (`vqpu_protocol.rundir.RunUsage`). Not part of `digest`: an
    agent's retry may carry a re-measured clock, and a repeat must still answer `repeated`."""

    def digest(self) -> str:
        body: dict[str, Any] = {"action": str(self.action), "result": self.result, "error": self.error}
        # Only when given, so that the digest of every report without them (all those stored before
        # they existed included) is what it always was: their repeats still answer `repeated`.
        body |= {k: v for k, v in (("requested_by", self.requested_by), ("actor", self.actor)) if v is not None}
        return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class Outcome(Enum):
    APPLIED = "applied"
    REPEATED = "repeated"  # the same terminal report again: answer with the stored outcome


def repeat_of(task: Task, body_sha256: str | None) -> Task:
    """A submission under an Idempotency-Key its owner used before: the stored task when the body is the
    same, else IdempotencyConflict."""
    if task.body_sha256 != body_sha256:
        raise IdempotencyConflict("this Idempotency-Key was used with a different request body", {"task_id": task.id})
    return task


def submitted(task: Task) -> list[NewEvent]:
    return [_event(EventType.TASK_SUBMITTED, task, shots=task.shots, epoch=task.pinned_epoch)]


def claim(
    task: Task, agent_id: str, token: str, epoch: int, sha256: str, now: datetime, ack_deadline: datetime
) -> list[NewEvent]:
    """QUEUED -> RUNNING under `token`, to be acknowledged by its owner before `ack_deadline`."""
    task.state = next_state(task.state, Action.CLAIM)
    task.attempt += 1
    task.agent_id, task.claim_token = agent_id, token
    task.bound_epoch, task.bound_sha256 = epoch, sha256
    task.claimed_at = task.heartbeat_at = task.updated_at = now
    task.stale_reported = False
    task.ack_deadline = ack_deadline
    return [_event(EventType.TASK_CLAIMED, task, agent_id=agent_id, attempt=task.attempt, epoch=epoch, sha256=sha256)]


def report(task: Task, rep: Report, now: datetime) -> tuple[Outcome, list[NewEvent]]:
    if task.state.terminal:
        same_lineage = rep.action in TERMINAL_REPORTS and task.outcome_token == rep.claim_token
        if same_lineage and task.outcome_digest == rep.digest():
            return Outcome.REPEATED, []
        next_state(task.state, rep.action)  # raises: terminal states absorb
    if rep.claim_token != task.claim_token:
        raise Fenced(
            f"claim token is not current for task {task.id} (attempt {task.attempt}, {task.state})",
            {"task_id": task.id, "state": str(task.state), "attempt": task.attempt},
        )
    if rep.action is Action.REPORT_COMPLETED:
        _require_its_result(task, rep.result or {})
    acknowledge(task, rep.claim_token)  # a refused result changes nothing here; `commands.report` acknowledges it
    task.state = next_state(task.state, rep.action)
    task.updated_at = task.heartbeat_at = now
    if rep.action is Action.REPORT_RUNNING:
        changed = rep.scheduler is not None and rep.scheduler != task.scheduler
        task.scheduler = rep.scheduler if rep.scheduler is not None else task.scheduler
        return Outcome.APPLIED, [_event(EventType.TASK_SCHEDULED, task, scheduler=task.scheduler)] if changed else []
    task.finished_at = now
    task.scheduler = rep.scheduler if rep.scheduler is not None else task.scheduler  # the terminal evidence
    task.outcome_token, task.outcome_digest = rep.claim_token, rep.digest()
    task.result, task.error = rep.result, rep.error
    task.usage = rep.usage
    if rep.action is Action.REPORT_COMPLETED:
        return Outcome.APPLIED, [_event(EventType.TASK_COMPLETED, task, attempt=task.attempt)]
    if rep.action is Action.REPORT_FAILED:
        return Outcome.APPLIED, [_event(EventType.TASK_FAILED, task, attempt=task.attempt, error=rep.error)]
    return Outcome.APPLIED, [_event(EventType.TASK_CANCELLED, task, attempt=task.attempt, **_cancelled_by(rep))]


def acknowledge(task: Task, token: str) -> bool:
    """The owner of the current claim has shown it holds it (a heartbeat naming the task with `token`, or a
    report with it): the claim reached a live agent and is never taken back as unacknowledged. True when
    this acknowledged it now."""
    if task.state is not TaskState.RUNNING or task.claim_token != token or task.ack_deadline is None:
        return False
    task.ack_deadline = None
    return True


def _require_its_result(task: Task, result: dict[str, Any]) -> None:
    """A completed report must carry this task's result, from this attempt, on the bound snapshot."""
    found = results.problems(task, result)
    if found:
        first = found[0]
        more = f" (and {', '.join(p.field for p in found[1:])})" if len(found) > 1 else ""
        raise InvalidResult(
            f"the result is not task {task.id}'s: {first.reason}{more}",
            {"field": first.field, "problems": [{"field": p.field, "reason": p.reason} for p in found]},
        )


def _cancelled_by(rep: Report) -> dict[str, Any]:
    """Who the record names for a confirmed cancel: the site's operator for a cancel set in Prefect
    (the agent only carried it out), else the owner that reported it, as always."""
    if rep.requested_by == PREFECT:
        return {"by": "operator", "via": PREFECT, "actor": rep.actor}
    via = {"via": rep.requested_by} if rep.requested_by is not None else {}
    return {"by": "owner", **via, **({"actor": rep.actor} if rep.actor is not None else {})}


def cancel(task: Task, by: str, now: datetime) -> list[NewEvent]:
    before = task.state
    task.state = next_state(task.state, Action.CANCEL)
    task.updated_at = now
    if before is TaskState.QUEUED:
        task.finished_at = now
        return [_event(EventType.TASK_CANCELLED, task, by=by)]
    if task.cancel_requested:
        return []
    task.cancel_requested = True
    return [_event(EventType.TASK_CANCEL_REQUESTED, task, by=by, agent_id=task.agent_id)]


def requeue(task: Task, by: str, reason: str, now: datetime) -> list[NewEvent]:
    """RUNNING -> QUEUED, fencing the claim token; a task whose cancel was requested ends CANCELLED instead."""
    previous = task.agent_id
    task.state = next_state(task.state, Action.REQUEUE)
    _fence(task, now)
    events = [_event(EventType.TASK_REQUEUED, task, by=by, reason=reason, previous_agent=previous)]
    if task.cancel_requested:
        events += cancel(task, by, now)
    return events


def force_fail(task: Task, by: str, reason: str, now: datetime) -> list[NewEvent]:
    task.state = next_state(task.state, Action.FORCE_FAIL)
    _fence(task, now)
    task.finished_at = now
    task.error = {"code": ErrorCode.FORCE_FAILED.value, "message": reason, "detail": {"by": by}}
    return [_event(EventType.TASK_FAILED, task, by=by, error=task.error)]


def fail_unbindable(task: Task, violations: list[dict[str, Any]], epoch: int, now: datetime) -> list[NewEvent]:
    """At claim, the device's current epoch no longer admits the task: it fails instead of dispatching."""
    task.state = next_state(task.state, Action.FORCE_FAIL)
    task.updated_at = task.finished_at = now
    task.error = {
        "code": ErrorCode.NOT_ADMISSIBLE_AT_CLAIM.value,
        "message": f"{task.device_id} epoch {epoch} no longer admits this circuit",
        "detail": {"epoch": epoch, "violations": violations},
    }
    return [_event(EventType.TASK_FAILED, task, by="control-plane", error=task.error)]


def mark_stale(task: Task, now: datetime) -> list[NewEvent]:
    if task.stale_reported:
        return []
    task.stale_reported = True
    last = task.heartbeat_at or task.claimed_at
    return [
        _event(EventType.TASK_STALE, task, agent_id=task.agent_id, last_heartbeat=last.isoformat() if last else None)
    ]


def rejected(task: Task, rep: Report, error: IllegalTransition | Fenced | InvalidResult) -> NewEvent:
    """The evidence a refused report leaves; an invalid result names the fields it got wrong."""
    data: dict[str, Any] = {"action": str(rep.action), "code": error.code, "reason": error.message}
    if isinstance(error, InvalidResult) and isinstance(error.detail, dict):
        data |= {k: error.detail[k] for k in ("field", "problems") if k in error.detail}
    return _event(EventType.TASK_REPORT_REJECTED, task, **data)


def _fence(task: Task, now: datetime) -> None:
    task.agent_id = task.claim_token = None
    task.updated_at = now
    task.stale_reported = False
    task.ack_deadline = None


def _event(type_: EventType, task: Task, **data: Any) -> NewEvent:
    return task_event(type_, task.id, task.device_id, task.owner, state=str(task.state), **data)
