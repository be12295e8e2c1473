"""Events: what happened, past tense, written in the same transaction as the change they record."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    TASK_SUBMITTED = "TASK_SUBMITTED"
    TASK_CLAIMED = "TASK_CLAIMED"
    TASK_SCHEDULED = "TASK_SCHEDULED"
    TASK_COMPLETED = "TASK_COMPLETED"
    TASK_FAILED = "TASK_FAILED"
    TASK_CANCEL_REQUESTED = "TASK_CANCEL_REQUESTED"
    TASK_CANCELLED = "TASK_CANCELLED"
    TASK_REQUEUED = "TASK_REQUEUED"
    TASK_STALE = "TASK_STALE"
    TASK_REPORT_REJECTED = "TASK_REPORT_REJECTED"
    DEVICE_REGISTERED = "DEVICE_REGISTERED"
    DEVICE_UPDATED = "DEVICE_UPDATED"
    AGENT_SEEN = "AGENT_SEEN"
    AGENT_LOST = "AGENT_LOST"


DEVICE_EVENTS = frozenset({EventType.DEVICE_REGISTERED, EventType.DEVICE_UPDATED})
"""Visible to every user; task events only to the task's owner (and admins)."""

WORK_AVAILABLE = frozenset({EventType.TASK_SUBMITTED, EventType.TASK_REQUEUED})
"""Events after which a waiting CLAIM may find work."""


@dataclass(frozen=True)
class NewEvent:
    type: EventType
    subject: str
    """`task:<id>`, `device:<id>` or `agent:<id>`."""
    data: dict[str, Any] = field(default_factory=dict)
    task_id: str | None = None
    device_id: str | None = None
    owner: str | None = None
    """The tenant allowed to see a task event; None: visible to every user (device events)."""


@dataclass(frozen=True)
class Event:
    id: int
    time: datetime
    type: EventType
    subject: str
    data: dict[str, Any]
    task_id: str | None
    device_id: str | None
    owner: str | None

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": self.time.isoformat(),
            "type": str(self.type),
            "subject": self.subject,
            "data": self.data,
        }


def task_event(type_: EventType, task_id: str, device_id: str, owner: str, **data: Any) -> NewEvent:
    return NewEvent(type_, f"task:{task_id}", data, task_id=task_id, device_id=device_id, owner=owner)


def agent_seen(agent_id: str) -> NewEvent:
    """An agent made its first request, or its first since it was found lost."""
    return NewEvent(EventType.AGENT_SEEN, f"agent:{agent_id}", {"agent_id": agent_id})


def agent_lost(agent_id: str, last_seen: datetime) -> NewEvent:
    """An agent was silent for longer than the liveness window."""
    data = {"agent_id": agent_id, "last_seen": last_seen.isoformat()}
    return NewEvent(EventType.AGENT_LOST, f"agent:{agent_id}", data)


def device_registered(device_id: str, epoch: int, sha256: str, num_qubits: int) -> NewEvent:
    return _device_event(EventType.DEVICE_REGISTERED, device_id, epoch, sha256, num_qubits=num_qubits)


def device_updated(device_id: str, epoch: int, sha256: str, previous_epoch: int) -> NewEvent:
    return _device_event(EventType.DEVICE_UPDATED, device_id, epoch, sha256, previous_epoch=previous_epoch)


def _device_event(type_: EventType, device_id: str, epoch: int, sha256: str, **data: Any) -> NewEvent:
    return NewEvent(type_, f"device:{device_id}", {"epoch": epoch, "sha256": sha256, **data}, device_id=device_id)
