"""Liveness decisions (D4) and the QUEUED cap, without storage: what a heartbeat does to its task, when a
silent task is flagged or requeued, when an agent is announced, when a submit is refused."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from vqpu_service.domain import liveness
from vqpu_service.domain.errors import QueueFull
from vqpu_service.domain.events import EventType
from vqpu_service.domain.lifecycle import TaskState
from vqpu_service.domain.liveness import Beat
from vqpu_service.domain.model import Task

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def running(attempt: int = 1, **changes: object) -> Task:
    task = Task(
        id="t-1", seq=1, owner="alice", device_id="line-16", circuit="", dialect="qasm3", shots=1, seed=None,
        options={}, tags=[], pinned_epoch=None, admitted_epoch=1, admitted_sha256="a" * 64,
        state=TaskState.RUNNING, attempt=attempt, created_at=NOW, updated_at=NOW, agent_id="agent-1",
        claim_token="tok", claimed_at=NOW - timedelta(seconds=60),
    )  # fmt: skip
    return replace(task, **changes)  # type: ignore[arg-type]


def test_a_heartbeat_with_the_current_token_keeps_the_task_alive_and_clears_its_stale_flag() -> None:
    task = running(stale_reported=True)
    assert liveness.heartbeat(task, "tok", NOW) is Beat.ALIVE
    assert (task.heartbeat_at, task.stale_reported) == (NOW, False)


def test_a_heartbeat_tells_the_owner_of_a_requested_cancel_and_fences_any_other_token() -> None:
    assert liveness.heartbeat(running(cancel_requested=True), "tok", NOW) is Beat.CANCEL
    assert liveness.heartbeat(running(), "old-token", NOW) is Beat.FENCED
    assert liveness.heartbeat(running(state=TaskState.COMPLETED), "tok", NOW) is Beat.FENCED
    assert liveness.heartbeat(None, "tok", NOW) is Beat.FENCED


def test_a_silent_task_is_flagged_once_and_requeued_only_with_auto_requeue_and_attempts_left() -> None:
    task = running(attempt=1)
    events = liveness.stale(task, NOW, 30, auto_requeue=False, max_attempts=3)
    assert [e.type for e in events] == [EventType.TASK_STALE] and task.state is TaskState.RUNNING
    assert liveness.stale(task, NOW, 30, auto_requeue=False, max_attempts=3) == []
    again = running(attempt=1)
    events = liveness.stale(again, NOW, 30, auto_requeue=True, max_attempts=3)
    assert [e.type for e in events] == [EventType.TASK_STALE, EventType.TASK_REQUEUED]
    assert again.state is TaskState.QUEUED and again.claim_token is None
    spent = running(attempt=3)
    liveness.stale(spent, NOW, 30, auto_requeue=True, max_attempts=3)
    assert spent.state is TaskState.RUNNING  # its attempts are spent: it stays for an admin to decide


def test_an_agent_is_announced_when_new_and_when_back_from_lost_only() -> None:
    assert [e.type for e in liveness.agent_seen_now("a", known=False, lost=False)] == [EventType.AGENT_SEEN]
    assert [e.type for e in liveness.agent_seen_now("a", known=True, lost=True)] == [EventType.AGENT_SEEN]
    assert liveness.agent_seen_now("a", known=True, lost=False) == []


def test_a_submit_past_the_queued_cap_is_queue_full_with_the_limit() -> None:
    liveness.queue_room("alice", 2, 3)
    liveness.queue_room("alice", 10**6, None)
    with pytest.raises(QueueFull) as refused:
        liveness.queue_room("alice", 3, 3)
    assert refused.value.detail == {"limit": 3}
