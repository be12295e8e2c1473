"""The SQL store with the claim service beside it, as the composition root wires them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine

from vqpu_service.adapters.sql.store import SqlStore
from vqpu_service.domain.model import Claimed, NewTask, SlotCapacity, Task
from vqpu_service.services.claims import ClaimService
from vqpu_service.services.devices import DeviceService
from vqpu_service.services.verdicts import REMEMBERED, Verdicts


class ClaimingStore(SqlStore):
    """`claim` is the server's CLAIM: `ClaimService` deciding in the store's claim transaction."""

    def __init__(
        self, engine: Engine, *, max_running_per_owner: int | None = None, max_queued_per_owner: int | None = None
    ) -> None:
        super().__init__(engine)
        self.max_queued = max_queued_per_owner
        self.claims = ClaimService(self, Verdicts(DeviceService(self, ttl_s=0), REMEMBERED), max_running_per_owner)

    def submit(self, new: NewTask, now: datetime, max_queued: int | None = None) -> tuple[Task, bool]:
        """The store's submit under this store's QUEUED cap, as TaskService passes it from the settings."""
        return super().submit(new, now, self.max_queued if max_queued is None else max_queued)

    def claim(
        self,
        agent_id: str,
        max_tasks: int,
        devices: Sequence[str] | None,
        now: datetime,
        capacity: SlotCapacity | None = None,
    ) -> list[Claimed]:
        return self.claims.claim(agent_id, max_tasks, devices, now, capacity)
