"""/v1/admin: explicit recovery (REQUEUE, FORCE-FAIL), the agents' liveness, the accounting export."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Query, Response

from vqpu_protocol.api.admin import AdminAction, UsageGrouping, UsageReport
from vqpu_protocol.api.agent import AgentList
from vqpu_protocol.api.tasks import TaskView
from vqpu_service.api.deps import Admin, Box
from vqpu_service.api.routing import JsonRoute, with_body, with_key
from vqpu_service.api.tasks import TaskId
from vqpu_service.api.views import agent_view, task_view, usage_report
from vqpu_service.domain.usage import Grouping
from vqpu_service.services.usage import moment

router = APIRouter(prefix="/v1/admin", tags=["admin"], route_class=JsonRoute)


@router.post("/tasks/{task_id}/requeue", responses=with_body(403, 404, 409))
async def requeue(task_id: TaskId, who: Admin, box: Box, body: AdminAction | None = None) -> TaskView:
    reason = (body or AdminAction()).reason
    task = await anyio.to_thread.run_sync(box.tasks.requeue, who, task_id, reason)
    return task_view(task, box.settings.liveness_window_s, datetime.now(UTC))


@router.post("/tasks/{task_id}/force-fail", responses=with_body(403, 404, 409))
async def force_fail(task_id: TaskId, who: Admin, box: Box, body: AdminAction | None = None) -> TaskView:
    reason = (body or AdminAction()).reason
    task = await anyio.to_thread.run_sync(box.tasks.force_fail, who, task_id, reason)
    return task_view(task, box.settings.liveness_window_s, datetime.now(UTC))


@router.get("/agents", responses=with_key(403))
async def agents(who: Admin, box: Box) -> AgentList:
    found = await anyio.to_thread.run_sync(box.agents.agents, who)
    now = datetime.now(UTC)
    return AgentList(agents=[agent_view(a, now, box.settings.liveness_window_s) for a in found])


_MOMENT_CHARS = 64


@router.get(
    "/usage",
    responses={**with_key(403), 200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with format=csv"}},
    response_model=UsageReport,
)
async def usage(
    who: Admin,
    box: Box,
    since: Annotated[str, Query(max_length=_MOMENT_CHARS, description="ISO 8601, inclusive; no zone: UTC")],
    until: Annotated[str | None, Query(max_length=_MOMENT_CHARS, description="ISO 8601, exclusive; none: now")] = None,
    by: UsageGrouping = "owner",
    format: Literal["json", "csv"] = "json",
) -> UsageReport | Response:
    start, end = moment(since, "since"), None if until is None else moment(until, "until")
    report = usage_report(await anyio.to_thread.run_sync(box.usage.export, who, start, end, Grouping(by)))
    if format == "csv":
        return Response(report.csv(), media_type="text/csv")
    return report
