"""Request and response bodies (the wire contracts of DESIGN §5)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vqpu_service.domain.model import Claimed, Task

Id = Annotated[str, Field(min_length=1, max_length=128)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubmitTask(_Body):
    device: Id
    circuit: str = Field(min_length=1)
    dialect: Literal["qasm2", "qasm3"]
    shots: int
    seed: Annotated[int, Field(ge=0, lt=2**63)] | None = None
    epoch: Annotated[int, Field(ge=0)] | None = None
    tags: Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=32)] = []
    options: dict[str, Any] = {}


class Viability(_Body):
    circuit: str = Field(min_length=1)
    dialect: Literal["qasm2", "qasm3"]
    epoch: Annotated[int, Field(ge=0)] | None = None


class ClaimRequest(_Body):
    agent_id: Id
    max_tasks: Annotated[int, Field(ge=1, le=64)] = 1
    devices: list[Id] | None = None
    wait_s: Annotated[float, Field(ge=0, le=300)] = 0


class ReportBody(_Body):
    claim_token: Id
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None


class HeartbeatTask(_Body):
    id: Id
    claim_token: Id


class HeartbeatRequest(_Body):
    agent_id: Id
    tasks: Annotated[list[HeartbeatTask], Field(max_length=4096)] = []


class AdminAction(_Body):
    reason: Annotated[str, Field(min_length=1, max_length=500)] = "admin action"


def task_view(task: Task, window_s: float, now: Any) -> dict[str, Any]:
    return {
        "id": task.id,
        "owner": task.owner,
        "device": task.device_id,
        "dialect": task.dialect,
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
        "created_at": task.created_at.isoformat(),
        "updated_at": task.updated_at.isoformat(),
        "claimed_at": task.claimed_at.isoformat() if task.claimed_at else None,
        "finished_at": task.finished_at.isoformat() if task.finished_at else None,
    }


def claimed_view(c: Claimed) -> dict[str, Any]:
    t = c.task
    return {
        "task": {
            "id": t.id,
            "device": t.device_id,
            "circuit": t.circuit,
            "dialect": t.dialect,
            "shots": t.shots,
            "seed": t.seed,
            "options": t.options,
            "tags": t.tags,
            "epoch": t.bound_epoch,
            "snapshot_sha256": t.bound_sha256,
        },
        "snapshot": c.snapshot_json,
        "claim_token": c.claim_token,
        "attempt": c.attempt,
    }
