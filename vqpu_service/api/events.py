"""/v1/events (SSE with Last-Event-ID replay) and /v1/health."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from vqpu_protocol.api.admin import Health
from vqpu_protocol.limits import MAX_ID_CHARS, MAX_SERIAL
from vqpu_service import __version__
from vqpu_service.api.deps import Box, Who
from vqpu_service.api.routing import JsonRoute, errors, with_key
from vqpu_service.api.sse import event_stream, parse_last_event_id
from vqpu_service.domain.errors import InvalidRequest, Unavailable
from vqpu_service.domain.events import EventType
from vqpu_service.ports import EventFilter
from vqpu_service.services.tasks import readable_owner

router = APIRouter(tags=["events"], route_class=JsonRoute)


@router.get(
    "/v1/events",
    response_class=StreamingResponse,
    responses={
        **with_key(403),
        200: {
            "description": "server-sent events: `id`, `event` (the type) and `data` (the event as JSON) per event",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
    },
)
async def events(
    request: Request,
    who: Who,
    box: Box,
    task: Annotated[str | None, Query(max_length=MAX_ID_CHARS)] = None,
    device: Annotated[str | None, Query(max_length=MAX_ID_CHARS)] = None,
    type: Annotated[str | None, Query(max_length=1024, description="comma-separated event types")] = None,
    last_event_id: Annotated[int | None, Query(ge=0, le=MAX_SERIAL)] = None,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID", max_length=32)] = None,
) -> StreamingResponse:
    try:
        types = frozenset(EventType(t) for t in type.split(",")) if type else None
    except ValueError as exc:
        raise InvalidRequest(f"unknown event type in {type!r}; known: {[str(t) for t in EventType]}") from exc
    flt = EventFilter(task_id=task, device_id=device, types=types, owner=readable_owner(who))
    start = parse_last_event_id(last_event_id_header, last_event_id)
    stream = event_stream(
        box.events.after,
        box.broker,
        flt,
        start,
        keepalive_s=box.settings.sse_keepalive_s,
        maxsize=box.settings.sse_queue_size,
        is_disconnected=request.is_disconnected,
    )
    return StreamingResponse(stream, media_type="text/event-stream", headers={"Cache-Control": "no-store"})


@router.get("/v1/health", responses=errors(503))
async def health(box: Box) -> Health:
    if not box.ready:
        raise Unavailable("the service is starting")
    try:
        last = await anyio.to_thread.run_sync(box.events.last_id)
    except Exception as exc:  # any store failure means the same thing here: not healthy
        raise Unavailable(f"the database does not answer: {exc}") from exc
    return Health(status="ok", version=__version__, last_event_id=last)
