"""A unit of work in SQL: one write transaction, its task repository loading (and locking) rows and
writing back what the domain changed; `SqlStore.unit` writes the recorded events before it commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from vqpu_service.adapters.sql import devices, queue
from vqpu_service.adapters.sql.rows import apply, declare, to_agent, to_task
from vqpu_service.adapters.sql.schema import AgentRow, DeviceRow, EpochRow, TaskRow
from vqpu_service.adapters.sql.tx import Transactions
from vqpu_service.domain.errors import NotFound
from vqpu_service.domain.events import NewEvent
from vqpu_service.domain.lifecycle import TaskState
from vqpu_service.domain.model import Agent, NewTask, Task
from vqpu_service.ports import AgentRepository, DeviceEpoch, DeviceRepository, KeyTaken, TaskRepository, UnitOfWork


class SqlTasks(TaskRepository):
    def __init__(self, s: Session, tx: Transactions) -> None:
        self._s = s
        self._tx = tx
        self._sqlite = tx.sqlite
        self._rows: dict[str, TaskRow] = {}

    def keyed(self, owner: str, idempotency_key: str) -> Task | None:
        q = select(TaskRow).where(TaskRow.owner == owner, TaskRow.idempotency_key == idempotency_key)
        row = self._s.exec(q).first()
        return None if row is None else to_task(row)

    def queued(self, owner: str) -> int:
        self._tx.lock_order(self._s)
        return queue.queued(self._s, owner)

    def add(self, task_id: str, new: NewTask, now: datetime) -> Task:
        self._tx.lock_order(self._s)  # task seqs commit in seq order: cursor paging never skips one
        row = TaskRow(id=task_id, state=str(TaskState.QUEUED), attempt=0, created_at=now, updated_at=now, **vars(new))
        self._s.add(row)
        try:
            self._s.flush()
        except IntegrityError as exc:  # PostgreSQL: a concurrent submit committed the same (owner, key)
            raise KeyTaken(new.owner) from exc
        self._rows[task_id] = row
        return to_task(row)

    def get(self, task_id: str, *, lock: bool = False) -> Task:
        q = select(TaskRow).where(TaskRow.id == task_id)
        row = self._s.exec(q.with_for_update() if lock and not self._sqlite else q).first()
        if row is None:
            raise NotFound(f"unknown task {task_id!r}", {"task_id": task_id})
        self._rows[task_id] = row
        return to_task(row)

    def save(self, task: Task) -> None:
        apply(self._rows[task.id], task)

    def named(self, task_ids: Sequence[str]) -> list[Task]:
        q = select(TaskRow).where(col(TaskRow.id).in_(list(task_ids)))
        return self._load(q if self._sqlite else q.with_for_update())

    def silent(self, since: datetime) -> list[Task]:
        last_beat = func.coalesce(TaskRow.heartbeat_at, TaskRow.claimed_at)
        q = select(TaskRow).where(
            TaskRow.state == str(TaskState.RUNNING), last_beat < since, col(TaskRow.stale_reported).is_(False)
        )
        return self._load(q if self._sqlite else q.with_for_update(skip_locked=True))

    def unacknowledged(self, now: datetime) -> list[Task]:
        q = select(TaskRow).where(TaskRow.state == str(TaskState.RUNNING), col(TaskRow.ack_deadline) < now)
        return self._load(q if self._sqlite else q.with_for_update(skip_locked=True))

    def _load(self, q: SelectOfScalar[TaskRow]) -> list[Task]:
        rows = list(self._s.exec(q))
        self._rows |= {r.id: r for r in rows}
        return [to_task(r) for r in rows]


class SqlAgents(AgentRepository):
    def __init__(self, s: Session, sqlite: bool) -> None:
        self._s = s
        self._sqlite = sqlite
        self._rows: dict[str, AgentRow] = {}  # an added row is not in the session's identity map until flushed

    def arrive(self, agent_id: str, now: datetime) -> tuple[Agent, bool]:
        # One statement makes the row or leaves it: a concurrent first request (PostgreSQL) waits on the
        # key instead of failing on it; then the row is read FOR UPDATE, so the same agent's requests take
        # turns and each sees what the one before it wrote (SQLite's units already take turns).
        insert = sqlite_insert if self._sqlite else postgresql_insert
        values = {"agent_id": agent_id, "first_seen": now, "last_seen": now, "lost": False}
        table = AgentRow.metadata.tables[str(AgentRow.__tablename__)]
        statement = insert(table).values(**values).on_conflict_do_nothing(index_elements=["agent_id"])
        # RETURNING, not rowcount (-1 here for an INSERT on PostgreSQL): a row back is a row made.
        made = self._s.connection().execute(statement.returning(table.c.agent_id)).first() is not None
        q = select(AgentRow).where(AgentRow.agent_id == agent_id).execution_options(populate_existing=True)
        row = self._s.exec(q if self._sqlite else q.with_for_update()).one()
        self._rows[agent_id] = row
        return to_agent(row), made

    def _row(self, agent_id: str) -> AgentRow | None:
        row = self._rows.get(agent_id) or self._s.get(AgentRow, agent_id)
        if row is not None:
            self._rows[agent_id] = row
        return row

    def get(self, agent_id: str) -> Agent | None:
        row = self._row(agent_id)
        return None if row is None else to_agent(row)

    def save(self, agent: Agent) -> None:
        row = self._row(agent.agent_id)
        if row is None:
            row = AgentRow(agent_id=agent.agent_id, first_seen=agent.first_seen, last_seen=agent.last_seen)
            self._s.add(row)
            self._rows[agent.agent_id] = row
        row.first_seen, row.last_seen, row.lost = agent.first_seen, agent.last_seen, agent.lost
        declare(row, agent.capacity, None if agent.devices is None else list(agent.devices))

    def silent(self, since: datetime) -> list[Agent]:
        q = select(AgentRow).where(col(AgentRow.lost).is_(False), AgentRow.last_seen < since)
        return [to_agent(r) for r in self._s.exec(q)]


class SqlDevices(DeviceRepository):
    def __init__(self, s: Session, tx: Transactions) -> None:
        self._s = s
        self._tx = tx

    def current(self, device_id: str) -> int | None:
        self._tx.lock_order(self._s)  # PostgreSQL: a concurrent change of the same device waits, then sees this
        row = self._s.get(DeviceRow, device_id)
        return None if row is None else row.current_epoch

    def last(self, device_id: str) -> int | None:
        q = select(EpochRow.epoch).where(EpochRow.device_id == device_id).order_by(col(EpochRow.epoch).desc())
        return self._s.exec(q).first()

    def add(self, record: DeviceEpoch, *, new_device: bool) -> None:
        now = record.created_at
        if new_device:
            self._s.add(
                DeviceRow(device_id=record.device_id, current_epoch=record.epoch, created_at=now, updated_at=now)
            )
            try:
                self._s.flush()
            except IntegrityError as exc:  # the primary key decides a race the ordering lock did not cover
                raise KeyTaken(record.device_id) from exc
        else:
            device = devices.device_row(self._s, record.device_id, lock=True)
            device.current_epoch, device.updated_at = record.epoch, now
        self._s.add(
            EpochRow(
                device_id=record.device_id,
                epoch=record.epoch,
                sha256=record.sha256,
                snapshot_json=record.snapshot_json,
                created_at=now,
            )
        )


class SqlUnit(UnitOfWork):
    def __init__(self, s: Session, tx: Transactions) -> None:
        self.tasks = SqlTasks(s, tx)
        self.devices = SqlDevices(s, tx)
        self.agents = SqlAgents(s, tx.sqlite)
        self.events: list[NewEvent] = []

    def record(self, events: Sequence[NewEvent]) -> None:
        self.events += events
