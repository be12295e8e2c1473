"""SqlStore: the Store port over SQLModel, for SQLite and PostgreSQL alike.

CLAIM is one transaction (`claiming`, `adapters.sql.claims`): SQLite holds the write lock from BEGIN
IMMEDIATE; PostgreSQL serialises claims on an advisory lock and locks the chosen rows with FOR UPDATE
SKIP LOCKED (`queue`), so concurrent claimers take disjoint tasks and the per-owner RUNNING cap holds.
Which tasks, in which order, bound to which epoch, is decided by `services.claims` and `domain`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Engine, func, or_
from sqlmodel import Session, SQLModel, col, select

from vqpu_service.adapters.sql import devices, queue, usage
from vqpu_service.adapters.sql.claims import SqlClaimUnit
from vqpu_service.adapters.sql.rows import to_agent, to_event, to_task
from vqpu_service.adapters.sql.schema import AgentRow, DeviceRow, EpochRow, EventRow, TaskRow
from vqpu_service.adapters.sql.tx import Transactions
from vqpu_service.adapters.sql.unit import SqlUnit
from vqpu_service.adapters.sql.upgrade import add_missing_columns, add_missing_indexes
from vqpu_service.domain.errors import (
    NotFound,
)
from vqpu_service.domain.events import DEVICE_EVENTS, Event
from vqpu_service.domain.lifecycle import TaskState
from vqpu_service.domain.model import Agent, SlotCapacity, Task
from vqpu_service.domain.usage import Grouping, UsageTotals
from vqpu_service.ports import ClaimUnit, DeviceEpoch, EventFilter, QueuedRef, Store, UnitOfWork


class SqlStore(Store):
    def __init__(self, engine: Engine) -> None:
        self.tx = Transactions(engine)
        self._epochs = devices.EpochCache()

    def create_schema(self) -> None:
        SQLModel.metadata.create_all(self.tx.engine)
        add_missing_columns(self.tx.engine, SQLModel.metadata)
        add_missing_indexes(self.tx.engine, SQLModel.metadata)

    def close(self) -> None:
        self.tx.engine.dispose()

    # --- tasks -----------------------------------------------------------------------

    def get_task(self, task_id: str) -> Task:
        with self.tx.session(write=False) as s:
            return to_task(self._row(s, task_id))

    def list_tasks(
        self, *, owner: str | None, state: TaskState | None, device_id: str | None, limit: int, after_seq: int | None
    ) -> list[Task]:
        q = select(TaskRow)
        if owner is not None:
            q = q.where(TaskRow.owner == owner)
        if state is not None:
            q = q.where(TaskRow.state == str(state))
        if device_id is not None:
            q = q.where(TaskRow.device_id == device_id)
        if after_seq is not None:
            q = q.where(col(TaskRow.seq) > after_seq)
        with self.tx.session(write=False) as s:
            return [to_task(r) for r in s.exec(q.order_by(col(TaskRow.seq)).limit(limit))]

    def queued_unpinned(
        self, device_id: str, *, owner: str | None, after_seq: int | None, limit: int
    ) -> list[QueuedRef]:
        with self.tx.session(write=False) as s:
            return queue.queued_unpinned(s, self.tx.sqlite, device_id, owner, after_seq, limit)

    @contextmanager
    def claiming(self, devices_: Sequence[str] | None, now: datetime) -> Iterator[ClaimUnit]:
        with self.tx.session(write=True) as s:
            queue.serialise_claims(s, self.tx.sqlite)
            unit = SqlClaimUnit(s, self.tx.sqlite, self._epochs, devices_)
            yield unit
            self.tx.write_events(s, unit.events, now)

    @contextmanager
    def unit(self, now: datetime) -> Iterator[UnitOfWork]:
        with self.tx.session(write=True) as s:
            uow = SqlUnit(s, self.tx)
            yield uow
            self.tx.write_events(s, uow.events, now)

    def any_silent(self, since: datetime, now: datetime) -> bool:
        last_beat = func.coalesce(TaskRow.heartbeat_at, TaskRow.claimed_at)
        running = TaskRow.state == str(TaskState.RUNNING)
        due = select(TaskRow.id).where(running, last_beat < since, col(TaskRow.stale_reported).is_(False))
        unacknowledged = select(TaskRow.id).where(running, col(TaskRow.ack_deadline) < now)
        silent = select(AgentRow.agent_id).where(col(AgentRow.lost).is_(False), AgentRow.last_seen < since)
        with self.tx.session(write=False) as s:
            return any(s.exec(q.limit(1)).first() is not None for q in (due, unacknowledged, silent))

    def _row(self, s: Session, task_id: str, *, lock: bool = False) -> TaskRow:
        q = select(TaskRow).where(TaskRow.id == task_id)
        row = s.exec(q.with_for_update() if lock and not self.tx.sqlite else q).first()
        if row is None:
            raise NotFound(f"unknown task {task_id!r}", {"task_id": task_id})
        return row

    def usage(self, since: datetime, until: datetime, by: Grouping) -> list[UsageTotals]:
        with self.tx.session(write=False) as s:
            return usage.totals(s, since, until, by)

    # --- devices ---------------------------------------------------------------------

    def current_epoch(self, device_id: str) -> DeviceEpoch:
        with self.tx.session(write=False) as s:
            return self._epochs.get(s, device_id, devices.device_row(s, device_id).current_epoch)

    def epoch(self, device_id: str, epoch: int) -> DeviceEpoch:
        with self.tx.session(write=False) as s:
            devices.device_row(s, device_id)
            return self._epochs.get(s, device_id, epoch)

    def epochs(self, device_id: str) -> list[tuple[int, str, datetime]]:
        with self.tx.session(write=False) as s:
            devices.device_row(s, device_id)
            q = select(EpochRow.epoch, EpochRow.sha256, EpochRow.created_at).where(EpochRow.device_id == device_id)
            return [(e, sha, t) for e, sha, t in s.exec(q.order_by(col(EpochRow.epoch)))]

    def devices(self) -> list[DeviceEpoch]:
        with self.tx.session(write=False) as s:
            rows = s.exec(select(DeviceRow).order_by(col(DeviceRow.device_id))).all()
            return [self._epochs.get(s, r.device_id, r.current_epoch) for r in rows]

    # --- events and agents -----------------------------------------------------------

    def events_after(self, last_id: int, flt: EventFilter, limit: int) -> list[Event]:
        q = select(EventRow).where(col(EventRow.id) > last_id)
        if flt.task_id is not None:
            q = q.where(EventRow.task_id == flt.task_id)
        if flt.device_id is not None:
            q = q.where(EventRow.device_id == flt.device_id)
        if flt.types is not None:
            q = q.where(col(EventRow.type).in_([str(t) for t in flt.types]))
        if flt.owner is not None:
            q = q.where(or_(col(EventRow.owner) == flt.owner, col(EventRow.type).in_([str(t) for t in DEVICE_EVENTS])))
        with self.tx.session(write=False) as s:
            return [to_event(r) for r in s.exec(q.order_by(col(EventRow.id)).limit(limit))]

    def last_event_id(self) -> int:
        with self.tx.session(write=False) as s:
            return int(s.exec(select(func.max(EventRow.id))).one() or 0)

    def agents(self) -> list[Agent]:
        with self.tx.session(write=False) as s:
            return [to_agent(r) for r in s.exec(select(AgentRow).order_by(col(AgentRow.agent_id)))]

    def slot_capacities(self, device_id: str) -> list[SlotCapacity]:
        q = select(AgentRow).where(col(AgentRow.lost).is_(False), col(AgentRow.memory_bytes).is_not(None))
        with self.tx.session(write=False) as s:
            agents = [to_agent(r) for r in s.exec(q.order_by(col(AgentRow.agent_id)))]
        # a site runs a handful of agents: filter them here
        return [a.capacity for a in agents if a.capacity is not None and (a.devices is None or device_id in a.devices)]
