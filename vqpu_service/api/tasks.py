"""/v1/tasks: submit, read, list, result, cancel, and a task's events."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Path, Query, Response

from vqpu_protocol.api.inspect import TaskCircuit
from vqpu_protocol.api.tasks import EventList, SubmitTask, TaskPage, TaskView
from vqpu_protocol.limits import MAX_ID_CHARS, MAX_IDEMPOTENCY_KEY_CHARS, MAX_LIST_LIMIT, MAX_SERIAL
from vqpu_protocol.rundir import ResultDocument
from vqpu_service.api.deps import Box, Who
from vqpu_service.api.routing import JsonRoute, with_body, with_key
from vqpu_service.api.views import event_view, task_view
from vqpu_service.domain.errors import InvalidRequest
from vqpu_service.domain.lifecycle import TaskState
from vqpu_service.domain.model import Task
from vqpu_service.services.pubs import parse as pubs_document

router = APIRouter(prefix="/v1/tasks", tags=["tasks"], route_class=JsonRoute)
TaskId = Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)]
_CURSOR_CHARS = 64


@router.post(
    "",
    status_code=201,
    responses={
        **with_body(403, 404, 409, 422, 429),
        200: {"model": TaskView, "description": "an idempotent replay: the task this Idempotency-Key created"},
    },
)
async def submit(
    body: SubmitTask,
    response: Response,
    who: Who,
    box: Box,
    idempotency_key: Annotated[str | None, Header(max_length=MAX_IDEMPOTENCY_KEY_CHARS)] = None,
) -> TaskView:
    task, created = await anyio.to_thread.run_sync(box.tasks.submit, who, body, idempotency_key)
    if not created:
        response.status_code = 200
    return _view(box, task)


@router.get("", responses=with_key(403))
async def list_tasks(
    who: Who,
    box: Box,
    state: TaskState | None = None,
    device: Annotated[str | None, Query(max_length=MAX_ID_CHARS)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 100,
    cursor: Annotated[str | None, Query(max_length=_CURSOR_CHARS)] = None,
) -> TaskPage:
    after = _decode(cursor)
    tasks = await anyio.to_thread.run_sync(box.tasks.list_tasks, who, state, device, limit, after)
    next_cursor = _encode(tasks[-1].seq) if len(tasks) == limit else None
    return TaskPage(tasks=[_view(box, t) for t in tasks], next_cursor=next_cursor)


@router.get("/{task_id}", responses=with_key(404))
async def get(task_id: TaskId, who: Who, box: Box) -> TaskView:
    return _view(box, await anyio.to_thread.run_sync(box.tasks.get, who, task_id))


@router.get("/{task_id}/circuit", responses=with_key(404))
async def circuit(task_id: TaskId, who: Who, box: Box) -> TaskCircuit:
    """The circuit as submitted (to resubmit it, e.g. a replay pinned to the epoch it ran on), or a PUB task's
    PUBs as stored (resolved)."""
    task = await anyio.to_thread.run_sync(box.tasks.get, who, task_id)
    if task.pubs is not None:
        return TaskCircuit(task_id=task.id, dialect=task.dialect, pubs=pubs_document(task.pubs))
    return TaskCircuit(task_id=task.id, dialect=task.dialect, circuit=task.circuit)


@router.get("/{task_id}/result", responses=with_key(404, 409))
async def result(task_id: TaskId, who: Who, box: Box) -> ResultDocument:
    return await anyio.to_thread.run_sync(box.tasks.result, who, task_id)


@router.post("/{task_id}/cancel", responses=with_key(403, 404, 409))
async def cancel(task_id: TaskId, who: Who, box: Box) -> TaskView:
    return _view(box, await anyio.to_thread.run_sync(box.tasks.cancel, who, task_id))


@router.get("/{task_id}/events", responses=with_key(404))
async def events(task_id: TaskId, who: Who, box: Box) -> EventList:
    found = await anyio.to_thread.run_sync(box.tasks.events, who, task_id)
    return EventList(events=[event_view(e) for e in found])


def _view(box: Box, task: Task) -> TaskView:
    return task_view(task, box.settings.liveness_window_s, datetime.now(UTC))


def _encode(seq: int | None) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode()


def _decode(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        kind, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if kind != "seq" or not value.isdigit() or int(value) > MAX_SERIAL:
            raise ValueError(kind)
        return int(value)
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise InvalidRequest("malformed cursor; pass back the next_cursor of a previous page") from exc
