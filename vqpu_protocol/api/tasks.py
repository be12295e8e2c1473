"""/v1/tasks: submission, the task record, pages of tasks, a task's events."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from vqpu_protocol.errors import ErrorDocument
from vqpu_protocol.limits import MAX_CIRCUIT_BYTES, MAX_SHOTS, MAX_TAG_CHARS, MAX_TAGS, Dialect
from vqpu_protocol.pricing import Price
from vqpu_protocol.rundir import RunOptions, RunUsage, check_memory_shots
from vqpu_protocol.wire import Id, Request, Response, SafeStr, Seed, Serial

TaskStateName = Literal["QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"]
Circuit = Annotated[SafeStr, Field(min_length=1, max_length=MAX_CIRCUIT_BYTES, description="OpenQASM source")]


class SubmitTask(Request):
    device: Id = Field(description="a device id from GET /v1/devices")
    circuit: Circuit
    dialect: Dialect
    shots: Annotated[int, Field(ge=1, le=MAX_SHOTS)]
    seed: Seed | None = Field(None, description="fixes the simulation's randomness: same seed, same counts")
    epoch: Serial | None = Field(None, description="pin a past epoch (replay); absent: the epoch current at claim")
    tags: Annotated[list[Annotated[SafeStr, Field(max_length=MAX_TAG_CHARS)]], Field(max_length=MAX_TAGS)] = []
    options: RunOptions = Field(default_factory=RunOptions)

    @field_validator("options")
    @classmethod
    def _memory_within_limits(cls, options: RunOptions, info: ValidationInfo) -> RunOptions:
        return check_memory_shots(options, info)


class SchedulerEvidence(Request):
    """Where the owner runs a task, as the scheduler reports it (all optional)."""

    adapter: Id | None = Field(None, description="the agent's scheduler adapter: dask, sbatch, memory, ...")
    job_id: Id | None = None
    node: Id | None = None
    worker: Annotated[SafeStr, Field(max_length=512)] | None = Field(None, description="e.g. a Dask worker address")
    state: Id | None = Field(None, description="the scheduler's own state name")
    exit_code: int | None = None


class TaskView(Response):
    id: str
    owner: str
    device: str
    dialect: str
    shots: int
    seed: int | None
    tags: list[str]
    options: RunOptions
    state: TaskStateName
    attempt: int
    epoch: int | None = Field(description="the epoch pinned at submission, if any")
    admitted_epoch: int
    bound_epoch: int | None
    bound_sha256: str | None
    agent_id: str | None
    cancel_requested: bool
    stale: bool = Field(description="RUNNING without a heartbeat within the liveness window (a flag, not a state)")
    scheduler: SchedulerEvidence | None
    error: ErrorDocument | None
    usage: RunUsage | None = Field(
        None, description="what the run used (a terminal task's; with `scheduler`: the job id and node), for accounting"
    )
    estimate: Price | None = Field(
        None, description="the price admission computed (docs/admission.md); null for a task stored before pricing"
    )
    created_at: str
    updated_at: str
    claimed_at: str | None
    finished_at: str | None


class TaskPage(Response):
    tasks: list[TaskView]
    next_cursor: str | None = Field(description="pass it back as ?cursor= for the next page; null on the last")


class EventView(Response):
    id: int
    time: str
    type: str
    subject: str
    data: dict[str, Any]


class EventList(Response):
    events: list[EventView]
