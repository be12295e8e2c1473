"""Liveness (D4): what a heartbeat does to the task it names, what the sweep does to a silent task or agent,
and how many QUEUED tasks an owner may hold. Pure decisions; the store loads and writes back."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum

from vqpu_service.domain import decisions
from vqpu_service.domain.errors import QueueFull
from vqpu_service.domain.events import NewEvent, agent_seen
from vqpu_service.domain.lifecycle import TaskState
from vqpu_service.domain.model import Task


class Beat(Enum):
    ALIVE = "alive"
    CANCEL = "cancel"  # its cancel was requested: the owner should stop it and report `cancelled`
    FENCED = "fenced"  # not the current attempt (or no such task): stop it, report nothing
    ENDED = "ended"  # this attempt's own terminal report was taken: nothing to stop, nothing more to report


def heartbeat(task: Task | None, token: str, now: datetime) -> Beat:
    if task is not None and task.state.terminal and task.outcome_token == token:
        return Beat.ENDED  # an agent back from a crash after its report went through: not a fenced attempt
    if task is None or task.state is not TaskState.RUNNING or task.claim_token != token:
        return Beat.FENCED
    task.heartbeat_at, task.stale_reported = now, False  # a recovered owner can go stale again later
    return Beat.CANCEL if task.cancel_requested else Beat.ALIVE


def silent_since(now: datetime, window_s: float) -> datetime:
    """Whoever was last heard of before this is silent: a RUNNING task goes stale, an agent is lost."""
    return now - timedelta(seconds=window_s)


def stale(task: Task, now: datetime, window_s: float, *, auto_requeue: bool, max_attempts: int) -> list[NewEvent]:
    """A RUNNING task silent past the window is flagged (TASK_STALE, once); with auto-requeue, and attempts
    left, it is requeued too (its owner's token fenced)."""
    events = decisions.mark_stale(task, now)
    if auto_requeue and task.attempt < max_attempts:
        events += decisions.requeue(task, "auto-requeue", f"no heartbeat for {window_s:g} s", now)
    return events


def agent_seen_now(agent_id: str, *, known: bool, lost: bool) -> list[NewEvent]:
    """AGENT_SEEN on an agent's first request, and on its first since it was found lost; else nothing."""
    return [] if known and not lost else [agent_seen(agent_id)]


def queue_room(owner: str, queued: int, cap: int | None) -> None:
    """Refuse (QueueFull) a submit that would give `owner` more than `cap` QUEUED tasks (None: no cap)."""
    if cap is not None and queued >= cap:
        raise QueueFull(
            f"{owner} already has {cap} tasks queued, the most allowed; retry once some have been claimed",
            {"limit": cap},
        )
