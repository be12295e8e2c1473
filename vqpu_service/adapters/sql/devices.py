"""Device epochs in SQL: every PUT/PATCH is a new immutable epoch; old epochs stay readable."""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime

from sqlmodel import Session, col, select

from device_registry import Snapshot
from vqpu_protocol.codes import ErrorCode
from vqpu_service.adapters.sql.schema import DeviceRow, EpochRow
from vqpu_service.domain.epochs import next_epoch
from vqpu_service.domain.errors import Conflict, NotFound
from vqpu_service.domain.events import NewEvent, device_registered, device_updated
from vqpu_service.ports import DeviceEpoch


class EpochCache:
    """Epochs never change once written, so (device, epoch) -> record may be kept for good (bounded)."""

    def __init__(self, size: int = 256) -> None:
        self._items: OrderedDict[tuple[str, int], DeviceEpoch] = OrderedDict()
        self._size = size

    def get(self, s: Session, device_id: str, epoch: int) -> DeviceEpoch:
        key = (device_id, epoch)
        hit = self._items.get(key)
        if hit is not None:
            self._items.move_to_end(key)
            return hit
        row = s.get(EpochRow, (device_id, epoch))
        if row is None:
            raise NotFound(f"device {device_id} has no epoch {epoch}", {"device_id": device_id, "epoch": epoch})
        record = DeviceEpoch(row.device_id, row.epoch, row.sha256, row.snapshot_json, row.created_at)
        self._items[key] = record
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        return record


def device_row(s: Session, device_id: str, *, lock: bool = False) -> DeviceRow:
    q = select(DeviceRow).where(DeviceRow.device_id == device_id)
    row = s.exec(q.with_for_update() if lock else q).first()
    if row is None:
        raise NotFound(f"unknown device {device_id!r}", {"device_id": device_id})
    return row


def register(s: Session, snapshot: Snapshot, now: datetime) -> tuple[EpochRow, list[NewEvent]]:
    if s.get(DeviceRow, snapshot.device_id) is not None:
        raise already_registered(snapshot.device_id)
    s.add(DeviceRow(device_id=snapshot.device_id, current_epoch=snapshot.epoch, created_at=now, updated_at=now))
    s.flush()
    row = _epoch_row(snapshot, now)
    s.add(row)
    return row, [device_registered(row.device_id, row.epoch, row.sha256, snapshot.num_qubits)]


def already_registered(device_id: str) -> Conflict:
    return Conflict(
        f"device {device_id} is already registered; PUT a new epoch instead",
        {"device_id": device_id},
        code=ErrorCode.DEVICE_EXISTS,
    )


def add_epoch(s: Session, device_id: str, snapshot: Snapshot, now: datetime) -> tuple[EpochRow, list[NewEvent]]:
    device = device_row(s, device_id, lock=True)
    previous = device.current_epoch
    last = s.exec(
        select(EpochRow.epoch).where(EpochRow.device_id == device_id).order_by(col(EpochRow.epoch).desc())
    ).first()
    snapshot = snapshot.with_epoch(next_epoch(previous, last), captured_at=snapshot.captured_at)
    row = _epoch_row(snapshot, now)
    s.add(row)
    device.current_epoch, device.updated_at = snapshot.epoch, now
    return row, [device_updated(row.device_id, row.epoch, row.sha256, previous)]


def _epoch_row(snapshot: Snapshot, now: datetime) -> EpochRow:
    return EpochRow(
        device_id=snapshot.device_id,
        epoch=snapshot.epoch,
        sha256=snapshot.sha256(),
        snapshot_json=snapshot.canonical_json().decode(),
        created_at=now,
    )


def to_record(row: EpochRow) -> DeviceEpoch:
    return DeviceEpoch(row.device_id, row.epoch, row.sha256, row.snapshot_json, row.created_at)
