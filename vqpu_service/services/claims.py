"""CLAIM: which QUEUED tasks an agent takes, bound to which epoch, and what happens to a task that epoch
no longer admits. The store gives the claim its transaction (`Store.claiming`); this decides in it.

Policy (docs/lifecycle.md, "Fair claiming"): the order is `domain.claiming`'s, fair across owners and
capped per owner; each task binds its pinned epoch, else the device's current one; a task bound to
another snapshot than it was admitted on is re-checked against it, and fails NOT_ADMISSIBLE_AT_CLAIM
when it no longer fits. That re-check never runs inside the transaction, which holds the claim lock (on
SQLite the database's write lock): a claim that would take a task whose verdict is not yet known rolls
back, computes it outside, remembers it (`Verdicts`) and claims again, so submits do not wait behind it.
Most claims bind the epoch their tasks were admitted on and need one transaction.

A claim is made for a client that is still there: one whose connection is gone by the time the claim
would commit takes nothing (it rolls back). What it hands out must be acknowledged by the agent within
its `AckWindow` (`domain.liveness`), or the liveness sweep takes it back: a reply can still be lost after
the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from vqpu_service.domain import claiming, decisions, ids
from vqpu_service.domain.liveness import AckWindow
from vqpu_service.domain.model import Claimed, SlotCapacity, Task
from vqpu_service.ports import ClaimReads, DeviceEpoch, Store
from vqpu_service.services import liveness
from vqpu_service.services.verdicts import Verdicts


@dataclass(frozen=True)
class Claimant:
    """Who claims, and what its claim said about itself."""

    agent_id: str
    capacity: SlotCapacity | None = None
    """What one of its slots holds; None: not declared (an older agent)."""
    heartbeat_s: float | None = None
    """How often it heartbeats, which sizes its acknowledgement window; None: not declared."""
    gone: Callable[[], bool] | None = None
    """True once its connection is gone (it hung up, or died): nothing is claimed for it then."""


class ClaimService:
    def __init__(self, store: Store, verdicts: Verdicts, max_running_per_owner: int | None, ack: AckWindow) -> None:
        self._store = store
        self.verdicts = verdicts
        self._max_running = max_running_per_owner
        """A claim gives no owner more RUNNING tasks than this (None: no cap)."""
        self._ack = ack

    def claim(
        self,
        agent_id: str,
        max_tasks: int,
        devices: Sequence[str] | None,
        now: datetime,
        capacity: SlotCapacity | None = None,
    ) -> list[Claimed]:
        """Up to `max_tasks` QUEUED tasks -> RUNNING under a fresh token (see `claim_for`)."""
        return self.claim_for(Claimant(agent_id, capacity), max_tasks, devices, now)

    def claim_for(self, who: Claimant, max_tasks: int, devices: Sequence[str] | None, now: datetime) -> list[Claimed]:
        """Up to `max_tasks` QUEUED tasks -> RUNNING under a fresh token, in one transaction (two when a
        task it takes must be re-checked first); none, and nothing recorded, when `who` is gone by the
        time the claim would commit."""
        try:
            try:
                return self._claim(who, max_tasks, devices, now, recheck=False)
            except _Unchecked as unchecked:  # rolled back: nothing was taken or recorded
                for task, bound in unchecked.pairs:
                    self.verdicts.check(task, bound)
            return self._claim(who, max_tasks, devices, now, recheck=True)
        except _Gone:  # rolled back: the tasks stay QUEUED for a claimant that is there
            return []

    def _claim(
        self, who: Claimant, max_tasks: int, devices: Sequence[str] | None, now: datetime, *, recheck: bool
    ) -> list[Claimed]:
        """The claim; unless `recheck`, raise _Unchecked for the tasks taken whose verdict is not known."""
        claimed: list[Claimed] = []
        ack_deadline = self._ack.deadline(now, who.heartbeat_s)
        with self._store.claiming(devices, now) as unit:
            unit.record(liveness.seen(unit.agents, who.agent_id, now))
            liveness.declared(unit.agents, who.agent_id, who.capacity, devices)
            taken = [(task, self._binding(unit, task)) for task in unit.take(self._order(unit, max_tasks), max_tasks)]
            unknown = [(t, b) for t, b in taken if not self._verdict_known(t, b)]
            if unknown and not recheck:
                raise _Unchecked(unknown)
            for task, bound in taken:
                problems = self._problems(task, bound)
                if problems:
                    unit.save(task, decisions.fail_unbindable(task, problems, bound.epoch, now))
                    continue
                token = ids.claim_token()
                unit.save(
                    task, decisions.claim(task, who.agent_id, token, bound.epoch, bound.sha256, now, ack_deadline)
                )
                claimed.append(Claimed(task, bound.snapshot_json, token, task.attempt))
            if claimed and who.gone is not None and who.gone():  # the last moment before the commit
                raise _Gone
        return claimed

    def _order(self, reads: ClaimReads, max_tasks: int) -> list[claiming.Candidate]:
        held = reads.running()
        found = reads.candidates(max_tasks, claiming.at_cap(held, self._max_running))
        return claiming.claim_order(found, held, self._max_running)

    def _verdict_known(self, task: Task, bound: DeviceEpoch) -> bool:
        return bound.sha256 == task.admitted_sha256 or self.verdicts.known(task.id, bound.sha256) is not None

    @staticmethod
    def _binding(reads: ClaimReads, task: Task) -> DeviceEpoch:
        epoch = claiming.binds(task.pinned_epoch, reads.current_epoch(task.device_id))
        return reads.epoch(task.device_id, epoch)

    def _problems(self, task: Task, bound: DeviceEpoch) -> list[dict[str, object]]:
        """Why the bound epoch refuses the task; [] when it is the one it was admitted on, or still fits."""
        if bound.sha256 == task.admitted_sha256:
            return []
        return [v.to_dict() for v in self.verdicts.check(task, bound)]


class _Gone(Exception):
    """The claimant's connection is gone: roll the claim back."""


class _Unchecked(Exception):
    """A claim would take tasks whose verdict on the epoch they bind is not known yet."""

    def __init__(self, pairs: list[tuple[Task, DeviceEpoch]]) -> None:
        super().__init__(f"{len(pairs)} task(s) to re-check")
        self.pairs = pairs
