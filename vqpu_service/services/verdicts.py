"""Admissibility verdicts of stored tasks on device epochs, remembered in a bounded LRU.

A task's circuit never changes and an epoch is identified by its snapshot's sha256, so the verdict of
(task id, sha256) is decided once for good: the claim's re-check and the queued-violations inspection
share these, and neither pays twice for the same pair while it is remembered.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from device_registry.admissibility import Violation
from vqpu_service.domain.model import Task
from vqpu_service.ports import DeviceEpoch
from vqpu_service.services.devices import DeviceService

REMEMBERED = 2048
"""Verdicts kept. Most are empty (the task still fits); the worst holds MAX_VIOLATIONS (100) entries."""


class Verdicts:
    def __init__(self, devices: DeviceService, size: int) -> None:
        self._devices = devices
        self._size = size
        self._known: OrderedDict[tuple[str, str], tuple[Violation, ...]] = OrderedDict()
        self._lock = threading.Lock()  # claims and inspections run in worker threads

    def known(self, task_id: str, sha256: str) -> list[Violation] | None:
        """The remembered verdict, or None when it would have to be computed."""
        with self._lock:
            hit = self._known.get((task_id, sha256))
            if hit is None:
                return None
            self._known.move_to_end((task_id, sha256))
            return list(hit)

    def check(self, task: Task, record: DeviceEpoch) -> list[Violation]:
        """What `record` says of the task's circuit (or PUBs): remembered, else checked now and remembered."""
        hit = self.known(task.id, record.sha256)
        if hit is not None:
            return hit
        found = (
            self._devices.viability(record, task.circuit, task.dialect)
            if task.pubs is None
            else self._devices.pubs_viability(record, task.pubs, task.dialect)
        )
        with self._lock:
            self._known[(task.id, record.sha256)] = tuple(found)
            while len(self._known) > self._size:
                self._known.popitem(last=False)
        return found
