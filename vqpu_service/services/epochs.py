"""Device registration and new epochs, each one unit of work: every change to a device is a new immutable
epoch (`domain.epochs`), recorded with its DEVICE_REGISTERED or DEVICE_UPDATED event."""

from __future__ import annotations

from datetime import datetime

from device_registry import Snapshot
from vqpu_service.domain.epochs import device_exists, next_epoch
from vqpu_service.domain.errors import NotFound
from vqpu_service.domain.events import device_registered, device_updated
from vqpu_service.ports import DeviceEpoch, KeyTaken, Store


def register(store: Store, snapshot: Snapshot, now: datetime) -> DeviceEpoch:
    """A new device at the snapshot's epoch; Conflict (DEVICE_EXISTS) if the id is taken."""
    try:
        with store.unit(now) as uow:
            if uow.devices.current(snapshot.device_id) is not None:
                raise device_exists(snapshot.device_id)
            record = _record(snapshot, now)
            uow.devices.add(record, new_device=True)
            uow.record([device_registered(record.device_id, record.epoch, record.sha256, snapshot.num_qubits)])
            return record
    except KeyTaken:  # a concurrent registration the ordering lock did not cover: the key decided
        raise device_exists(snapshot.device_id) from None


def new_epoch(store: Store, device_id: str, snapshot: Snapshot, now: datetime) -> DeviceEpoch:
    """Store `snapshot` as the device's next epoch (its epoch field is set here) and make it current."""
    with store.unit(now) as uow:
        previous = uow.devices.current(device_id)
        if previous is None:
            raise NotFound(f"unknown device {device_id!r}", {"device_id": device_id})
        numbered = snapshot.with_epoch(next_epoch(previous, uow.devices.last(device_id)), snapshot.captured_at)
        record = _record(numbered, now)
        uow.devices.add(record, new_device=False)
        uow.record([device_updated(device_id, record.epoch, record.sha256, previous)])
        return record


def _record(snapshot: Snapshot, now: datetime) -> DeviceEpoch:
    return DeviceEpoch(snapshot.device_id, snapshot.epoch, snapshot.sha256(), snapshot.canonical_json().decode(), now)
