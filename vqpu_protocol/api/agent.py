"""/v1/agent: CLAIM, reports and heartbeats: the only requests an agent sends (outbound from the site)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from vqpu_protocol.api.tasks import SchedulerEvidence, TaskStateName, TaskView
from vqpu_protocol.errors import ErrorDocument
from vqpu_protocol.limits import (
    MAX_BYTES,
    MAX_CLAIM_BATCH,
    MAX_CLAIM_WAIT_S,
    MAX_HEARTBEAT_S,
    MAX_HEARTBEAT_TASKS,
    Dialect,
)
from vqpu_protocol.pubs import Pubs
from vqpu_protocol.rundir import ResultDocument, RunOptions, RuntimeLimit, RunUsage, TaskDocument
from vqpu_protocol.wire import Id, Request, Response, SafeStr


class SlotCapacity(Request):
    """What one of the agent's slots can hold, from its site file: admission refuses a task that no
    agent serving its device could run."""

    memory_bytes: Annotated[int, Field(ge=1, le=MAX_BYTES)] = Field(
        description="host memory of one slot (runner process)"
    )
    gpu_memory_bytes: Annotated[int, Field(ge=1, le=MAX_BYTES)] | None = Field(
        None, description="GPU memory of one slot, if any"
    )
    max_runtime_s: RuntimeLimit | None = Field(None, description="the site's wall-time ceiling for one task")


class ClaimRequest(Request):
    agent_id: Id
    max_tasks: Annotated[int, Field(ge=1, le=MAX_CLAIM_BATCH)] = 1
    devices: Annotated[list[Id], Field(max_length=256)] | None = Field(None, description="claim only these devices")
    wait_s: Annotated[float, Field(ge=0, le=MAX_CLAIM_WAIT_S)] = Field(
        0, description="long-poll: wait this long for work (capped by the server's max_claim_wait_s)"
    )
    capacity: SlotCapacity | None = Field(None, description="what one slot holds; absent from older agents")
    heartbeat_s: Annotated[float, Field(gt=0, le=MAX_HEARTBEAT_S)] | None = Field(
        None,
        description="how often this agent heartbeats: a claimed task it has not acknowledged (a heartbeat naming "
        "it with its claim token, or a report) within the server's claim_ack_window_s, and at least 3 of these "
        "intervals, goes back to QUEUED; absent (older agents): the server's liveness window",
    )


class ClaimedTaskBody(Response):
    id: str
    device: str
    circuit: str | None = None
    pubs: Pubs | None = None
    dialect: Dialect
    shots: int
    seed: int | None
    options: RunOptions
    tags: list[str]
    epoch: int = Field(description="the bound epoch")
    snapshot_sha256: str


class ClaimedTask(Response):
    task: ClaimedTaskBody
    snapshot: str = Field(description="the bound snapshot's canonical JSON: write it byte for byte as snapshot.json")
    claim_token: str
    attempt: int

    def task_document(self) -> TaskDocument:
        t = self.task
        return TaskDocument(
            task_id=t.id,
            attempt=self.attempt,
            circuit=t.circuit,
            pubs=t.pubs,
            dialect=t.dialect,
            shots=t.shots,
            seed=t.seed,
            snapshot_sha256=t.snapshot_sha256,
            options=t.options,
        )


class ClaimResponse(Response):
    tasks: list[ClaimedTask]


class RunningReport(Request):
    claim_token: Id
    scheduler: SchedulerEvidence | None = None


class CompletedReport(Request):
    claim_token: Id
    result: ResultDocument
    scheduler: SchedulerEvidence | None = None
    usage: RunUsage | None = Field(None, description="what the run used (accounting); absent from older agents")


class FailedReport(Request):
    claim_token: Id
    error: ErrorDocument
    scheduler: SchedulerEvidence | None = None
    usage: RunUsage | None = Field(None, description="what the run used (accounting); absent from older agents")


CancelSource = Literal["control-plane", "prefect"]
"""Where the cancel an agent confirms came from: the heartbeat reply (a user's or an admin's cancel
through the API), or Cancelling set on the task's flow run in Prefect (the site's operators' view)."""
MAX_ACTOR_CHARS = 200


class CancelledReport(Request):
    claim_token: Id
    scheduler: SchedulerEvidence | None = None
    usage: RunUsage | None = Field(None, description="what the run used (accounting); absent from older agents")
    requested_by: CancelSource | None = Field(
        None,
        description="where the cancel came from; `prefect` is recorded as the site operator's cancel "
        "(`by: operator`, `via: prefect`); absent: the owner's, as before",
    )
    actor: Annotated[SafeStr, Field(min_length=1, max_length=MAX_ACTOR_CHARS)] | None = Field(
        None, description="who asked, as the source names them (the Prefect user or client), for the record"
    )


class ReportAck(TaskView):
    repeated: bool = Field(description="true: the same terminal report was already applied; nothing changed")


class HeartbeatTask(Request):
    id: Id
    claim_token: Id


class HeartbeatRequest(Request):
    agent_id: Id
    tasks: Annotated[list[HeartbeatTask], Field(max_length=MAX_HEARTBEAT_TASKS)] = []


class HeartbeatReply(Response):
    cancel: list[str] = Field(description="stop these, then report them cancelled")
    fenced: list[str] = Field(description="no longer yours: stop these and report nothing")
    ended: dict[str, TaskStateName] = Field(
        default_factory=dict,
        description="ended by your own attempt (its terminal report was taken), with their state: nothing to "
        "stop or report; show that state (an agent back from a crash), never `fenced`",
    )


class AgentView(Response):
    agent_id: str
    first_seen: str
    last_seen: str
    lost: bool


class AgentList(Response):
    agents: list[AgentView]
