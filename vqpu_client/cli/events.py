"""One event as one line of text: what `vqpu watch` prints and what the progress display shows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from vqpu_protocol.api.tasks import EventView


def describe(event: EventView) -> str:
    """What happened, in words, from the event's type and data (unknown types: their data as key=value)."""
    d = event.data
    how = _DESCRIBE.get(event.type)
    return how(d) if how is not None else " ".join(f"{k}={v}" for k, v in sorted(d.items()))


def line(event: EventView) -> str:
    """`12:00:01.250  #42  TASK_CLAIMED  task:t-1  claimed by site-agent (attempt 1, epoch 0)`."""
    return f"{_clock(event.time)}  #{event.id}  {event.type}  {event.subject}  {describe(event)}".rstrip()


def _clock(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).strftime("%H:%M:%S.%f")[:-3]
    except ValueError:
        return iso


def _submitted(d: dict[str, Any]) -> str:
    pinned = d.get("epoch")
    return f"queued, {d.get('shots')} shots" + (f", pinned to epoch {pinned}" if pinned is not None else "")


def _claimed(d: dict[str, Any]) -> str:
    return f"claimed by {d.get('agent_id')} (attempt {d.get('attempt')}, epoch {d.get('epoch')})"


def _scheduled(d: dict[str, Any]) -> str:
    s = d.get("scheduler") or {}
    parts = [str(s.get("adapter") or "scheduler")]
    parts += [f"{name} {s[name]}" for name in ("job_id", "node", "worker", "state") if s.get(name) is not None]
    return "scheduled: " + ", ".join(parts)


def _failed(d: dict[str, Any]) -> str:
    error = d.get("error") or {}
    return f"failed: {error.get('code')}: {error.get('message')}" + (f" (by {d['by']})" if d.get("by") else "")


def _by(what: str) -> Any:
    return lambda d: f"{what} by {d.get('by')}" + (f": {d['reason']}" if d.get("reason") else "")


_DESCRIBE: dict[str, Any] = {
    "TASK_SUBMITTED": _submitted,
    "TASK_CLAIMED": _claimed,
    "TASK_SCHEDULED": _scheduled,
    "TASK_COMPLETED": lambda d: f"completed (attempt {d.get('attempt')})",
    "TASK_FAILED": _failed,
    "TASK_CANCEL_REQUESTED": _by("cancel requested"),
    "TASK_CANCELLED": _by("cancelled"),
    "TASK_REQUEUED": _by("requeued"),
    "TASK_STALE": lambda d: f"stale: no heartbeat from {d.get('agent_id')} since {d.get('last_heartbeat')}",
    "TASK_REPORT_REJECTED": lambda d: f"report rejected: {d.get('action')} {d.get('code')}: {d.get('reason')}",
    "DEVICE_REGISTERED": lambda d: f"registered at epoch {d.get('epoch')}, {d.get('num_qubits')} qubits",
    "DEVICE_UPDATED": lambda d: f"epoch {d.get('epoch')} (was {d.get('previous_epoch')})",
    "AGENT_SEEN": lambda d: f"agent {d.get('agent_id')} seen",
    "AGENT_LOST": lambda d: f"agent {d.get('agent_id')} lost (last seen {d.get('last_seen')})",
}
