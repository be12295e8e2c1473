"""CLAIM: which QUEUED tasks an agent takes, bound to which epoch, and what happens to a task that epoch
no longer admits. The store gives the claim its transaction (`Store.claiming`); this decides in it.

Policy (docs/lifecycle.md, "Fair claiming"): the order is `domain.claiming`'s, fair across owners and
capped per owner; each task binds its pinned epoch, else the device's current one; a task bound to
another snapshot than it was admitted on is re-checked against it, and fails NOT_ADMISSIBLE_AT_CLAIM
when it no longer fits. The re-check of the tasks a claim will most likely take runs first, outside
the transaction, and the verdicts are remembered (`Verdicts`): the transaction, which holds the claim
lock (on SQLite the database's write lock), seldom computes one, so submits do not wait behind it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from vqpu_service.domain import claiming, decisions, ids
from vqpu_service.domain.model import Claimed, SlotCapacity, Task
from vqpu_service.ports import ClaimReads, DeviceEpoch, Store
from vqpu_service.services import liveness
from vqpu_service.services.verdicts import Verdicts


class ClaimService:
    def __init__(self, store: Store, verdicts: Verdicts, max_running_per_owner: int | None) -> None:
        self._store = store
        self.verdicts = verdicts
        self._max_running = max_running_per_owner
        """A claim gives no owner more RUNNING tasks than this (None: no cap)."""

    def claim(
        self,
        agent_id: str,
        max_tasks: int,
        devices: Sequence[str] | None,
        now: datetime,
        capacity: SlotCapacity | None = None,
    ) -> list[Claimed]:
        """Up to `max_tasks` QUEUED tasks -> RUNNING under a fresh token, in one transaction."""
        self._check_ahead(devices, max_tasks)
        claimed: list[Claimed] = []
        with self._store.claiming(devices, now) as unit:
            unit.record(liveness.seen(unit.agents, agent_id, now))
            liveness.declared(unit.agents, agent_id, capacity, devices)
            for task in unit.take(self._order(unit, max_tasks), max_tasks):
                bound = self._binding(unit, task)
                problems = self._problems(task, bound)
                if problems:
                    unit.save(task, decisions.fail_unbindable(task, problems, bound.epoch, now))
                    continue
                token = ids.claim_token()
                unit.save(task, decisions.claim(task, agent_id, token, bound.epoch, bound.sha256, now))
                claimed.append(Claimed(task, bound.snapshot_json, token, task.attempt))
        return claimed

    def _order(self, reads: ClaimReads, max_tasks: int) -> list[claiming.Candidate]:
        held = reads.running()
        found = reads.candidates(max_tasks, claiming.at_cap(held, self._max_running))
        return claiming.claim_order(found, held, self._max_running)

    def _check_ahead(self, devices: Sequence[str] | None, max_tasks: int) -> None:
        with self._store.claim_reads(devices) as reads:
            likely = [c.task_id for c in self._order(reads, max_tasks)[:max_tasks]]
            for admitted in reads.admitted(likely):
                epoch = claiming.binds(admitted.pinned_epoch, reads.current_epoch(admitted.device_id))
                bound = reads.epoch(admitted.device_id, epoch)
                if bound.sha256 != admitted.admitted_sha256:
                    self.verdicts.check(reads.task(admitted.task_id), bound)

    @staticmethod
    def _binding(reads: ClaimReads, task: Task) -> DeviceEpoch:
        epoch = claiming.binds(task.pinned_epoch, reads.current_epoch(task.device_id))
        return reads.epoch(task.device_id, epoch)

    def _problems(self, task: Task, bound: DeviceEpoch) -> list[dict[str, object]]:
        """Why the bound epoch refuses the task; [] when it is the one it was admitted on, or still fits."""
        if bound.sha256 == task.admitted_sha256:
            return []
        return [v.to_dict() for v in self.verdicts.check(task, bound)]
