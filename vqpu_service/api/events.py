"""/v1/events (SSE with Last-Event-ID replay) and /v1/health."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from vqpu_service import __version__
from vqpu_service.api.deps import Box, Who
from vqpu_service.api.sse import event_stream, parse_last_event_id
from vqpu_service.domain.errors import InvalidRequest, Unavailable
from vqpu_service.domain.events import EventType
from vqpu_service.domain.model import Role
from vqpu_service.ports import EventFilter

router = APIRouter(tags=["events"])


@router.get("/v1/events", response_class=StreamingResponse)
async def events(
    request: Request,
    who: Who,
    box: Box,
    task: str | None = None,
    device: str | None = None,
    type: str | None = None,
    last_event_id: Annotated[int | None, Query(alias="last_event_id", ge=0)] = None,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    try:
        types = frozenset(EventType(t) for t in type.split(",")) if type else None
    except ValueError as exc:
        raise InvalidRequest(f"unknown event type in {type!r}; known: {[str(t) for t in EventType]}") from exc
    flt = EventFilter(task_id=task, device_id=device, types=types, owner=who.name if who.role is Role.USER else None)
    start = parse_last_event_id(last_event_id_header, last_event_id)
    stream = event_stream(
        box.store,
        box.broker,
        flt,
        start,
        keepalive_s=box.settings.sse_keepalive_s,
        maxsize=box.settings.sse_queue_size,
        is_disconnected=request.is_disconnected,
    )
    return StreamingResponse(stream, media_type="text/event-stream", headers={"Cache-Control": "no-store"})


@router.get("/v1/health")
async def health(box: Box) -> dict[str, Any]:
    if not box.ready:
        raise Unavailable("the service is starting")
    try:
        last = await anyio.to_thread.run_sync(box.store.last_event_id)
    except Exception as exc:  # any store failure means the same thing here: not healthy
        raise Unavailable(f"the database does not answer: {exc}") from exc
    return {"status": "ok", "version": __version__, "last_event_id": last}
