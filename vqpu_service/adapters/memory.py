"""MemoryStore: the Store port in process memory, for unit tests of the services and as the contract
suite's third adapter. Not for serving: nothing survives the process.

One lock stands for the database: every write holds it for its whole transaction (as SQLite's BEGIN
IMMEDIATE does), so claims are serialised and take disjoint tasks (D3). A transaction works on copies
and publishes them only when it ends cleanly, so a decision that raises changes nothing.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from device_registry import Snapshot
from vqpu_service.domain.claiming import Candidate
from vqpu_service.domain.errors import NotFound
from vqpu_service.domain.events import (
    DEVICE_EVENTS,
    Event,
    NewEvent,
)
from vqpu_service.domain.lifecycle import TaskState
from vqpu_service.domain.model import Agent, NewTask, SlotCapacity, Task
from vqpu_service.domain.usage import Grouping, UsageTotals
from vqpu_service.ports import (
    AgentRepository,
    ClaimReads,
    ClaimUnit,
    DeviceEpoch,
    DeviceRepository,
    EventFilter,
    QueuedRef,
    Store,
    TaskRepository,
    UnitOfWork,
)


class MemoryStore(Store):
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._tasks: dict[str, Task] = {}  # insertion order is seq order
        self._devices: dict[str, int] = {}  # device -> current epoch
        self._epochs: dict[tuple[str, int], DeviceEpoch] = {}
        self._events: list[Event] = []
        self._agents: dict[str, Agent] = {}

    def close(self) -> None:
        pass

    # --- a transaction -----------------------------------------------------------------

    def _publish(self, tasks: Sequence[Task], events: Sequence[NewEvent], now: datetime) -> None:
        for task in tasks:
            self._tasks[task.id] = copy.deepcopy(task)
        for e in events:
            self._events.append(
                Event(len(self._events) + 1, now, e.type, e.subject, dict(e.data), e.task_id, e.device_id, e.owner)
            )

    def _task(self, task_id: str) -> Task:
        """A private copy of the stored task, for a transaction to change."""
        task = self._tasks.get(task_id)
        if task is None:
            raise NotFound(f"unknown task {task_id!r}", {"task_id": task_id})
        return copy.deepcopy(task)

    # --- tasks -------------------------------------------------------------------------

    def get_task(self, task_id: str) -> Task:
        with self._lock:
            return self._task(task_id)

    def list_tasks(
        self, *, owner: str | None, state: TaskState | None, device_id: str | None, limit: int, after_seq: int | None
    ) -> list[Task]:
        with self._lock:
            found = [
                copy.deepcopy(t)
                for t in self._tasks.values()
                if (owner is None or t.owner == owner)
                and (state is None or t.state is state)
                and (device_id is None or t.device_id == device_id)
                and (after_seq is None or t.seq > after_seq)
            ]
        return found[:limit]

    def queued_unpinned(
        self, device_id: str, *, owner: str | None, after_seq: int | None, limit: int
    ) -> list[QueuedRef]:
        with self._lock:
            refs = [
                QueuedRef(t.seq, t.id, t.owner, t.admitted_epoch, t.admitted_sha256, _source_bytes(t))
                for t in self._tasks.values()
                if t.device_id == device_id
                and t.state is TaskState.QUEUED
                and t.pinned_epoch is None
                and (owner is None or t.owner == owner)
                and (after_seq is None or t.seq > after_seq)
            ]
        return refs[:limit]

    @contextmanager
    def claiming(self, devices: Sequence[str] | None, now: datetime) -> Iterator[ClaimUnit]:
        with self._lock:  # held to the end, as a claim's transaction holds the claim lock
            unit = _Unit(self, devices)
            yield unit
            self._agents |= unit.agents.saved
            self._publish(list(unit.saved.values()), unit.events, now)

    @contextmanager
    def unit(self, now: datetime) -> Iterator[UnitOfWork]:
        with self._lock:  # held to the end: a unit is a write transaction
            uow = _MemoryUnit(self)
            yield uow
            self._agents |= uow.agents.saved
            for record in uow.devices.added:
                self._epochs[(record.device_id, record.epoch)] = record
                self._devices[record.device_id] = record.epoch
            self._publish(list(uow.tasks.saved.values()), uow.events, now)

    def any_silent(self, since: datetime, now: datetime) -> bool:
        with self._lock:
            return any(_silent(t, since) or _unacknowledged(t, now) for t in self._tasks.values()) or any(
                not a.lost and a.last_seen < since for a in self._agents.values()
            )

    def usage(self, since: datetime, until: datetime, by: Grouping) -> list[UsageTotals]:
        groups: dict[str | None, list[Task]] = {}
        with self._lock:
            for t in self._tasks.values():
                if t.state.terminal and t.finished_at is not None and since <= t.finished_at < until:
                    key = {Grouping.OWNER: t.owner, Grouping.DEVICE: t.device_id, Grouping.AGENT: t.agent_id}[by]
                    groups.setdefault(key, []).append(t)
        found = [_totals(key, tasks) for key, tasks in groups.items()]
        return sorted(found, key=lambda u: (u.key is None, u.key or ""))

    # --- devices -------------------------------------------------------------------------

    def _store_epoch(self, snapshot: Snapshot, now: datetime) -> DeviceEpoch:
        record = DeviceEpoch(
            snapshot.device_id, snapshot.epoch, snapshot.sha256(), snapshot.canonical_json().decode(), now
        )
        self._epochs[(record.device_id, record.epoch)] = record
        self._devices[record.device_id] = record.epoch
        return record

    def _current(self, device_id: str) -> int:
        if device_id not in self._devices:
            raise NotFound(f"unknown device {device_id!r}", {"device_id": device_id})
        return self._devices[device_id]

    def current_epoch(self, device_id: str) -> DeviceEpoch:
        with self._lock:
            return self.epoch(device_id, self._current(device_id))

    def epoch(self, device_id: str, epoch: int) -> DeviceEpoch:
        with self._lock:
            self._current(device_id)
            record = self._epochs.get((device_id, epoch))
        if record is None:
            raise NotFound(f"device {device_id} has no epoch {epoch}", {"device_id": device_id, "epoch": epoch})
        return record

    def epochs(self, device_id: str) -> list[tuple[int, str, datetime]]:
        with self._lock:
            self._current(device_id)
            found = sorted((r for (d, _), r in self._epochs.items() if d == device_id), key=lambda r: r.epoch)
        return [(r.epoch, r.sha256, r.created_at) for r in found]

    def devices(self) -> list[DeviceEpoch]:
        with self._lock:
            return [self._epochs[(d, n)] for d, n in sorted(self._devices.items())]

    # --- events and agents -----------------------------------------------------------------

    def events_after(self, last_id: int, flt: EventFilter, limit: int) -> list[Event]:
        with self._lock:
            found = [e for e in self._events[last_id:] if _passes(e, flt)]
        return found[:limit]

    def last_event_id(self) -> int:
        with self._lock:
            return len(self._events)

    def agents(self) -> list[Agent]:
        with self._lock:
            return [self._agents[a] for a in sorted(self._agents)]

    def slot_capacities(self, device_id: str) -> list[SlotCapacity]:
        return [
            a.capacity
            for a in self.agents()
            if not a.lost and a.capacity is not None and (a.devices is None or device_id in a.devices)
        ]


class _Reads(ClaimReads):
    def __init__(self, store: MemoryStore, devices: Sequence[str] | None) -> None:
        self._store = store
        self._devices = devices

    def running(self) -> dict[str, int]:
        held: dict[str, int] = {}
        with self._store._lock:
            for t in self._store._tasks.values():
                if t.state is TaskState.RUNNING:
                    held[t.owner] = held.get(t.owner, 0) + 1
        return held

    def candidates(self, per_owner: int, skip_owners: Sequence[str]) -> list[Candidate]:
        taken: dict[str, int] = {}
        found = []
        with self._store._lock:
            for t in self._store._tasks.values():
                if t.state is not TaskState.QUEUED or t.owner in skip_owners:
                    continue
                if self._devices is not None and t.device_id not in self._devices:
                    continue
                if taken.get(t.owner, 0) < per_owner:
                    taken[t.owner] = taken.get(t.owner, 0) + 1
                    found.append(Candidate(t.seq, t.id, t.owner))
        return found

    def current_epoch(self, device_id: str) -> int:
        with self._store._lock:
            return self._store._current(device_id)

    def epoch(self, device_id: str, epoch: int) -> DeviceEpoch:
        return self._store.epoch(device_id, epoch)


class _Unit(_Reads, ClaimUnit):
    def __init__(self, store: MemoryStore, devices: Sequence[str] | None) -> None:
        super().__init__(store, devices)
        self.saved: dict[str, Task] = {}
        self.agents: _MemoryAgents = _MemoryAgents(store)
        self.events: list[NewEvent] = []

    def record(self, events: Sequence[NewEvent]) -> None:
        self.events += events

    def take(self, order: Sequence[Candidate], max_tasks: int) -> list[Task]:
        stored = self._store._tasks
        queued = [c.task_id for c in order if c.task_id in stored and stored[c.task_id].state is TaskState.QUEUED]
        return [self._store._task(i) for i in queued[:max_tasks]]

    def save(self, task: Task, events: Sequence[NewEvent]) -> None:
        self.saved[task.id] = task
        self.events += events


class _MemoryTasks(TaskRepository):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.saved: dict[str, Task] = {}

    def keyed(self, owner: str, idempotency_key: str) -> Task | None:
        for task in self._store._tasks.values():
            if task.owner == owner and task.idempotency_key == idempotency_key:
                return copy.deepcopy(task)
        return None

    def queued(self, owner: str) -> int:
        return sum(t.owner == owner and t.state is TaskState.QUEUED for t in self._store._tasks.values())

    def add(self, task_id: str, new: NewTask, now: datetime) -> Task:
        seq = len(self._store._tasks) + sum(i not in self._store._tasks for i in self.saved) + 1
        fields = copy.deepcopy(vars(new))
        task = Task(id=task_id, seq=seq, state=TaskState.QUEUED, attempt=0, created_at=now, updated_at=now, **fields)
        self.saved[task_id] = task
        return copy.deepcopy(task)

    def get(self, task_id: str, *, lock: bool = False) -> Task:
        return self._store._task(task_id)  # the unit holds the store's lock: every get is locked

    def save(self, task: Task) -> None:
        self.saved[task.id] = task

    def named(self, task_ids: Sequence[str]) -> list[Task]:
        return [self._store._task(i) for i in task_ids if i in self._store._tasks]

    def silent(self, since: datetime) -> list[Task]:
        return [copy.deepcopy(t) for t in self._store._tasks.values() if _silent(t, since)]

    def unacknowledged(self, now: datetime) -> list[Task]:
        return [copy.deepcopy(t) for t in self._store._tasks.values() if _unacknowledged(t, now)]


class _MemoryAgents(AgentRepository):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.saved: dict[str, Agent] = {}

    def get(self, agent_id: str) -> Agent | None:
        return self.saved.get(agent_id) or self._store._agents.get(agent_id)

    def arrive(self, agent_id: str, now: datetime) -> tuple[Agent, bool]:
        """Units take turns on the store's lock: the agent as the last one left it, or made now."""
        agent = self.get(agent_id)
        if agent is not None:
            return agent, False
        self.saved[agent_id] = made = Agent(agent_id, now, now, False)
        return made, True

    def save(self, agent: Agent) -> None:
        self.saved[agent.agent_id] = agent

    def silent(self, since: datetime) -> list[Agent]:
        return [a for a in self._store._agents.values() if not a.lost and a.last_seen < since]


class _MemoryDevices(DeviceRepository):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.added: list[DeviceEpoch] = []

    def current(self, device_id: str) -> int | None:
        staged = [r.epoch for r in self.added if r.device_id == device_id]
        return staged[-1] if staged else self._store._devices.get(device_id)

    def last(self, device_id: str) -> int | None:
        stored = [n for d, n in self._store._epochs if d == device_id]
        stored += [r.epoch for r in self.added if r.device_id == device_id]
        return max(stored, default=None)

    def add(self, record: DeviceEpoch, *, new_device: bool) -> None:
        self.added.append(record)


class _MemoryUnit(UnitOfWork):
    def __init__(self, store: MemoryStore) -> None:
        self.tasks: _MemoryTasks = _MemoryTasks(store)
        self.devices: _MemoryDevices = _MemoryDevices(store)
        self.agents: _MemoryAgents = _MemoryAgents(store)
        self.events: list[NewEvent] = []

    def record(self, events: Sequence[NewEvent]) -> None:
        self.events += events


def _silent(task: Task, since: datetime) -> bool:
    last = task.heartbeat_at or task.claimed_at
    return task.state is TaskState.RUNNING and last is not None and last < since and not task.stale_reported


def _unacknowledged(task: Task, now: datetime) -> bool:
    return task.state is TaskState.RUNNING and task.ack_deadline is not None and task.ack_deadline < now


def _passes(e: Event, flt: EventFilter) -> bool:
    return (
        (flt.task_id is None or e.task_id == flt.task_id)
        and (flt.device_id is None or e.device_id == flt.device_id)
        and (flt.types is None or e.type in flt.types)
        and (flt.owner is None or e.owner == flt.owner or e.type in DEVICE_EVENTS)
    )


def _totals(key: str | None, tasks: list[Task]) -> UsageTotals:
    used = [t.usage for t in tasks if t.usage is not None]
    peaks = [u["peak_rss_bytes"] for u in used if u.get("peak_rss_bytes") is not None]
    return UsageTotals(
        key=key,
        tasks=len(tasks),
        completed=sum(t.state is TaskState.COMPLETED for t in tasks),
        failed=sum(t.state is TaskState.FAILED for t in tasks),
        cancelled=sum(t.state is TaskState.CANCELLED for t in tasks),
        wall_s=float(sum(u.get("wall_s") or 0.0 for u in used)),
        cpu_s=float(sum(u.get("cpu_s") or 0.0 for u in used)),
        gpu_s=float(sum(u.get("gpu_s") or 0.0 for u in used)),
        peak_rss_bytes=max(peaks, default=None),
        no_usage=len(tasks) - len(used),
        agent_measured=sum(u.get("measured_by") == "agent" for u in used),
    )


def _source_bytes(task: Task) -> int:
    """What a re-check of the task reads: its circuit, and a PUB task's PUBs as JSON (as the SQL store counts)."""
    pubs = 0 if task.pubs is None else len(json.dumps(task.pubs).encode())
    return len(task.circuit.encode()) + pubs
