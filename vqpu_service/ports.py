"""The ports the application layer needs: storage of tasks, devices, agents and events.

One abstract class; the SQL adapter implements it for SQLite and PostgreSQL and the contract suite
runs over both. Methods are synchronous (SQLAlchemy sessions); the async API calls them in worker
threads. Every mutating method is one transaction that writes its events with the change.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

from device_registry import Snapshot
from vqpu_service.domain.claiming import Candidate
from vqpu_service.domain.events import Event, EventType, NewEvent
from vqpu_service.domain.lifecycle import TaskState
from vqpu_service.domain.model import Agent, NewTask, SlotCapacity, Task
from vqpu_service.domain.usage import Grouping, UsageTotals


@dataclass(frozen=True)
class DeviceEpoch:
    device_id: str
    epoch: int
    sha256: str
    snapshot_json: str
    created_at: datetime

    def snapshot(self) -> Snapshot:
        from device_registry import parse_snapshot

        return parse_snapshot(self.snapshot_json)


@dataclass(frozen=True)
class QueuedRef:
    """A QUEUED task as an inspection pages through the queue: what to decide whether to re-check it
    and what that would cost, without its circuit."""

    seq: int
    task_id: str
    owner: str
    admitted_epoch: int
    admitted_sha256: str
    circuit_bytes: int


@dataclass(frozen=True)
class EventFilter:
    task_id: str | None = None
    device_id: str | None = None
    types: frozenset[EventType] | None = None
    owner: str | None = None
    """Only events this tenant may see (its own tasks, and device/agent-free events); None: all."""


class ClaimReads(abc.ABC):
    """What a claim decides on, read in one transaction: the queue (on the devices it claims for) and the epochs."""

    @abc.abstractmethod
    def running(self) -> dict[str, int]:
        """RUNNING tasks per owner, on every device."""

    @abc.abstractmethod
    def candidates(self, per_owner: int, skip_owners: Sequence[str]) -> list[Candidate]:
        """Each owner's `per_owner` oldest QUEUED tasks on the claimed devices, owners in `skip_owners` left out."""

    @abc.abstractmethod
    def current_epoch(self, device_id: str) -> int:
        """The device's current epoch number as committed now (never a cached read)."""

    @abc.abstractmethod
    def epoch(self, device_id: str, epoch: int) -> DeviceEpoch: ...


class ClaimUnit(ClaimReads):
    """One claim's transaction: it holds the claim lock, so no other claim decides on the same counts (D3),
    and commits every saved change and recorded event together."""

    agents: AgentRepository

    @abc.abstractmethod
    def record(self, events: Sequence[NewEvent]) -> None: ...

    @abc.abstractmethod
    def take(self, order: Sequence[Candidate], max_tasks: int) -> list[Task]:
        """Lock up to `max_tasks` of the ordered candidates that are still QUEUED and free, in that order."""

    @abc.abstractmethod
    def save(self, task: Task, events: Sequence[NewEvent]) -> None:
        """Write back a taken task as the domain changed it, with its events."""


class KeyTaken(Exception):
    """A concurrent unit stored the same unique key first (a task's owner and Idempotency-Key, a device's
    id): this unit is void."""


class TaskRepository(abc.ABC):
    """The tasks of one unit of work."""

    @abc.abstractmethod
    def keyed(self, owner: str, idempotency_key: str) -> Task | None:
        """The task `owner` submitted under this Idempotency-Key, if any."""

    @abc.abstractmethod
    def queued(self, owner: str) -> int:
        """The owner's QUEUED tasks, counted under the lock every `add` takes: two units cannot both see
        room for one more."""

    @abc.abstractmethod
    def add(self, task_id: str, new: NewTask, now: datetime) -> Task:
        """Store `new` as a QUEUED task with this id and the next sequence number (tasks commit in
        sequence order, so cursor paging never skips one). KeyTaken: see there."""

    @abc.abstractmethod
    def get(self, task_id: str, *, lock: bool = False) -> Task:
        """The task (NotFound if unknown); with `lock`, no other unit changes it until this one ends."""

    @abc.abstractmethod
    def save(self, task: Task) -> None:
        """Write back a task this unit got, as the domain changed it."""

    @abc.abstractmethod
    def named(self, task_ids: Sequence[str]) -> list[Task]:
        """Those of these tasks that exist, locked (a heartbeat's)."""

    @abc.abstractmethod
    def silent(self, since: datetime) -> list[Task]:
        """RUNNING tasks not heard from since `since` and not yet flagged stale, locked (rows another
        unit holds are skipped: that unit is changing them)."""

    @abc.abstractmethod
    def unacknowledged(self, now: datetime) -> list[Task]:
        """RUNNING tasks whose claim was due to be acknowledged by its owner before `now` and was not,
        locked (rows another unit holds are skipped: that unit is changing them, perhaps acknowledging)."""


class AgentRepository(abc.ABC):
    """The agents of one unit of work."""

    @abc.abstractmethod
    def get(self, agent_id: str) -> Agent | None: ...

    @abc.abstractmethod
    def arrive(self, agent_id: str, now: datetime) -> tuple[Agent, bool]:
        """The agent, made now (first and last seen `now`, not lost) if it did not exist, and held for this
        unit: a concurrent unit's `arrive` of the same agent waits for this one to end, then sees what it
        wrote, so two first requests make one agent (no duplicate key) and one return is seen once.
        True when this call made it."""

    @abc.abstractmethod
    def save(self, agent: Agent) -> None: ...

    @abc.abstractmethod
    def silent(self, since: datetime) -> list[Agent]:
        """Agents not lost and not heard from since `since`."""


class DeviceRepository(abc.ABC):
    """The devices of one unit of work. Reads here are under the unit's ordering lock: a concurrent
    registration or new epoch of the same device waits, then sees this one's."""

    @abc.abstractmethod
    def current(self, device_id: str) -> int | None:
        """The device's current epoch number; None: no such device."""

    @abc.abstractmethod
    def last(self, device_id: str) -> int | None:
        """The highest epoch number stored for the device."""

    @abc.abstractmethod
    def add(self, record: DeviceEpoch, *, new_device: bool) -> None:
        """Store the epoch and make it the device's current one (`new_device`: register the device too;
        KeyTaken when a concurrent unit registered it first)."""


class UnitOfWork(abc.ABC):
    """One write transaction: what its repositories save and the events it records commit together when
    it ends cleanly, and nothing does when it raises."""

    tasks: TaskRepository
    agents: AgentRepository
    devices: DeviceRepository

    @abc.abstractmethod
    def record(self, events: Sequence[NewEvent]) -> None: ...


class Store(abc.ABC):
    # --- tasks -----------------------------------------------------------------------

    @abc.abstractmethod
    def get_task(self, task_id: str) -> Task: ...

    @abc.abstractmethod
    def list_tasks(
        self, *, owner: str | None, state: TaskState | None, device_id: str | None, limit: int, after_seq: int | None
    ) -> list[Task]: ...

    @abc.abstractmethod
    def queued_unpinned(
        self, device_id: str, *, owner: str | None, after_seq: int | None, limit: int
    ) -> list[QueuedRef]:
        """QUEUED tasks on the device without a pinned epoch (they bind whatever is current at claim),
        oldest first, after `after_seq` when given; only `owner`'s when given. No circuits are read."""

    @abc.abstractmethod
    def claiming(self, devices: Sequence[str] | None, now: datetime) -> AbstractContextManager[ClaimUnit]:
        """One claim's transaction for `devices` (None: any), its events stamped `now` (`services.claims`
        decides in it). On entry it takes the claim lock; on a clean exit it commits."""

    @abc.abstractmethod
    def unit(self, now: datetime) -> AbstractContextManager[UnitOfWork]:
        """A unit of work whose events are stamped `now` (`services.commands` decides in it)."""

    @abc.abstractmethod
    def any_silent(self, since: datetime, now: datetime) -> bool:
        """Whether any RUNNING task not yet flagged, or any agent not lost, was last heard from before
        `since`, or any claim's acknowledgement was due before `now` and has not come: a read, so that a
        sweep that finds nothing takes no write lock."""

    @abc.abstractmethod
    def usage(self, since: datetime, until: datetime, by: Grouping) -> list[UsageTotals]:
        """Per `by`, the terminal tasks finished in [since, until) and the sums of their recorded usage,
        ordered by the group's key."""

    # --- devices ---------------------------------------------------------------------

    @abc.abstractmethod
    def current_epoch(self, device_id: str) -> DeviceEpoch: ...

    @abc.abstractmethod
    def epoch(self, device_id: str, epoch: int) -> DeviceEpoch: ...

    @abc.abstractmethod
    def epochs(self, device_id: str) -> list[tuple[int, str, datetime]]:
        """(epoch, sha256, created_at) of every epoch, oldest first."""

    @abc.abstractmethod
    def devices(self) -> list[DeviceEpoch]:
        """Every device at its current epoch."""

    # --- events and agents -----------------------------------------------------------

    @abc.abstractmethod
    def events_after(self, last_id: int, flt: EventFilter, limit: int) -> list[Event]: ...

    @abc.abstractmethod
    def last_event_id(self) -> int: ...

    @abc.abstractmethod
    def agents(self) -> list[Agent]: ...

    @abc.abstractmethod
    def slot_capacities(self, device_id: str) -> list[SlotCapacity]:
        """What one slot holds, as declared by each agent not lost whose last claim was for this device (or
        for any device); agents that declared nothing are left out."""

    @abc.abstractmethod
    def close(self) -> None: ...
