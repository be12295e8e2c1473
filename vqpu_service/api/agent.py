"""/v1/agent: the outbound-only agent protocol (D1): CLAIM long-poll, reports, heartbeats."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import anyio
from fastapi import APIRouter, Request, Response

from vqpu_protocol.api.agent import (
    CancelledReport,
    ClaimRequest,
    ClaimResponse,
    CompletedReport,
    FailedReport,
    HeartbeatReply,
    HeartbeatRequest,
    ReportAck,
    RunningReport,
    SlotCapacity,
)
from vqpu_service.api.deps import Box, Who
from vqpu_service.api.hangup import watched
from vqpu_service.api.routing import JsonRoute, with_body
from vqpu_service.api.tasks import TaskId
from vqpu_service.api.views import claimed_view, task_view
from vqpu_service.domain.decisions import Outcome, Report
from vqpu_service.domain.errors import InvalidRequest
from vqpu_service.domain.lifecycle import Action
from vqpu_service.domain.model import SlotCapacity as Capacity
from vqpu_service.services.claims import Claimant

router = APIRouter(prefix="/v1/agent", tags=["agent"], route_class=JsonRoute)
_REPORTS = with_body(403, 404, 409)


@router.post(
    "/claim",
    responses={**with_body(403), 204: {"description": "no work arrived within wait_s"}},
    response_model=ClaimResponse,
)
async def claim(body: ClaimRequest, who: Who, box: Box, request: Request) -> ClaimResponse | Response:
    async with watched(request) as connection:
        claimant = Claimant(body.agent_id, _capacity(body.capacity), body.heartbeat_s, connection.gone)
        claimed = await box.agents.claim(who, claimant, body.max_tasks, body.devices, body.wait_s)
    if not claimed:
        return Response(status_code=204)
    return ClaimResponse(tasks=[claimed_view(c) for c in claimed])


@router.post("/tasks/{task_id}/running", responses=_REPORTS)
async def running(task_id: TaskId, body: RunningReport, who: Who, box: Box) -> ReportAck:
    return await _report(box, who, task_id, Report(Action.REPORT_RUNNING, body.claim_token, scheduler=_dump(body)))


@router.post("/tasks/{task_id}/completed", responses={**_REPORTS, 422: with_body(422)[422]})
async def completed(task_id: TaskId, body: CompletedReport, who: Who, box: Box) -> ReportAck:
    result = body.result.model_dump(mode="json", by_alias=True)
    return await _report(
        box,
        who,
        task_id,
        Report(Action.REPORT_COMPLETED, body.claim_token, result=result, scheduler=_dump(body), usage=_usage(body)),
    )


@router.post("/tasks/{task_id}/failed", responses=_REPORTS)
async def failed(task_id: TaskId, body: FailedReport, who: Who, box: Box) -> ReportAck:
    error = body.error.model_dump(mode="json")
    rep = Report(Action.REPORT_FAILED, body.claim_token, error=error, scheduler=_dump(body), usage=_usage(body))
    return await _report(box, who, task_id, rep)


@router.post("/tasks/{task_id}/cancelled", responses=_REPORTS)
async def cancelled(task_id: TaskId, body: CancelledReport, who: Who, box: Box) -> ReportAck:
    rep = Report(
        Action.REPORT_CANCELLED,
        body.claim_token,
        scheduler=_dump(body),
        usage=_usage(body),
        requested_by=body.requested_by,
        actor=body.actor,
    )
    return await _report(box, who, task_id, rep)


@router.post("/heartbeat", responses=with_body(403))
async def heartbeat(body: HeartbeatRequest, who: Who, box: Box) -> HeartbeatReply:
    pairs = [(t.id, t.claim_token) for t in body.tasks]
    reply = await anyio.to_thread.run_sync(box.agents.heartbeat, who, body.agent_id, pairs)
    return HeartbeatReply(cancel=reply.cancel, fenced=reply.fenced, ended=reply.ended)


async def _report(box: Box, who: Who, task_id: str, rep: Report) -> ReportAck:
    task, outcome = await anyio.to_thread.run_sync(box.agents.report, who, task_id, rep)
    view = task_view(task, box.settings.liveness_window_s, datetime.now(UTC))
    return ReportAck(**view.model_dump(), repeated=outcome is Outcome.REPEATED)


_STORABLE = 2**63 - 1
"""The largest byte count the agent table holds (a signed 64-bit column on both databases)."""


def _capacity(declared: SlotCapacity | None) -> Capacity | None:
    if declared is None:
        return None
    for name in ("memory_bytes", "gpu_memory_bytes"):
        if (getattr(declared, name) or 0) > _STORABLE:
            raise InvalidRequest(f"capacity.{name} is over {_STORABLE}", {"field": f"capacity.{name}"})
    return Capacity(declared.memory_bytes, declared.gpu_memory_bytes, declared.max_runtime_s)


def _usage(body: CompletedReport | FailedReport | CancelledReport) -> dict[str, Any] | None:
    """The report's usage as stored; numbers a database column cannot hold (infinite, over 64 bits) are refused."""
    if body.usage is None:
        return None
    usage = body.usage.model_dump(mode="json")
    for name in ("wall_s", "cpu_s", "gpu_s"):
        if usage[name] is not None and not math.isfinite(usage[name]):
            raise InvalidRequest(f"usage.{name} is not a finite number", {"field": f"usage.{name}"})
    if (usage["peak_rss_bytes"] or 0) > _STORABLE:
        raise InvalidRequest(f"usage.peak_rss_bytes is over {_STORABLE}", {"field": "usage.peak_rss_bytes"})
    return usage


def _dump(body: RunningReport | CompletedReport | FailedReport | CancelledReport) -> dict[str, Any] | None:
    return None if body.scheduler is None else body.scheduler.model_dump(mode="json", exclude_none=True)
