"""The lifecycle table and the decisions over it: every legal move, and terminal states absorb."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vqpu_service.domain import decisions
from vqpu_service.domain.decisions import Outcome, Report
from vqpu_service.domain.errors import Fenced, IllegalTransition
from vqpu_service.domain.events import EventType
from vqpu_service.domain.lifecycle import TERMINAL, TRANSITIONS, Action, TaskState, next_state
from vqpu_service.domain.model import Task

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ACK_BY = NOW + timedelta(seconds=10)
"""When a claim made at NOW is taken back unless its agent acknowledges it."""


def queued() -> Task:
    return Task(
        id="t-1",
        seq=1,
        owner="alice",
        device_id="ibm-fez",
        circuit="",
        dialect="qasm2",
        shots=10,
        seed=None,
        options={},
        tags=[],
        pinned_epoch=None,
        admitted_epoch=0,
        admitted_sha256="a" * 64,
        state=TaskState.QUEUED,
        attempt=0,
        created_at=NOW,
        updated_at=NOW,
    )


def result_of(task: Task, counts: dict[str, int]) -> dict[str, Any]:
    """What matters of a result to the control plane: its shots, counts and provenance, all the task's."""
    provenance = {
        "task_id": task.id,
        "attempt": task.attempt,
        "device_id": task.device_id,
        "epoch": task.bound_epoch,
        "snapshot_sha256": task.bound_sha256,
    }
    return {"shots": task.shots, "counts": counts, "provenance": provenance}


def running(token: str = "tok-1") -> Task:
    task = queued()
    decisions.claim(task, "agent-1", token, 3, "b" * 64, NOW, ACK_BY)
    return task


def test_the_table_has_exactly_the_moves_of_design_section_4() -> None:
    q, r = TaskState.QUEUED, TaskState.RUNNING
    assert set(TRANSITIONS) == {
        (q, Action.CLAIM),
        (r, Action.REPORT_RUNNING),
        (r, Action.REPORT_COMPLETED),
        (r, Action.REPORT_FAILED),
        (q, Action.CANCEL),
        (r, Action.CANCEL),
        (r, Action.REPORT_CANCELLED),
        (r, Action.REQUEUE),
        (q, Action.FORCE_FAIL),
        (r, Action.FORCE_FAIL),
    }


@pytest.mark.parametrize("state", sorted(TERMINAL))
@pytest.mark.parametrize("action", list(Action))
def test_terminal_states_absorb_every_action(state: TaskState, action: Action) -> None:
    with pytest.raises(IllegalTransition) as info:
        next_state(state, action)
    assert info.value.status == 409 and "final" in info.value.message


def test_a_claim_sets_owner_attempt_token_and_binding() -> None:
    task = queued()
    [event] = decisions.claim(task, "agent-1", "tok", 3, "b" * 64, NOW, ACK_BY)
    assert (task.state, task.attempt, task.agent_id, task.claim_token) == (TaskState.RUNNING, 1, "agent-1", "tok")
    assert (task.bound_epoch, task.bound_sha256) == (3, "b" * 64)
    assert event.type is EventType.TASK_CLAIMED and event.owner == "alice"


def test_a_report_with_another_token_is_fenced() -> None:
    with pytest.raises(Fenced):
        decisions.report(running("tok-1"), Report(Action.REPORT_COMPLETED, "tok-0", result={"counts": {}}), NOW)


def test_the_same_terminal_report_again_is_a_repeat_and_a_different_one_is_illegal() -> None:
    task = running()
    rep = Report(Action.REPORT_COMPLETED, "tok-1", result=result_of(task, {"00": 10}))
    assert decisions.report(task, rep, NOW)[0] is Outcome.APPLIED
    assert decisions.report(task, rep, NOW) == (Outcome.REPEATED, [])
    with pytest.raises(IllegalTransition):
        decisions.report(task, Report(Action.REPORT_COMPLETED, "tok-1", result=result_of(task, {"11": 10})), NOW)
    with pytest.raises(IllegalTransition):
        decisions.report(task, Report(Action.REPORT_FAILED, "tok-1", error={"code": "X"}), NOW)


def test_requeue_fences_the_token_so_the_old_owner_cannot_complete() -> None:
    task = running("tok-1")
    decisions.requeue(task, "admin", "node died", NOW)
    assert (task.state, task.claim_token, task.agent_id) == (TaskState.QUEUED, None, None)
    with pytest.raises(Fenced):
        decisions.report(task, Report(Action.REPORT_COMPLETED, "tok-1", result={}), NOW)
    decisions.claim(task, "agent-2", "tok-2", 3, "b" * 64, NOW, ACK_BY)
    assert task.attempt == 2


def test_cancel_of_a_running_task_is_a_request_the_owner_finishes() -> None:
    task = running()
    [event] = decisions.cancel(task, "alice", NOW)
    assert event.type is EventType.TASK_CANCEL_REQUESTED and task.state is TaskState.RUNNING and task.cancel_requested
    assert decisions.cancel(task, "alice", NOW) == []  # asking twice changes nothing
    outcome, [done] = decisions.report(task, Report(Action.REPORT_CANCELLED, "tok-1"), NOW)
    assert outcome is Outcome.APPLIED and task.state is TaskState.CANCELLED and done.type is EventType.TASK_CANCELLED


def test_requeue_of_a_task_whose_cancel_was_requested_ends_cancelled() -> None:
    task = running()
    decisions.cancel(task, "alice", NOW)
    events = decisions.requeue(task, "admin", "owner lost", NOW)
    assert [e.type for e in events] == [EventType.TASK_REQUEUED, EventType.TASK_CANCELLED]
    assert task.state is TaskState.CANCELLED


def test_force_fail_after_completion_is_illegal_and_force_failed_tasks_reject_late_reports() -> None:
    task = running()
    decisions.force_fail(task, "admin", "stuck", NOW)
    assert task.state is TaskState.FAILED and task.error and task.error["code"] == "FORCE_FAILED"
    with pytest.raises(IllegalTransition):
        decisions.report(task, Report(Action.REPORT_COMPLETED, "tok-1", result={}), NOW)
    with pytest.raises(IllegalTransition):
        decisions.force_fail(task, "admin", "again", NOW)


def test_stale_is_a_flag_derived_from_the_last_heartbeat() -> None:
    task = running()
    assert not task.stale(NOW + timedelta(seconds=59), 60)
    assert task.stale(NOW + timedelta(seconds=61), 60)
    assert task.state is TaskState.RUNNING
    assert [e.type for e in decisions.mark_stale(task, NOW)] == [EventType.TASK_STALE]
    assert decisions.mark_stale(task, NOW) == []
