"""/v1/agent: the outbound-only agent protocol (D1): CLAIM long-poll, reports, heartbeats."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from vqpu_service.api.deps import Box, Who
from vqpu_service.api.schemas import ClaimRequest, HeartbeatRequest, ReportBody, claimed_view, task_view
from vqpu_service.domain.decisions import Outcome, Report
from vqpu_service.domain.errors import InvalidRequest
from vqpu_service.domain.lifecycle import Action

router = APIRouter(prefix="/v1/agent", tags=["agent"])
KINDS = {
    "running": Action.REPORT_RUNNING,
    "completed": Action.REPORT_COMPLETED,
    "failed": Action.REPORT_FAILED,
    "cancelled": Action.REPORT_CANCELLED,
}


@router.post("/claim", responses={204: {"description": "no work within wait_s"}})
async def claim(body: ClaimRequest, who: Who, box: Box) -> Response:
    claimed = await box.agents.claim(who, body.agent_id, body.max_tasks, body.devices, body.wait_s)
    if not claimed:
        return Response(status_code=204)
    return JSONResponse({"tasks": [claimed_view(c) for c in claimed]})


@router.post("/tasks/{task_id}/{kind}")
async def report(task_id: str, kind: str, body: ReportBody, who: Who, box: Box) -> JSONResponse:
    action = KINDS.get(kind)
    if action is None:
        raise InvalidRequest(f"unknown report {kind!r}; one of {sorted(KINDS)}", code="UNKNOWN_REPORT")
    if action is Action.REPORT_COMPLETED and not isinstance((body.result or {}).get("counts"), dict):
        raise InvalidRequest("a completed report carries result.counts")
    if action is Action.REPORT_FAILED and not (body.error and isinstance(body.error.get("code"), str)):
        raise InvalidRequest("a failed report carries error.code")
    rep = Report(
        action,
        body.claim_token,
        result=body.result if action is Action.REPORT_COMPLETED else None,
        error=body.error if action is Action.REPORT_FAILED else None,
        scheduler=body.scheduler,
    )
    task, outcome = await anyio.to_thread.run_sync(box.agents.report, who, task_id, rep)
    view: dict[str, Any] = task_view(task, box.settings.liveness_window_s, datetime.now(UTC))
    return JSONResponse({**view, "repeated": outcome is Outcome.REPEATED})


@router.post("/heartbeat")
async def heartbeat(body: HeartbeatRequest, who: Who, box: Box) -> dict[str, Any]:
    pairs = [(t.id, t.claim_token) for t in body.tasks]
    reply = await anyio.to_thread.run_sync(box.agents.heartbeat, who, body.agent_id, pairs)
    return {"cancel": reply.cancel, "fenced": reply.fenced}
