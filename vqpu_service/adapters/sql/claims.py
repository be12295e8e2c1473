"""A claim's reads and its transaction in SQL: loads and locks only; `services.claims` decides.

The transaction serialises claims (PostgreSQL: the claim advisory lock; SQLite: BEGIN IMMEDIATE holds
the write lock) so the RUNNING counts a claim decides on are still true when it commits, and takes
rows with FOR UPDATE SKIP LOCKED (`queue.take`), so concurrent claimers take disjoint tasks (D3).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session

from vqpu_service.adapters.sql import devices, queue
from vqpu_service.adapters.sql.rows import apply, to_task
from vqpu_service.adapters.sql.schema import TaskRow
from vqpu_service.adapters.sql.unit import SqlAgents
from vqpu_service.domain.claiming import Candidate
from vqpu_service.domain.events import NewEvent
from vqpu_service.domain.model import Task
from vqpu_service.ports import ClaimReads, ClaimUnit, DeviceEpoch


class SqlClaimReads(ClaimReads):
    def __init__(self, s: Session, sqlite: bool, epochs: devices.EpochCache, claimed: Sequence[str] | None) -> None:
        self.s = s
        self.sqlite = sqlite
        self._epochs = epochs
        self._devices = claimed

    def running(self) -> dict[str, int]:
        return queue.running(self.s)

    def candidates(self, per_owner: int, skip_owners: Sequence[str]) -> list[Candidate]:
        return queue.candidates(self.s, self._devices, per_owner, skip_owners)

    def current_epoch(self, device_id: str) -> int:
        return devices.device_row(self.s, device_id).current_epoch

    def epoch(self, device_id: str, epoch: int) -> DeviceEpoch:
        return self._epochs.get(self.s, device_id, epoch)


class SqlClaimUnit(SqlClaimReads, ClaimUnit):
    def __init__(self, s: Session, sqlite: bool, epochs: devices.EpochCache, claimed: Sequence[str] | None) -> None:
        super().__init__(s, sqlite, epochs, claimed)
        self._rows: dict[str, TaskRow] = {}
        self.agents = SqlAgents(s, sqlite)
        self.events: list[NewEvent] = []
        """Written by the store as the transaction ends."""

    def record(self, events: Sequence[NewEvent]) -> None:
        self.events += events

    def take(self, order: Sequence[Candidate], max_tasks: int) -> list[Task]:
        rows = queue.take(self.s, order, max_tasks, self.sqlite)
        self._rows |= {r.id: r for r in rows}
        return [to_task(r) for r in rows]

    def save(self, task: Task, events: Sequence[NewEvent]) -> None:
        apply(self._rows[task.id], task)
        self.events += events
