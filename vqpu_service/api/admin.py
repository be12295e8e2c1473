"""/v1/admin: explicit recovery (REQUEUE, FORCE-FAIL) and the agents' liveness."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio
from fastapi import APIRouter

from vqpu_service.api.deps import Admin, Box
from vqpu_service.api.schemas import AdminAction, task_view

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post("/tasks/{task_id}/requeue")
async def requeue(task_id: str, body: AdminAction, who: Admin, box: Box) -> dict[str, Any]:
    task = await anyio.to_thread.run_sync(box.store.requeue, task_id, who.name, body.reason, datetime.now(UTC))
    box.work.notify()
    return task_view(task, box.settings.liveness_window_s, datetime.now(UTC))


@router.post("/tasks/{task_id}/force-fail")
async def force_fail(task_id: str, body: AdminAction, who: Admin, box: Box) -> dict[str, Any]:
    task = await anyio.to_thread.run_sync(box.store.force_fail, task_id, who.name, body.reason, datetime.now(UTC))
    return task_view(task, box.settings.liveness_window_s, datetime.now(UTC))


@router.get("/agents")
async def agents(who: Admin, box: Box) -> dict[str, Any]:
    return {"agents": await anyio.to_thread.run_sync(box.agents.agents, who, box.settings.liveness_window_s)}
