"""/v1/admin: explicit recovery (REQUEUE, FORCE-FAIL) and the agents' liveness."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
from fastapi import APIRouter

from vqpu_protocol.api.admin import AdminAction
from vqpu_protocol.api.agent import AgentList
from vqpu_protocol.api.tasks import TaskView
from vqpu_service.api.deps import Admin, Box
from vqpu_service.api.routing import JsonRoute, with_body, with_key
from vqpu_service.api.tasks import TaskId
from vqpu_service.api.views import agent_view, task_view

router = APIRouter(prefix="/v1/admin", tags=["admin"], route_class=JsonRoute)


@router.post("/tasks/{task_id}/requeue", responses=with_body(403, 404, 409))
async def requeue(task_id: TaskId, who: Admin, box: Box, body: AdminAction | None = None) -> TaskView:
    reason = (body or AdminAction()).reason
    task = await anyio.to_thread.run_sync(box.store.requeue, task_id, who.name, reason, datetime.now(UTC))
    box.work.notify()
    return task_view(task, box.settings.liveness_window_s, datetime.now(UTC))


@router.post("/tasks/{task_id}/force-fail", responses=with_body(403, 404, 409))
async def force_fail(task_id: TaskId, who: Admin, box: Box, body: AdminAction | None = None) -> TaskView:
    reason = (body or AdminAction()).reason
    task = await anyio.to_thread.run_sync(box.store.force_fail, task_id, who.name, reason, datetime.now(UTC))
    return task_view(task, box.settings.liveness_window_s, datetime.now(UTC))


@router.get("/agents", responses=with_key(403))
async def agents(who: Admin, box: Box) -> AgentList:
    found = await anyio.to_thread.run_sync(box.agents.agents, who)
    now = datetime.now(UTC)
    return AgentList(agents=[agent_view(a, now, box.settings.liveness_window_s) for a in found])
