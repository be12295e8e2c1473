"""/v1/devices: current snapshots (TTL-cached), epochs, viability; admin registration and new epochs."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Body, Response

from vqpu_service.api.deps import Admin, Box, Who
from vqpu_service.api.schemas import Viability
from vqpu_service.ports import DeviceEpoch

router = APIRouter(prefix="/v1/devices", tags=["devices"])
SnapshotBody = Body(..., description="a vqpu.snapshot/1 document")


@router.get("")
async def list_devices(who: Who, box: Box) -> dict[str, Any]:
    records = await anyio.to_thread.run_sync(box.devices.all_current)
    return {"devices": [_summary(box, r) for r in records]}


@router.get("/{device_id}")
async def current(device_id: str, who: Who, box: Box) -> Response:
    return _snapshot(await anyio.to_thread.run_sync(box.devices.current, device_id))


@router.get("/{device_id}/epochs")
async def epochs(device_id: str, who: Who, box: Box) -> dict[str, Any]:
    rows = await anyio.to_thread.run_sync(box.store.epochs, device_id)
    return {
        "device_id": device_id,
        "epochs": [{"epoch": e, "sha256": s, "created_at": t.isoformat()} for e, s, t in rows],
    }


@router.get("/{device_id}/epochs/{epoch}")
async def epoch(device_id: str, epoch: int, who: Who, box: Box) -> Response:
    return _snapshot(await anyio.to_thread.run_sync(box.devices.epoch, device_id, epoch))


@router.post("/{device_id}/viability")
async def viability(device_id: str, body: Viability, who: Who, box: Box) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        record = box.devices.current(device_id) if body.epoch is None else box.devices.epoch(device_id, body.epoch)
        found = box.devices.viability(record, body.circuit, body.dialect)
        return {
            "device_id": device_id,
            "epoch": record.epoch,
            "sha256": record.sha256,
            "admissible": not found,
            "violations": [v.to_dict() for v in found],
        }

    return await anyio.to_thread.run_sync(run)


@router.post("", status_code=201)
async def register(who: Admin, box: Box, snapshot: dict[str, Any] = SnapshotBody) -> dict[str, Any]:
    return _epoch_view(await anyio.to_thread.run_sync(box.devices.register, snapshot))


@router.put("/{device_id}")
async def put(device_id: str, who: Admin, box: Box, snapshot: dict[str, Any] = SnapshotBody) -> dict[str, Any]:
    return _epoch_view(await anyio.to_thread.run_sync(box.devices.put, device_id, snapshot))


@router.patch("/{device_id}")
async def patch(device_id: str, who: Admin, box: Box, change: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
    return _epoch_view(await anyio.to_thread.run_sync(box.devices.patch, device_id, change))


def _snapshot(record: DeviceEpoch) -> Response:
    return Response(
        record.snapshot_json,
        media_type="application/json",
        headers={"X-VQPU-Epoch": str(record.epoch), "ETag": f'"{record.sha256}"'},
    )


def _epoch_view(record: DeviceEpoch) -> dict[str, Any]:
    return {
        "device_id": record.device_id,
        "epoch": record.epoch,
        "sha256": record.sha256,
        "created_at": record.created_at.isoformat(),
    }


def _summary(box: Box, record: DeviceEpoch) -> dict[str, Any]:
    s = box.devices.snapshot(record)
    return {
        **_epoch_view(record),
        "num_qubits": s.num_qubits,
        "native_gates": s.native_gates,
        "offline_qubits": sum(not q.online for q in s.qubits),
        "unavailable_edges": sum(not e.available for e in s.edges),
    }
