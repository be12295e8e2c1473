"""/v1/tasks: submission, the task record, pages of tasks, a task's events."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from vqpu_protocol.errors import ErrorDocument
from vqpu_protocol.limits import MAX_CIRCUIT_BYTES, MAX_MEMORY_SHOTS, MAX_SHOTS, MAX_TAG_CHARS, MAX_TAGS, Dialect
from vqpu_protocol.pricing import Price
from vqpu_protocol.pubs import EstimatorPubs, Pubs, SamplerPubs, sampled_shots
from vqpu_protocol.rundir import RunOptions, RunUsage, check_memory_shots
from vqpu_protocol.wire import Id, Request, Response, SafeStr, Seed, Serial

TaskStateName = Literal["QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"]
Circuit = Annotated[SafeStr, Field(min_length=1, max_length=MAX_CIRCUIT_BYTES, description="OpenQASM source")]


class SubmitTask(Request):
    device: Id = Field(description="a device id from GET /v1/devices")
    circuit: Circuit | None = Field(None, description="the circuit of a circuit task; absent: `pubs` says what runs")
    pubs: Pubs | None = Field(
        None,
        description="Sampler or Estimator PUBs run as one task (docs/api.md); exclusive with `circuit`",
    )
    dialect: Dialect
    shots: Annotated[int, Field(ge=1, le=MAX_SHOTS)] | None = Field(
        None,
        description="a circuit task's shots (required); a sampler task's default shots per PUB; "
        "refused on an estimator task (its PUBs give a precision)",
    )
    seed: Seed | None = Field(None, description="fixes the simulation's randomness: same seed, same counts")
    epoch: Serial | None = Field(None, description="pin a past epoch (replay); absent: the epoch current at claim")
    tags: Annotated[list[Annotated[SafeStr, Field(max_length=MAX_TAG_CHARS)]], Field(max_length=MAX_TAGS)] = []
    options: RunOptions = Field(default_factory=RunOptions)

    @field_validator("options")
    @classmethod
    def _memory_within_limits(cls, options: RunOptions, info: ValidationInfo) -> RunOptions:
        return check_memory_shots(options, info)

    @model_validator(mode="after")
    def _circuit_or_pubs(self) -> SubmitTask:
        check_task_kind(self.circuit, self.pubs, self.shots, self.options)
        return self


def check_task_kind(
    circuit: str | None, pubs: SamplerPubs | EstimatorPubs | None, shots: int | None, options: RunOptions
) -> None:
    """A task runs a circuit or PUBs, never both; a circuit task gives shots, an estimator task none."""
    if (circuit is None) == (pubs is None):
        raise ValueError("give either `circuit` or `pubs`" if circuit is None else "give `circuit` or `pubs`, not both")
    if circuit is not None and shots is None:
        raise ValueError("a circuit task needs `shots`")
    kind = None if pubs is None else pubs.kind
    if kind == "estimator" and shots is not None:
        raise ValueError("an estimator task takes no `shots`: each PUB gives a precision")
    if kind == "estimator" and options.memory:
        raise ValueError(
            "per-shot memory (`options.memory`) is for circuit and sampler tasks: an estimator samples none"
        )
    if kind == "sampler" and options.memory:
        assert pubs is not None
        sampled = sampled_shots(pubs, shots)
        if sampled > MAX_MEMORY_SHOTS:
            raise ValueError(
                f"per-shot memory is limited to {MAX_MEMORY_SHOTS} shots; the PUBs sample {sampled} in all"
            )


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
    kind: Literal["circuit", "sampler", "estimator"] = Field(
        "circuit", description="what the task runs: one circuit, or Sampler or Estimator PUBs"
    )
    pubs: int | None = Field(None, description="how many PUBs a PUB task holds; null for a circuit task")
    shots: int = Field(
        description="shots sampled: a circuit task's; a sampler task's over all PUBs and bindings; 0 for estimators"
    )
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
