"""Which QUEUED tasks a device epoch would refuse: the claim-time admissibility check, asked ahead of time.

A task without a pinned epoch binds whatever epoch is current when an agent claims it, and is re-checked
then (`bootstrap.wire_recheck`); one the bound epoch no longer admits fails NOT_ADMISSIBLE_AT_CLAIM. This
runs the same check against any epoch, so that an operator (or a user) sees before a change goes live which
queued tasks it would fail. Bounded: at most `MAX_QUEUED_CHECK` tasks, oldest (first to be claimed) first.
"""

from __future__ import annotations

from dataclasses import dataclass

from device_registry.admissibility import Violation
from vqpu_protocol.limits import MAX_QUEUED_CHECK
from vqpu_service.domain.model import Principal, Task
from vqpu_service.ports import DeviceEpoch, Store
from vqpu_service.services.devices import DeviceService
from vqpu_service.services.tasks import readable_owner


@dataclass(frozen=True)
class QueueCheck:
    record: DeviceEpoch
    checked: int
    truncated: bool
    refused: list[tuple[Task, list[Violation]]]


def refused_by(store: Store, devices: DeviceService, who: Principal, device_id: str, epoch: int) -> QueueCheck:
    """The caller's QUEUED unpinned tasks on the device (everyone's for an admin; 403 to an agent) that
    `epoch` refuses."""
    owner = readable_owner(who)
    record = devices.epoch(device_id, epoch)  # an unknown device or epoch is 404 before anything is read
    queued = store.queued_unpinned(device_id, owner=owner, limit=MAX_QUEUED_CHECK + 1)
    checked = queued[:MAX_QUEUED_CHECK]
    refused = []
    for task in checked:
        if task.admitted_sha256 == record.sha256:  # the very snapshot it was admitted on (the claim skips it too)
            continue
        found = devices.viability(record, task.circuit, task.dialect)
        if found:
            refused.append((task, found))
    return QueueCheck(record, len(checked), len(queued) > MAX_QUEUED_CHECK, refused)
