"""/v1/devices: current snapshots (TTL-cached), epochs, viability; admin registration and new epochs."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Path, Query, Response

from device_registry import Snapshot
from vqpu_protocol.api.devices import (
    DeviceList,
    DevicePatch,
    EpochList,
    EpochView,
    LimitRefusal,
    Viability,
    ViabilityView,
)
from vqpu_protocol.api.inspect import QueuedViolations, RefusedTask
from vqpu_protocol.codes import ErrorCode
from vqpu_protocol.limits import MAX_ID_CHARS, MAX_SERIAL
from vqpu_service.api.deps import Admin, Box, Who
from vqpu_service.api.errors import INVALID_CODE
from vqpu_service.api.routing import JsonRoute, with_body, with_key
from vqpu_service.api.views import device_summary, epoch_view, violation_view
from vqpu_service.ports import DeviceEpoch
from vqpu_service.services.queue_check import QueueCheck

router = APIRouter(prefix="/v1/devices", tags=["devices"], route_class=JsonRoute)
DeviceId = Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)]
Epoch = Annotated[int, Path(ge=0, le=MAX_SERIAL)]
_SNAPSHOT: dict[int | str, dict[str, Any]] = {
    200: {
        "model": Snapshot,
        "description": "the vqpu.snapshot/1 document, byte for byte as stored (canonical JSON)",
        "headers": {
            "X-VQPU-Epoch": {"description": "the epoch", "schema": {"type": "integer"}},
            "ETag": {"description": "the snapshot's sha256, quoted", "schema": {"type": "string"}},
        },
    }
}
_SNAPSHOT_BODY: dict[str, Any] = {INVALID_CODE: ErrorCode.INVALID_SNAPSHOT.value}


@router.get("", responses=with_key())
async def list_devices(who: Who, box: Box) -> DeviceList:
    records = await anyio.to_thread.run_sync(box.devices.all_current)
    return DeviceList(devices=[device_summary(r, box.devices.snapshot(r)) for r in records])


@router.get("/{device_id}", response_class=Response, responses={**with_key(404), **_SNAPSHOT})
async def current(device_id: DeviceId, who: Who, box: Box) -> Response:
    return _snapshot(await anyio.to_thread.run_sync(box.devices.current, device_id))


@router.get("/{device_id}/epochs", responses=with_key(404))
async def epochs(device_id: DeviceId, who: Who, box: Box) -> EpochList:
    rows = await anyio.to_thread.run_sync(box.devices.epochs, device_id)
    return EpochList.model_validate(
        {"device_id": device_id, "epochs": [{"epoch": e, "sha256": s, "created_at": t.isoformat()} for e, s, t in rows]}
    )


@router.get("/{device_id}/epochs/{epoch}", response_class=Response, responses={**with_key(404), **_SNAPSHOT})
async def epoch(device_id: DeviceId, epoch: Epoch, who: Who, box: Box) -> Response:
    return _snapshot(await anyio.to_thread.run_sync(box.devices.epoch, device_id, epoch))


@router.get("/{device_id}/epochs/{epoch}/queued-violations", responses=with_key(403, 404))
async def queued_violations(
    device_id: DeviceId,
    epoch: Epoch,
    who: Who,
    box: Box,
    after: Annotated[str | None, Query(min_length=1, max_length=MAX_ID_CHARS)] = None,
) -> QueuedViolations:
    """The QUEUED tasks that bind at claim and that this epoch would refuse (a user's own; all for an
    admin; 403 to an agent), oldest first, after the task `after` when given. Bounded: see the
    response's `truncated` and `next_after`."""
    budget = box.settings.queued_check_bytes

    def run() -> QueueCheck:
        return box.queue.refused_by(who, device_id, epoch, after=after, budget_bytes=budget)

    found = await anyio.to_thread.run_sync(run)
    return QueuedViolations(
        device_id=device_id,
        epoch=found.record.epoch,
        sha256=found.record.sha256,
        checked=found.checked,
        truncated=found.truncated,
        tasks=[
            RefusedTask(task_id=t.task_id, admitted_epoch=t.admitted_epoch, violations=[violation_view(v) for v in vs])
            for t, vs in found.refused
        ],
        checked_bytes=found.checked_bytes,
        budget_bytes=budget,
        cached=found.cached,
        next_after=found.next_after,
    )


@router.post("/{device_id}/viability", responses=with_body(404))
async def viability(device_id: DeviceId, body: Viability, who: Who, box: Box) -> ViabilityView:
    def run() -> ViabilityView:
        found = box.tasks.viability(who, device_id, body)
        refusal = found.refusal
        return ViabilityView(
            device_id=device_id,
            epoch=found.record.epoch,
            sha256=found.record.sha256,
            admissible=not found.violations and refusal is None,
            violations=[violation_view(v) for v in found.violations],
            price=found.price,
            refusal=None
            if refusal is None
            else LimitRefusal(code=str(refusal.code), message=refusal.message, detail=refusal.detail or {}),
        )

    return await anyio.to_thread.run_sync(run)


@router.post("", status_code=201, responses=with_body(403, 409), openapi_extra=_SNAPSHOT_BODY)
async def register(snapshot: Snapshot, who: Admin, box: Box) -> EpochView:
    return epoch_view(await anyio.to_thread.run_sync(box.devices.register, snapshot))


@router.put("/{device_id}", responses=with_body(403, 404), openapi_extra=_SNAPSHOT_BODY)
async def put(device_id: DeviceId, snapshot: Snapshot, who: Admin, box: Box) -> EpochView:
    return epoch_view(await anyio.to_thread.run_sync(box.devices.put, device_id, snapshot))


@router.patch("/{device_id}", responses=with_body(403, 404))
async def patch(device_id: DeviceId, change: DevicePatch, who: Admin, box: Box) -> EpochView:
    return epoch_view(await anyio.to_thread.run_sync(box.devices.patch, device_id, change))


def _snapshot(record: DeviceEpoch) -> Response:
    return Response(
        record.snapshot_json,
        media_type="application/json",
        headers={"X-VQPU-Epoch": str(record.epoch), "ETag": f'"{record.sha256}"'},
    )
