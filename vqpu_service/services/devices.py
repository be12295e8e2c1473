"""Devices: cached reads (TTL, invalidated at once by any mutation, D7), registration, new epochs, viability."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from device_registry import Snapshot, SnapshotError, parse_snapshot
from device_registry.admissibility import DIALECTS, MAX_VIOLATIONS, CircuitStats, Violation, check
from device_registry.admissibility.checker import Checker
from vqpu_protocol.api.devices import DevicePatch
from vqpu_protocol.codes import ErrorCode
from vqpu_protocol.pubs import EstimatorPubs, SamplerPubs
from vqpu_service.adapters.cache import TTLCache
from vqpu_service.domain.errors import InvalidRequest
from vqpu_service.ports import DeviceEpoch, Store
from vqpu_service.services import epochs, pubs


@dataclass(frozen=True)
class Reading:
    """What one admissibility pass over a circuit found: its violations, its classical layout (each
    classical declaration's width in source order, 0 for a lone `bit c;`: what its results must look
    like) and its size (what it is priced from; None for a dialect the pass does not read)."""

    violations: list[Violation]
    classical: list[int]
    stats: CircuitStats | None


class DeviceService:
    def __init__(self, store: Store, ttl_s: float) -> None:
        self._store = store
        self._current: TTLCache[str, DeviceEpoch] = TTLCache(ttl_s)
        self._listing: TTLCache[str, list[DeviceEpoch]] = TTLCache(ttl_s)
        self._parsed: OrderedDict[str, Snapshot] = OrderedDict()
        self._lock = threading.Lock()

    def current(self, device_id: str) -> DeviceEpoch:
        return self._current.get(device_id, lambda: self._store.current_epoch(device_id))

    def all_current(self) -> list[DeviceEpoch]:
        return self._listing.get("*", self._store.devices)

    def epoch(self, device_id: str, epoch: int) -> DeviceEpoch:
        return self._store.epoch(device_id, epoch)

    def epochs(self, device_id: str) -> list[tuple[int, str, datetime]]:
        """(epoch, sha256, created_at) of every epoch of the device, oldest first."""
        return self._store.epochs(device_id)

    def snapshot(self, record: DeviceEpoch) -> Snapshot:
        """The parsed snapshot of an epoch; epochs are immutable, so parsed once per sha256."""
        with self._lock:
            hit = self._parsed.get(record.sha256)
            if hit is not None:
                self._parsed.move_to_end(record.sha256)
                return hit
        parsed = record.snapshot()
        with self._lock:
            self._parsed[record.sha256] = parsed
            if len(self._parsed) > 64:
                self._parsed.popitem(last=False)
        return parsed

    def invalidate(self, device_id: str | None = None) -> None:
        self._current.invalidate(device_id)
        self._listing.invalidate()

    def register(self, snapshot: Snapshot) -> DeviceEpoch:
        record = epochs.register(self._store, snapshot, _now())
        self.invalidate(record.device_id)
        return record

    def put(self, device_id: str, snapshot: Snapshot) -> DeviceEpoch:
        if snapshot.device_id != device_id:
            raise InvalidRequest(f"the snapshot is for {snapshot.device_id!r}, not {device_id!r}")
        try:
            return epochs.new_epoch(self._store, device_id, snapshot, _now())
        finally:
            self.invalidate(device_id)

    def patch(self, device_id: str, change: DevicePatch) -> DeviceEpoch:
        current = self._store.current_epoch(device_id)  # never patch a cached copy
        data = current.snapshot().to_json_dict()
        _merge(data, change)
        try:
            return epochs.new_epoch(self._store, device_id, _parse(data), _now())
        finally:
            self.invalidate(device_id)

    def viability(self, record: DeviceEpoch, circuit: str, dialect: str) -> list[Violation]:
        return check(circuit, dialect, self.snapshot(record))

    def admission(self, record: DeviceEpoch, circuit: str, dialect: str) -> Reading:
        if dialect not in DIALECTS:
            return Reading(self.viability(record, circuit, dialect), [], None)
        checker = Checker(circuit, dialect, self.snapshot(record), MAX_VIOLATIONS)
        violations = checker.run()
        return Reading(violations, list(checker.registers.classical.values()), checker.stats)

    def pubs_admission(
        self, record: DeviceEpoch, task_pubs: SamplerPubs | EstimatorPubs, dialect: str
    ) -> pubs.PubsReading:
        """`admission` for every PUB of a PUB task (`services.pubs`)."""
        return pubs.read(task_pubs, dialect, self.snapshot(record), MAX_VIOLATIONS)

    def pubs_viability(self, record: DeviceEpoch, task_pubs: dict[str, Any], dialect: str) -> list[Violation]:
        """`viability` of a stored PUB task's PUBs (`Task.pubs`)."""
        return pubs.violations(task_pubs, dialect, self.snapshot(record), MAX_VIOLATIONS)


def _parse(data: dict[str, Any]) -> Snapshot:
    try:
        return parse_snapshot(data)
    except SnapshotError as exc:
        raise InvalidRequest(
            f"invalid snapshot: {exc}", {"problems": exc.problems}, code=ErrorCode.INVALID_SNAPSHOT
        ) from exc


def _merge(data: dict[str, Any], change: DevicePatch) -> None:
    """Apply the fields a PATCH gave (explicit nulls included: null calibration means ideal)."""
    qubits = {q["index"]: q for q in data["qubits"]}
    for q in change.qubits:
        if q.index not in qubits:
            raise InvalidRequest(f"no qubit {q.index} on {data['device_id']}")
        qubits[q.index].update(q.model_dump(mode="json", exclude_unset=True, exclude={"index"}))
    edges = {(e["source"], e["target"]): e for e in data["edges"]}
    for e in change.edges:
        target = edges.get((e.source, e.target))
        if target is None and not data.get("directed"):
            target = edges.get((e.target, e.source))
        if target is None:
            raise InvalidRequest(f"no edge ({e.source}, {e.target}) on {data['device_id']}")
        target.update(e.model_dump(mode="json", exclude_unset=True, exclude={"source", "target"}))


def _now() -> datetime:
    return datetime.now(UTC)
