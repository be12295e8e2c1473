"""Heartbeats and the liveness sweep (D4), each one unit of work: `domain.liveness` decides what a
heartbeat does to the tasks it names and what silence does to a task or an agent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from vqpu_service.domain import liveness
from vqpu_service.domain.events import NewEvent, agent_lost
from vqpu_service.domain.liveness import Beat
from vqpu_service.domain.model import HeartbeatReply, SlotCapacity
from vqpu_service.ports import AgentRepository, Store


def heartbeat(store: Store, agent_id: str, tasks: Sequence[tuple[str, str]], now: datetime) -> HeartbeatReply:
    tokens = dict(tasks)
    cancel, fenced, ended = [], [], {}
    with store.unit(now) as uow:
        uow.record(seen(uow.agents, agent_id, now))
        named = {t.id: t for t in uow.tasks.named(list(tokens))}
        for task_id, token in tokens.items():
            task = named.get(task_id)
            beat = liveness.heartbeat(task, token, now)
            if task is not None and beat is Beat.ENDED:
                ended[task_id] = str(task.state)
                continue
            if task is None or beat is Beat.FENCED:
                fenced.append(task_id)
                continue
            uow.tasks.save(task)
            if beat is Beat.CANCEL:
                cancel.append(task_id)
    return HeartbeatReply(cancel=cancel, fenced=fenced, ended=ended)


def seen(agents: AgentRepository, agent_id: str, now: datetime) -> list[NewEvent]:
    """The agent heard from now (made on its first request); AGENT_SEEN when it was new or lost. Its first
    heartbeat and first claim may arrive together: `arrive` makes one agent of them and sees it once."""
    agent, made = agents.arrive(agent_id, now)
    events = liveness.agent_seen_now(agent_id, known=not made, lost=agent.lost)
    agents.save(replace(agent, last_seen=now, lost=False))
    return events


def declared(
    agents: AgentRepository, agent_id: str, capacity: SlotCapacity | None, devices: Sequence[str] | None
) -> None:
    """Record what the agent's latest claim said one of its slots holds and which devices it serves (None: any)."""
    agent = agents.get(agent_id)
    assert agent is not None, "seen first"
    claimed_for = None if devices is None else tuple(sorted(set(devices)))
    agents.save(replace(agent, capacity=capacity, devices=claimed_for))


def sweep(store: Store, window_s: float, now: datetime, *, auto_requeue: bool, max_attempts: int) -> list[str]:
    """Take back claims their agents never acknowledged (TASK_REQUEUED), flag newly stale tasks (TASK_STALE),
    mark silent agents lost (AGENT_LOST); with auto_requeue, requeue stale tasks below max_attempts. Returns
    the ids of tasks newly found stale."""
    since = liveness.silent_since(now, window_s)
    if not store.any_silent(since, now):  # most sweeps find nothing: no write lock for them
        return []
    stale: list[str] = []
    with store.unit(now) as uow:
        taken_back = set()
        for task in uow.tasks.unacknowledged(now):
            events = liveness.unacknowledged(task, now)
            if events:
                taken_back.add(task.id)
                uow.tasks.save(task)
                uow.record(events)
        for task in uow.tasks.silent(since):
            if task.id in taken_back:  # read again before this unit wrote it back: it is QUEUED now
                continue
            stale += [] if task.stale_reported else [task.id]
            uow.record(liveness.stale(task, now, window_s, auto_requeue=auto_requeue, max_attempts=max_attempts))
            uow.tasks.save(task)
        for agent in uow.agents.silent(since):
            uow.agents.save(replace(agent, lost=True))
            uow.record([agent_lost(agent.agent_id, agent.last_seen)])
    return stale
