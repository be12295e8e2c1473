"""Liveness (D4): what a heartbeat does to the task it names, what the sweep does to a silent task or agent
or to a claim its agent never acknowledged, and how many QUEUED tasks an owner may hold. Pure decisions;
the store loads and writes back."""

from __future__ import annotations

from dataclasses import dataclass
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
    decisions.acknowledge(task, token)
    task.heartbeat_at, task.stale_reported = now, False  # a recovered owner can go stale again later
    return Beat.CANCEL if task.cancel_requested else Beat.ALIVE


def silent_since(now: datetime, window_s: float) -> datetime:
    """Whoever was last heard of before this is silent: a RUNNING task goes stale, an agent is lost."""
    return now - timedelta(seconds=window_s)


def stale(task: Task, now: datetime, window_s: float, *, auto_requeue: bool, max_attempts: int) -> list[NewEvent]:
    """A RUNNING task silent past the window is flagged (TASK_STALE, once); with auto-requeue, and attempts
    left (claims taken back unacknowledged are not attempts that ran), it is requeued too (its owner's token
    fenced)."""
    events = decisions.mark_stale(task, now)
    if auto_requeue and task.attempts_run < max_attempts:
        events += decisions.requeue(task, "auto-requeue", f"no heartbeat for {window_s:g} s", now)
    return events


ACK_HEARTBEATS = 3
"""A claim may go unacknowledged for at least this many of its agent's declared heartbeat intervals."""
UNACKNOWLEDGED = "claim never acknowledged"
"""The reason of the TASK_REQUEUED a claim taken back unacknowledged writes."""


@dataclass(frozen=True)
class AckWindow:
    """How long a claim may go unacknowledged by its agent before the sweep takes it back.

    A long-poll CLAIM can be answered just as its agent dies (or its connection does): the task would
    stay RUNNING under an owner that never had it until the liveness window passed and someone requeued
    it. A live agent acknowledges a claim with its next heartbeat (it names every task it holds), or any
    report; one that does not within the window never got it."""

    least_s: float
    """The shortest window, whatever the agent declares (`claim_ack_window_s`)."""
    undeclared_s: float
    """For an agent that does not declare how often it heartbeats (an older agent): every agent must
    heartbeat within the liveness window, so that is the window it is given."""

    def deadline(self, claimed_at: datetime, heartbeat_s: float | None) -> datetime:
        """When a claim made at `claimed_at` for an agent that heartbeats every `heartbeat_s` (None: not
        said) is taken back unless acknowledged."""
        given = self.undeclared_s if heartbeat_s is None else ACK_HEARTBEATS * heartbeat_s
        return claimed_at + timedelta(seconds=max(self.least_s, given))


def unacknowledged(task: Task, now: datetime) -> list[NewEvent]:
    """A claim not acknowledged by its deadline goes back to QUEUED, its token fenced (a late report from
    that attempt is refused), TASK_REQUEUED saying why. It never reached a live agent, so it does not
    count as an attempt that ran (`Task.attempts_run`). An acknowledged task is never taken back."""
    if task.state is not TaskState.RUNNING or task.ack_deadline is None or task.ack_deadline > now:
        return []
    task.unacknowledged += 1
    return decisions.requeue(task, "control-plane", UNACKNOWLEDGED, now)


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
