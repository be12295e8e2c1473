"""/v1/tasks: submit, read, list, result, cancel, and a task's events."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse

from vqpu_service.api.deps import Box, Who
from vqpu_service.api.schemas import SubmitTask, task_view
from vqpu_service.domain.errors import InvalidRequest
from vqpu_service.domain.lifecycle import TaskState
from vqpu_service.ports import EventFilter

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])


@router.post("", status_code=201)
async def submit(
    body: SubmitTask, who: Who, box: Box, idempotency_key: Annotated[str | None, Header(max_length=200)] = None
) -> JSONResponse:
    task, created = await anyio.to_thread.run_sync(box.tasks.submit, who, body.model_dump(), idempotency_key)
    return JSONResponse(_view(box, task), status_code=201 if created else 200)


@router.get("")
async def list_tasks(
    who: Who,
    box: Box,
    state: TaskState | None = None,
    device: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> dict[str, Any]:
    after = _decode(cursor)
    tasks = await anyio.to_thread.run_sync(box.tasks.list_tasks, who, state, device, limit, after)
    next_cursor = _encode(tasks[-1].seq) if len(tasks) == limit else None
    return {"tasks": [_view(box, t) for t in tasks], "next_cursor": next_cursor}


@router.get("/{task_id}")
async def get(task_id: str, who: Who, box: Box) -> dict[str, Any]:
    return _view(box, await anyio.to_thread.run_sync(box.tasks.get, who, task_id))


@router.get("/{task_id}/result")
async def result(task_id: str, who: Who, box: Box) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(box.tasks.result, who, task_id)


@router.post("/{task_id}/cancel")
async def cancel(task_id: str, who: Who, box: Box) -> dict[str, Any]:
    return _view(box, await anyio.to_thread.run_sync(box.tasks.cancel, who, task_id))


@router.get("/{task_id}/events")
async def events(task_id: str, who: Who, box: Box) -> dict[str, Any]:
    await anyio.to_thread.run_sync(box.tasks.get, who, task_id)  # tenancy
    found = await anyio.to_thread.run_sync(box.store.events_after, 0, EventFilter(task_id=task_id), 10_000)
    return {"events": [e.to_wire() for e in found]}


def _view(box: Box, task: Any) -> dict[str, Any]:
    return task_view(task, box.settings.liveness_window_s, datetime.now(UTC))


def _encode(seq: int | None) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode()


def _decode(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        kind, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if kind != "seq":
            raise ValueError(kind)
        return int(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest("malformed cursor; pass back the next_cursor of a previous page") from exc
