"""The control plane's records as the protocol's response documents."""

from __future__ import annotations

from datetime import datetime

from device_registry import Snapshot
from device_registry.admissibility import Violation
from vqpu_protocol.api.admin import UsageReport, UsageRow
from vqpu_protocol.api.agent import AgentView, ClaimedTask, ClaimedTaskBody
from vqpu_protocol.api.devices import DeviceSummary, EpochView, ViolationView
from vqpu_protocol.api.tasks import EventView, TaskView
from vqpu_protocol.rundir import RunOptions
from vqpu_service.domain.events import Event
from vqpu_service.domain.model import Agent, Claimed, Task
from vqpu_service.ports import DeviceEpoch
from vqpu_service.services.pubs import parse as pubs_document
from vqpu_service.services.usage import UsageExport


def task_view(task: Task, window_s: float, now: datetime) -> TaskView:
    return TaskView.model_validate(
        {
            "id": task.id,
            "owner": task.owner,
            "device": task.device_id,
            "dialect": task.dialect,
            "kind": task.kind,
            "pubs": None if task.pubs is None else len(task.pubs["pubs"]),
            "shots": task.shots,
            "seed": task.seed,
            "tags": task.tags,
            "options": task.options,
            "state": str(task.state),
            "attempt": task.attempt,
            "epoch": task.pinned_epoch,
            "admitted_epoch": task.admitted_epoch,
            "bound_epoch": task.bound_epoch,
            "bound_sha256": task.bound_sha256,
            "agent_id": task.agent_id,
            "cancel_requested": task.cancel_requested,
            "stale": task.stale(now, window_s),
            "scheduler": task.scheduler,
            "error": task.error,
            "estimate": task.estimate,
            "usage": task.usage,
            "created_at": task.created_at.isoformat(),
            "updated_at": task.updated_at.isoformat(),
            "claimed_at": _iso(task.claimed_at),
            "finished_at": _iso(task.finished_at),
        }
    )


def claimed_view(c: Claimed) -> ClaimedTask:
    t = c.task
    assert t.bound_epoch is not None and t.bound_sha256 is not None  # set by the claim itself
    body = ClaimedTaskBody(
        id=t.id,
        device=t.device_id,
        circuit=t.circuit if t.pubs is None else None,
        pubs=None if t.pubs is None else pubs_document(t.pubs),
        dialect=t.dialect,
        shots=t.shots,
        seed=t.seed,
        options=RunOptions.model_validate(t.options),
        tags=t.tags,
        epoch=t.bound_epoch,
        snapshot_sha256=t.bound_sha256,
    )
    return ClaimedTask(task=body, snapshot=c.snapshot_json, claim_token=c.claim_token, attempt=c.attempt)


def event_view(event: Event) -> EventView:
    return EventView.model_validate(event.to_wire())


def epoch_view(record: DeviceEpoch) -> EpochView:
    return EpochView(
        device_id=record.device_id, epoch=record.epoch, sha256=record.sha256, created_at=record.created_at.isoformat()
    )


def device_summary(record: DeviceEpoch, snapshot: Snapshot) -> DeviceSummary:
    return DeviceSummary(
        **epoch_view(record).model_dump(),
        num_qubits=snapshot.num_qubits,
        native_gates=list(snapshot.native_gates),
        offline_qubits=sum(not q.online for q in snapshot.qubits),
        unavailable_edges=sum(not e.available for e in snapshot.edges),
    )


def violation_view(v: Violation) -> ViolationView:
    return ViolationView.model_validate(v.to_dict())


def agent_view(agent: Agent, now: datetime, window_s: float) -> AgentView:
    return AgentView(
        agent_id=agent.agent_id,
        first_seen=agent.first_seen.isoformat(),
        last_seen=agent.last_seen.isoformat(),
        lost=agent.lost or (now - agent.last_seen).total_seconds() > window_s,
    )


def usage_report(export: UsageExport) -> UsageReport:
    return UsageReport(
        since=export.since.isoformat(),
        until=export.until.isoformat(),
        by=export.by.value,
        rows=[UsageRow.model_validate(vars(t)) for t in export.rows],
    )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
