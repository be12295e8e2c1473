"""The stores with the services' decisions beside them, as the composition root wires them: `claim` is the
server's CLAIM (`ClaimService` deciding in the store's claim transaction; `claim_for` as the API calls it, with
what the claimant said of itself); `report`, `cancel`, `requeue`
and `force_fail` are the lifecycle commands (`services.commands`), `heartbeat` and `sweep_liveness` the
liveness services (`services.liveness`), each one unit of work; `submit`
(`services.commands.submit`) honours a QUEUED cap as `TaskService` passes it from the settings."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine

from device_registry import Snapshot
from vqpu_service.adapters.memory import MemoryStore
from vqpu_service.adapters.sql.store import SqlStore
from vqpu_service.domain.decisions import Outcome, Report
from vqpu_service.domain.liveness import AckWindow
from vqpu_service.domain.model import Claimed, HeartbeatReply, NewTask, SlotCapacity, Task
from vqpu_service.ports import DeviceEpoch, Store
from vqpu_service.services import commands, epochs, liveness
from vqpu_service.services.claims import Claimant, ClaimService
from vqpu_service.services.devices import DeviceService
from vqpu_service.services.verdicts import REMEMBERED, Verdicts

ACK = AckWindow(least_s=10.0, undeclared_s=60.0)
"""The server's defaults: VQPU_CLAIM_ACK_WINDOW_S, and VQPU_LIVENESS_WINDOW_S for an agent that declares
no heartbeat interval (every claim here)."""


class Claiming:
    store: Store
    max_queued: int | None

    def wire(self, store: Store, max_running: int | None, max_queued: int | None) -> None:
        self.store = store
        self.max_queued = max_queued
        self.claims = ClaimService(store, Verdicts(DeviceService(store, ttl_s=0), REMEMBERED), max_running, ACK)

    def claim(
        self,
        agent_id: str,
        max_tasks: int,
        devices: Sequence[str] | None,
        now: datetime,
        capacity: SlotCapacity | None = None,
    ) -> list[Claimed]:
        return self.claims.claim(agent_id, max_tasks, devices, now, capacity)

    def claim_for(self, who: Claimant, max_tasks: int, devices: Sequence[str] | None, now: datetime) -> list[Claimed]:
        return self.claims.claim_for(who, max_tasks, devices, now)

    def report(self, task_id: str, rep: Report, now: datetime) -> tuple[Task, Outcome]:
        return commands.report(self.store, task_id, rep, now)

    def cancel(self, task_id: str, by: str, now: datetime) -> Task:
        return commands.cancel(self.store, task_id, by, now)

    def requeue(self, task_id: str, by: str, reason: str, now: datetime) -> Task:
        return commands.requeue(self.store, task_id, by, reason, now)

    def force_fail(self, task_id: str, by: str, reason: str, now: datetime) -> Task:
        return commands.force_fail(self.store, task_id, by, reason, now)

    def register_device(self, snapshot: Snapshot, now: datetime) -> DeviceEpoch:
        return epochs.register(self.store, snapshot, now)

    def new_epoch(self, device_id: str, snapshot: Snapshot, now: datetime) -> DeviceEpoch:
        return epochs.new_epoch(self.store, device_id, snapshot, now)

    def heartbeat(self, agent_id: str, tasks: Sequence[tuple[str, str]], now: datetime) -> HeartbeatReply:
        return liveness.heartbeat(self.store, agent_id, tasks, now)

    def sweep_liveness(self, window_s: float, now: datetime, *, auto_requeue: bool, max_attempts: int) -> list[str]:
        return liveness.sweep(self.store, window_s, now, auto_requeue=auto_requeue, max_attempts=max_attempts)


class ClaimingStore(Claiming, SqlStore):
    def __init__(
        self, engine: Engine, *, max_running_per_owner: int | None = None, max_queued_per_owner: int | None = None
    ) -> None:
        SqlStore.__init__(self, engine)
        self.wire(self, max_running_per_owner, max_queued_per_owner)

    def submit(self, new: NewTask, now: datetime, max_queued: int | None = None) -> tuple[Task, bool]:
        return commands.submit(self, new, now, self.max_queued if max_queued is None else max_queued)


class ClaimingMemoryStore(Claiming, MemoryStore):
    def __init__(self, *, max_running_per_owner: int | None = None, max_queued_per_owner: int | None = None) -> None:
        MemoryStore.__init__(self)
        self.wire(self, max_running_per_owner, max_queued_per_owner)

    def submit(self, new: NewTask, now: datetime, max_queued: int | None = None) -> tuple[Task, bool]:
        return commands.submit(self, new, now, self.max_queued if max_queued is None else max_queued)
