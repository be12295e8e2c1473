"""Devices: cached reads (TTL, invalidated at once by any mutation, D7), registration, new epochs, viability."""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from device_registry import Snapshot, SnapshotError, parse_snapshot
from device_registry.admissibility import Violation, check
from vqpu_service.adapters.cache import TTLCache
from vqpu_service.domain.errors import InvalidRequest
from vqpu_service.ports import DeviceEpoch, Store

QUBIT_FIELDS = {
    "status",
    "t1",
    "t2",
    "error_1q",
    "readout_error",
    "prob_meas0_prep1",
    "prob_meas1_prep0",
    "gate_durations",
}
EDGE_FIELDS = {"status", "error", "duration"}


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

    def register(self, data: dict[str, Any]) -> DeviceEpoch:
        record = self._store.register_device(_parse(data), _now())
        self.invalidate(record.device_id)
        return record

    def put(self, device_id: str, data: dict[str, Any]) -> DeviceEpoch:
        snapshot = _parse(data)
        if snapshot.device_id != device_id:
            raise InvalidRequest(f"the snapshot is for {snapshot.device_id!r}, not {device_id!r}")
        try:
            return self._store.new_epoch(device_id, snapshot, _now())
        finally:
            self.invalidate(device_id)

    def patch(self, device_id: str, patch: dict[str, Any]) -> DeviceEpoch:
        current = self._store.current_epoch(device_id)  # never patch a cached copy
        data = current.snapshot().to_json_dict()
        _merge(data, patch)
        try:
            return self._store.new_epoch(device_id, _parse(data), _now())
        finally:
            self.invalidate(device_id)

    def viability(self, record: DeviceEpoch, circuit: str, dialect: str) -> list[Violation]:
        return check(circuit, dialect, self.snapshot(record))


def _parse(data: dict[str, Any]) -> Snapshot:
    try:
        return parse_snapshot(data)
    except SnapshotError as exc:
        raise InvalidRequest(f"invalid snapshot: {exc}", {"problems": exc.problems}, code="INVALID_SNAPSHOT") from exc


def _merge(data: dict[str, Any], patch: dict[str, Any]) -> None:
    unknown = set(patch) - {"qubits", "edges"}
    if unknown:
        raise InvalidRequest(f"PATCH may change qubits and edges only, not {sorted(unknown)}")
    qubits = {q["index"]: q for q in data["qubits"]}
    for change in _entries(patch, "qubits"):
        target = qubits.get(change.get("index"))
        if target is None:
            raise InvalidRequest(f"no qubit {change.get('index')!r} on {data['device_id']}")
        target.update(_fields(change, QUBIT_FIELDS, "index"))
    edges = {(e["source"], e["target"]): e for e in data["edges"]}
    for change in _entries(patch, "edges"):
        key = (change.get("source"), change.get("target"))
        target = edges.get(key) or (None if data.get("directed") else edges.get((key[1], key[0])))
        if target is None:
            raise InvalidRequest(f"no edge {key} on {data['device_id']}")
        target.update(_fields(change, EDGE_FIELDS, "source", "target"))


def _entries(patch: dict[str, Any], key: str) -> list[dict[str, Any]]:
    entries = patch.get(key, [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InvalidRequest(f"{key} must be a list of objects")
    return entries


def _fields(change: dict[str, Any], allowed: set[str], *keys: str) -> dict[str, Any]:
    fields = {k: v for k, v in change.items() if k not in keys}
    extra = set(fields) - allowed
    if extra:
        raise InvalidRequest(f"cannot patch {sorted(extra)}; allowed: {sorted(allowed)}")
    return fields


def _now() -> datetime:
    return datetime.now(UTC)
