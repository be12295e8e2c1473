"""A unit of work in SQL: one write transaction, its task repository loading (and locking) rows and
writing back what the domain changed; `SqlStore.unit` writes the recorded events before it commits."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, select

from vqpu_service.adapters.sql.rows import apply, to_task
from vqpu_service.adapters.sql.schema import TaskRow
from vqpu_service.domain.errors import NotFound
from vqpu_service.domain.events import NewEvent
from vqpu_service.domain.model import Task
from vqpu_service.ports import TaskRepository, UnitOfWork


class SqlTasks(TaskRepository):
    def __init__(self, s: Session, sqlite: bool) -> None:
        self._s = s
        self._sqlite = sqlite
        self._rows: dict[str, TaskRow] = {}

    def get(self, task_id: str, *, lock: bool = False) -> Task:
        q = select(TaskRow).where(TaskRow.id == task_id)
        row = self._s.exec(q.with_for_update() if lock and not self._sqlite else q).first()
        if row is None:
            raise NotFound(f"unknown task {task_id!r}", {"task_id": task_id})
        self._rows[task_id] = row
        return to_task(row)

    def save(self, task: Task) -> None:
        apply(self._rows[task.id], task)


class SqlUnit(UnitOfWork):
    def __init__(self, s: Session, sqlite: bool) -> None:
        self.tasks = SqlTasks(s, sqlite)
        self.events: list[NewEvent] = []

    def record(self, events: Sequence[NewEvent]) -> None:
        self.events += events
