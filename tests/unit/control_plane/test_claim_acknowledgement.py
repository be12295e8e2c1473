"""No claim into the void (issue 20, must-have 8), without storage: a claim its agent never acknowledges
goes back to QUEUED after its window, an acknowledged one never does, and a claimant that hung up while
its long poll waited is handed nothing."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

from tests.unit.control_plane.test_liveness import NOW, running
from tests.unit.control_plane.test_services import AGENT, ROOT, Plane
from vqpu_service.domain import decisions, liveness
from vqpu_service.domain.decisions import Report
from vqpu_service.domain.events import EventType
from vqpu_service.domain.lifecycle import Action, TaskState
from vqpu_service.domain.liveness import AckWindow, Beat
from vqpu_service.services.agents import AgentService, WorkSignal
from vqpu_service.services.claims import Claimant

WINDOW = AckWindow(least_s=10, undeclared_s=60)
DUE = NOW - timedelta(seconds=1)
"""An acknowledgement deadline that has passed."""


def test_the_window_is_the_servers_at_least_three_of_the_agents_beats_and_the_liveness_window_if_undeclared() -> None:
    assert WINDOW.deadline(NOW, 1.0) == NOW + timedelta(seconds=10)
    assert WINDOW.deadline(NOW, 300.0) == NOW + timedelta(seconds=900)  # a slow heartbeat still acknowledges in time
    assert WINDOW.deadline(NOW, None) == NOW + timedelta(seconds=60)  # an older agent: it must beat within this


def test_a_claim_past_its_deadline_goes_back_to_queued_fenced_and_says_why() -> None:
    task = running(ack_deadline=DUE)
    [event] = liveness.unacknowledged(task, NOW)
    assert (task.state, task.claim_token, task.agent_id, task.ack_deadline) == (TaskState.QUEUED, None, None, None)
    assert event.type is EventType.TASK_REQUEUED
    assert (event.data["by"], event.data["reason"], event.data["previous_agent"]) == (
        "control-plane",
        "claim never acknowledged",
        "agent-1",
    )
    assert (task.attempt, task.unacknowledged, task.attempts_run) == (1, 1, 0)  # it never ran


def test_a_claim_inside_its_window_or_acknowledged_is_left_alone() -> None:
    for task in (running(ack_deadline=NOW + timedelta(seconds=1)), running(ack_deadline=None)):
        before = replace(task)
        assert liveness.unacknowledged(task, NOW) == [] and task == before


def test_a_heartbeat_or_report_with_the_current_token_acknowledges_and_a_fenced_one_does_not() -> None:
    beat = running(ack_deadline=DUE)
    assert liveness.heartbeat(beat, "tok", NOW) is Beat.ALIVE and beat.ack_deadline is None
    stranger = running(ack_deadline=DUE)
    assert liveness.heartbeat(stranger, "old-token", NOW) is Beat.FENCED and stranger.ack_deadline == DUE
    reported = running(ack_deadline=DUE)
    decisions.report(reported, Report(Action.REPORT_RUNNING, "tok"), NOW)
    assert reported.ack_deadline is None
    assert liveness.unacknowledged(beat, NOW) == liveness.unacknowledged(reported, NOW) == []


def test_a_cancel_requested_before_the_claim_reached_anyone_ends_the_task_cancelled() -> None:
    task = running(ack_deadline=DUE, cancel_requested=True)
    events = liveness.unacknowledged(task, NOW)
    assert [e.type for e in events] == [EventType.TASK_REQUEUED, EventType.TASK_CANCELLED]
    assert task.state is TaskState.CANCELLED


def test_auto_requeue_counts_only_attempts_that_reached_an_agent() -> None:
    twice_lost = running(attempt=3, unacknowledged=2)  # one real attempt of 3 claims
    events = liveness.stale(twice_lost, NOW, 30, auto_requeue=True, max_attempts=3)
    assert EventType.TASK_REQUEUED in [e.type for e in events] and twice_lost.state is TaskState.QUEUED


def test_a_claimant_that_hung_up_while_it_waited_is_handed_nothing_when_work_comes() -> None:
    plane = Plane()
    work = WorkSignal()
    agents = AgentService(plane.store, plane.claims, work, max_wait_s=30, recheck_s=30)
    hung_up: list[bool] = []

    async def scene() -> list[object]:
        work.bind(asyncio.get_running_loop())
        waiting = asyncio.create_task(agents.claim(AGENT, Claimant("a1", gone=lambda: bool(hung_up)), 1, None, 30))
        await asyncio.sleep(0.05)  # it found nothing and waits for work
        hung_up.append(True)  # the agent died; then a task arrives
        plane.submit()
        work.notify()
        return list(await asyncio.wait_for(waiting, 5))

    assert asyncio.run(scene()) == []
    [task] = plane.tasks.list_tasks(ROOT, None, None, 10, None)
    assert (task.state, task.attempt) == (TaskState.QUEUED, 0)
    [claimed] = asyncio.run(agents.claim(AGENT, Claimant("a2", heartbeat_s=1.0), 1, None, 0))
    assert claimed.task.id == task.id and claimed.attempt == 1  # the next live agent gets it, first attempt
