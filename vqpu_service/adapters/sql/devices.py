"""Device epochs in SQL: every PUT/PATCH is a new immutable epoch; old epochs stay readable."""

from __future__ import annotations

from collections import OrderedDict

from sqlmodel import Session, select

from vqpu_service.adapters.sql.schema import DeviceRow, EpochRow
from vqpu_service.domain.errors import NotFound
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


def to_record(row: EpochRow) -> DeviceEpoch:
    return DeviceEpoch(row.device_id, row.epoch, row.sha256, row.snapshot_json, row.created_at)
