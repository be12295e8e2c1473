"""Rows <-> domain records."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from vqpu_service.adapters.sql.schema import AgentRow, EventRow, TaskRow
from vqpu_service.domain.events import Event, EventType
from vqpu_service.domain.lifecycle import TaskState
from vqpu_service.domain.model import Agent, SlotCapacity, Task

_TASK_FIELDS = [f.name for f in fields(Task)]
_MUTABLE = [name for name in _TASK_FIELDS if name not in ("id", "seq")]


def to_task(row: TaskRow) -> Task:
    values = {name: getattr(row, name) for name in _TASK_FIELDS}
    values["state"] = TaskState(row.state)
    values["options"] = dict(row.options or {})
    values["tags"] = list(row.tags or [])
    values["unacknowledged"] = row.unacknowledged or 0  # NULL in rows stored before it was counted
    return Task(**values)


def apply(row: TaskRow, task: Task) -> None:
    for name in _MUTABLE:
        value = getattr(task, name)
        if getattr(row, name) != value:
            setattr(row, name, str(value) if name == "state" else value)
            if name == "usage":
                _usage_columns(row, value or {})


def _usage_columns(row: TaskRow, usage: dict[str, Any]) -> None:
    """The usage's numbers in the columns the accounting export sums (NULL where not reported)."""
    row.usage_wall_s = usage.get("wall_s")
    row.usage_cpu_s = usage.get("cpu_s")
    row.usage_gpu_s = usage.get("gpu_s")
    row.usage_peak_rss_bytes = usage.get("peak_rss_bytes")
    row.usage_measured_by = usage.get("measured_by")


def to_event(row: EventRow) -> Event:
    assert row.id is not None
    return Event(
        row.id, row.time, EventType(row.type), row.subject, row.data or {}, row.task_id, row.device_id, row.owner
    )


def to_agent(row: AgentRow) -> Agent:
    capacity = (
        None if row.memory_bytes is None else SlotCapacity(row.memory_bytes, row.gpu_memory_bytes, row.max_runtime_s)
    )
    devices = None if row.devices is None else tuple(row.devices)
    return Agent(row.agent_id, row.first_seen, row.last_seen, row.lost, capacity, devices)


def declare(row: AgentRow, capacity: SlotCapacity | None, devices: list[str] | None) -> None:
    """Record what the agent's latest claim said it can hold and which devices it serves."""
    row.memory_bytes = None if capacity is None else capacity.memory_bytes
    row.gpu_memory_bytes = None if capacity is None else capacity.gpu_memory_bytes
    row.max_runtime_s = None if capacity is None else capacity.max_runtime_s
    row.devices = None if devices is None else sorted(set(devices))
