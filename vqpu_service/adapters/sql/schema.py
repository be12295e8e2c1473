"""Tables. Timestamps are stored as naive UTC and read back timezone-aware; JSON as the JSON type."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime reached the store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def _ts(nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def _json() -> Any:
    return Field(default=None, sa_column=Column(JSON, nullable=True))


class TaskRow(SQLModel, table=True):
    __tablename__ = "task"
    __table_args__ = (
        UniqueConstraint("owner", "idempotency_key", name="uq_task_idempotency"),
        Index("ix_task_state_seq", "state", "seq"),
        Index("ix_task_state_owner_seq", "state", "owner", "seq"),  # per-owner counts and claim candidates
        Index("ix_task_owner_seq", "owner", "seq"),
        Index("ix_task_device_state", "device_id", "state"),
        Index("ix_task_finished_at", "finished_at"),  # the accounting export's period
    )

    seq: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    id: str = Field(sa_column=Column(Text, unique=True, nullable=False))
    owner: str = Field(sa_column=Column(Text, nullable=False))
    device_id: str = Field(sa_column=Column(Text, nullable=False))
    circuit: str = Field(sa_column=Column(Text, nullable=False))
    dialect: str
    shots: int
    seed: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    options: Any = _json()
    tags: Any = _json()
    pinned_epoch: int | None = None
    admitted_epoch: int
    admitted_sha256: str
    state: str
    attempt: int = 0
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    agent_id: str | None = Field(default=None, index=True)
    claim_token: str | None = None
    bound_epoch: int | None = None
    bound_sha256: str | None = None
    claimed_at: datetime | None = _ts(nullable=True)
    heartbeat_at: datetime | None = _ts(nullable=True)
    finished_at: datetime | None = _ts(nullable=True)
    cancel_requested: bool = False
    stale_reported: bool = False
    scheduler: Any = _json()
    result: Any = _json()
    error: Any = _json()
    outcome_token: str | None = None
    outcome_digest: str | None = None
    idempotency_key: str | None = None
    body_sha256: str | None = None
    classical_layout: Any = _json()  # added after release: `upgrade` adds it to an existing table
    estimate: Any = _json()  # added after release
    pubs: Any = _json()  # added after release: a PUB task's resolved PUBs (NULL: a circuit task)
    pub_layouts: Any = _json()  # added after release: a PUB task's classical layout per PUB
    usage: Any = _json()  # added after release: what the run used, as its terminal report said
    # The usage's numbers again, as typed columns (added after release), so the accounting export sums
    # them in SQL, the same on both databases, without reading every task's JSON (rows.apply sets them).
    usage_wall_s: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    usage_cpu_s: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    usage_gpu_s: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    usage_peak_rss_bytes: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    usage_measured_by: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # A claim not yet acknowledged by its agent (added after release; NULL: acknowledged, or older rows).
    ack_deadline: datetime | None = _ts(nullable=True)
    unacknowledged: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))  # NULL: none


class DeviceRow(SQLModel, table=True):
    __tablename__ = "device"

    device_id: str = Field(primary_key=True)
    current_epoch: int
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class EpochRow(SQLModel, table=True):
    __tablename__ = "device_epoch"

    device_id: str = Field(primary_key=True, foreign_key="device.device_id")
    epoch: int = Field(primary_key=True)
    sha256: str
    snapshot_json: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = _ts()


class EventRow(SQLModel, table=True):
    __tablename__ = "event"

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    time: datetime = _ts()
    type: str = Field(index=True)
    subject: str
    task_id: str | None = Field(default=None, index=True)
    device_id: str | None = Field(default=None, index=True)
    owner: str | None = Field(default=None, index=True)
    data: Any = _json()


class AgentRow(SQLModel, table=True):
    __tablename__ = "agent"

    agent_id: str = Field(primary_key=True)
    first_seen: datetime = _ts()
    last_seen: datetime = _ts()
    lost: bool = False
    # What the agent's last claim declared (added after release; NULL: not declared).
    memory_bytes: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    gpu_memory_bytes: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    max_runtime_s: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    devices: Any = _json()  # the devices it claims for; NULL: any
