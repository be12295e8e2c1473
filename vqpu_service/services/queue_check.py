"""Which QUEUED tasks a device epoch would refuse: the claim-time admissibility check, asked ahead of time.

A task without a pinned epoch binds whatever epoch is current when an agent claims it, and is re-checked
then (`services.claims`); one the bound epoch no longer admits fails NOT_ADMISSIBLE_AT_CLAIM. This
runs the same check against any epoch, so that an operator (or a user) sees before a change goes live which
queued tasks it would fail. Bounded whatever users stored: one call reads at most `MAX_QUEUED_CHECK` tasks,
oldest (first to be claimed) first, and re-checks at most `budget_bytes` of circuit source; verdicts
already known (`Verdicts`) cost nothing. It says where it stopped, and a caller pages on with `after`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from device_registry.admissibility import Violation
from vqpu_protocol.limits import MAX_QUEUED_CHECK
from vqpu_service.domain.errors import NotFound
from vqpu_service.domain.model import Principal
from vqpu_service.ports import DeviceEpoch, QueuedRef, Store
from vqpu_service.services.devices import DeviceService
from vqpu_service.services.tasks import readable_owner
from vqpu_service.services.verdicts import Verdicts


@dataclass
class QueueCheck:
    record: DeviceEpoch
    checked: int = 0
    """Tasks whose verdict this call gives (re-checked, remembered, or admitted on this very epoch)."""
    checked_bytes: int = 0
    """Circuit source re-checked by this call: remembered verdicts are not counted."""
    cached: int = 0
    """Verdicts given from memory."""
    truncated: bool = False
    """More QUEUED tasks follow the last one checked."""
    next_after: str | None = None
    """With `truncated`: the last task checked, to pass as `after` to go on."""
    refused: list[tuple[QueuedRef, list[Violation]]] = field(default_factory=list)


class QueueInspector:
    def __init__(self, store: Store, devices: DeviceService, verdicts: Verdicts) -> None:
        self._store = store
        self._devices = devices
        self._verdicts = verdicts

    def refused_by(
        self, who: Principal, device_id: str, epoch: int, *, after: str | None, budget_bytes: int
    ) -> QueueCheck:
        """The caller's QUEUED unpinned tasks on the device (everyone's for an admin; 403 to an agent) that
        `epoch` refuses, from the oldest (after the task `after`, when given) until a bound is reached."""
        return refused_by(
            self._store, self._devices, self._verdicts, who, device_id, epoch, after=after, budget_bytes=budget_bytes
        )


def refused_by(
    store: Store,
    devices: DeviceService,
    verdicts: Verdicts,
    who: Principal,
    device_id: str,
    epoch: int,
    *,
    after: str | None,
    budget_bytes: int,
) -> QueueCheck:
    """The caller's QUEUED unpinned tasks on the device (everyone's for an admin; 403 to an agent) that
    `epoch` refuses, from the oldest (after the task `after`, when given) until a bound is reached."""
    owner = readable_owner(who)
    record = devices.epoch(device_id, epoch)  # an unknown device or epoch is 404 before anything is read
    after_seq = None if after is None else _seq(store, after, owner)
    queued = store.queued_unpinned(device_id, owner=owner, after_seq=after_seq, limit=MAX_QUEUED_CHECK + 1)
    found = QueueCheck(record)
    for ref in queued[:MAX_QUEUED_CHECK]:
        if ref.admitted_sha256 == record.sha256:  # the very snapshot it was admitted on (the claim skips it too)
            violations: list[Violation] = []
        else:
            known = verdicts.known(ref.task_id, record.sha256)
            if known is None and found.checked_bytes and found.checked_bytes + ref.circuit_bytes > budget_bytes:
                break  # the budget is spent (the first re-check always runs: each call makes progress)
            if known is None:
                violations = verdicts.check(store.get_task(ref.task_id), record)  # one circuit in memory at a time
                found.checked_bytes += ref.circuit_bytes
            else:
                violations = known
                found.cached += 1
        found.checked += 1
        found.next_after = ref.task_id
        if violations:
            found.refused.append((ref, violations))
    found.truncated = found.checked < len(queued)
    found.next_after = found.next_after if found.truncated else None
    return found


def _seq(store: Store, task_id: str, owner: str | None) -> int:
    """Where to go on from: the task's place in the queue. Another tenant's task is unknown, as everywhere."""
    task = store.get_task(task_id)
    if owner is not None and task.owner != owner:
        raise NotFound(f"unknown task {task_id!r}", {"task_id": task_id})
    return task.seq
