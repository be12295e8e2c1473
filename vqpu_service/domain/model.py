"""Records the control plane keeps: tasks, principals, agents. Plain dataclasses, no storage."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from vqpu_service.domain.lifecycle import TaskState


class Role(StrEnum):
    USER = "user"  # submits, reads and cancels its own tasks
    AGENT = "agent"  # claims, reports, heartbeats; never submits
    ADMIN = "admin"  # everything, plus devices and recovery


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


@dataclass(frozen=True)
class NewTask:
    """An admitted submission, ready to be stored as QUEUED."""

    owner: str
    device_id: str
    circuit: str
    dialect: str
    shots: int
    seed: int | None
    pinned_epoch: int | None
    admitted_epoch: int
    admitted_sha256: str
    tags: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    body_sha256: str | None = None
    classical_layout: list[int] | None = None
    """The circuit's classical declarations in source order: each register's width, 0 for a lone
    OpenQASM 3 `bit c;`. What a result's bitstrings are checked against (`domain.results`)."""
    estimate: dict[str, Any] | None = None
    """The task's price as admission computed it (memory, operations, wall time); None: not priced."""
    pubs: dict[str, Any] | None = None
    """A PUB task's PUBs, resolved (every sampler PUB's shots, every estimator PUB's precision given), as
    `vqpu_protocol.pubs` documents them; None for a circuit task (whose `circuit` is then "")."""
    pub_layouts: list[list[int]] | None = None
    """A PUB task's classical layout per PUB (see `classical_layout`): what each sampler PUB's counts
    are checked against."""


@dataclass
class Task:
    id: str
    seq: int
    owner: str
    device_id: str
    circuit: str
    dialect: str
    shots: int
    seed: int | None
    options: dict[str, Any]
    tags: list[str]
    pinned_epoch: int | None
    admitted_epoch: int
    admitted_sha256: str
    state: TaskState
    attempt: int
    created_at: datetime
    updated_at: datetime
    agent_id: str | None = None
    claim_token: str | None = None
    bound_epoch: int | None = None
    bound_sha256: str | None = None
    claimed_at: datetime | None = None
    heartbeat_at: datetime | None = None
    finished_at: datetime | None = None
    cancel_requested: bool = False
    stale_reported: bool = False
    scheduler: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    outcome_token: str | None = None
    outcome_digest: str | None = None
    idempotency_key: str | None = None
    body_sha256: str | None = None
    classical_layout: list[int] | None = None
    """See `NewTask`; None for a task stored before the layout was recorded (its widths go unchecked)."""
    estimate: dict[str, Any] | None = None
    """See `NewTask`; None for a task stored before admission priced tasks."""
    pubs: dict[str, Any] | None = None
    """See `NewTask`; None for a circuit task."""
    pub_layouts: list[list[int]] | None = None
    """See `NewTask`; None for a circuit task."""
    usage: dict[str, Any] | None = None
    """What its run used, from its terminal report (`vqpu_protocol.rundir.RunUsage`); None: not reported
    (it never ran, it was force-failed, or an older agent reported it)."""
    ack_deadline: datetime | None = None
    """RUNNING under a claim its owner has not acknowledged yet (no heartbeat naming it with its token, no
    report with it): the sweep takes the claim back at this time. None: acknowledged, or not RUNNING."""
    unacknowledged: int = 0
    """How many of its claims were taken back unacknowledged: attempts that never reached a live agent."""

    @property
    def attempts_run(self) -> int:
        """Its attempts that reached their agent, the one RUNNING now included: what max_attempts counts."""
        return self.attempt - self.unacknowledged

    @property
    def kind(self) -> str:
        """What it runs: `circuit`, or `sampler` or `estimator` PUBs."""
        return "circuit" if self.pubs is None else str(self.pubs["kind"])

    def stale(self, now: datetime, window_s: float) -> bool:
        """RUNNING without a heartbeat from its owner within the liveness window (a flag, never a state)."""
        if self.state is not TaskState.RUNNING:
            return False
        last = self.heartbeat_at or self.claimed_at or self.updated_at
        return (now - last).total_seconds() > window_s


@dataclass(frozen=True)
class Claimed:
    """One task handed to an agent: the task, its bound snapshot (canonical JSON), token and attempt."""

    task: Task
    snapshot_json: str
    claim_token: str
    attempt: int


@dataclass(frozen=True)
class HeartbeatReply:
    cancel: list[str]
    """Tasks whose cancel was requested: the owner should stop them and report `cancelled`."""
    fenced: list[str]
    """Tasks the agent named whose claim token is no longer current: stop them, report nothing."""
    ended: dict[str, str] = field(default_factory=dict)
    """Tasks the agent named that this very attempt ended (its terminal report was taken), with their state:
    what an agent restarting after a crash must mirror, not mistake for a fenced attempt."""


@dataclass(frozen=True)
class SlotCapacity:
    """What one of an agent's slots can hold, as its last claim declared it."""

    memory_bytes: int
    gpu_memory_bytes: int | None = None
    max_runtime_s: float | None = None


@dataclass(frozen=True)
class Agent:
    agent_id: str
    first_seen: datetime
    last_seen: datetime
    lost: bool
    capacity: SlotCapacity | None = None
    """None: the agent has not declared one (an older agent)."""
    devices: tuple[str, ...] | None = None
    """The devices its last claim asked for; None: any device."""
