"""Read-only views that help a user see what a task ran and what a device change would do to the queue."""

from __future__ import annotations

from pydantic import Field

from vqpu_protocol.api.devices import ViolationView
from vqpu_protocol.limits import MAX_QUEUED_CHECK
from vqpu_protocol.pubs import Pubs
from vqpu_protocol.wire import Response


class TaskCircuit(Response):
    """GET /v1/tasks/{id}/circuit: the source as submitted, so a task can be resubmitted (replay): a
    circuit task's circuit, or a PUB task's PUBs as stored (resolved: every shots and precision given)."""

    task_id: str
    dialect: str
    circuit: str | None = Field(None, description="a circuit task's source; null for a PUB task")
    pubs: Pubs | None = Field(None, description="a PUB task's PUBs; null for a circuit task")


class RefusedTask(Response):
    """A QUEUED task that an epoch would not admit: a claim binding it would fail NOT_ADMISSIBLE_AT_CLAIM."""

    task_id: str
    admitted_epoch: int = Field(description="the epoch the task was admitted on at submission")
    violations: list[ViolationView]


class QueuedViolations(Response):
    """GET /v1/devices/{id}/epochs/{n}/queued-violations: the caller's QUEUED, unpinned tasks on the
    device (all of them for an admin), oldest first, that epoch n would refuse. One call stops after
    MAX_QUEUED_CHECK tasks or the server's byte budget of re-checked circuit source, whichever comes
    first, and says where: pass `next_after` back as `after` to go on."""

    device_id: str
    epoch: int
    sha256: str
    checked: int = Field(
        description=f"QUEUED unpinned tasks checked by this call, oldest first; at most {MAX_QUEUED_CHECK}"
    )
    truncated: bool = Field(description="the call stopped before the end of the queue: newer tasks were not checked")
    tasks: list[RefusedTask] = Field(description="the checked tasks this epoch would not admit, oldest first")
    checked_bytes: int = Field(
        0, description="circuit source this call re-checked; at most the budget (or one circuit, if larger)"
    )
    budget_bytes: int | None = Field(None, description="the server's budget of re-checked source per call")
    cached: int = Field(0, description="of `checked`, verdicts the server already knew (they cost nothing)")
    next_after: str | None = Field(
        None, description="with `truncated`: the last task checked; ask again with `after` set to it to go on"
    )
