"""/v1/admin and /v1/health."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Literal

from pydantic import Field

from vqpu_protocol.wire import Request, Response, SafeStr


class AdminAction(Request):
    reason: Annotated[SafeStr, Field(min_length=1, max_length=500)] = "admin action"


class Health(Response):
    status: str
    version: str
    last_event_id: int


UsageGrouping = Literal["owner", "device", "agent"]
USAGE_CSV_COLUMNS = (
    "key",
    "tasks",
    "completed",
    "failed",
    "cancelled",
    "wall_s",
    "cpu_s",
    "gpu_s",
    "peak_rss_bytes",
    "no_usage",
    "agent_measured",
)
"""The CSV export's header, in order: a `UsageRow`'s fields."""


class UsageRow(Response):
    key: str | None = Field(
        description="the owner, device or agent; null for tasks no agent held when they ended (by agent)"
    )
    tasks: int = Field(description="terminal tasks finished in the period")
    completed: int
    failed: int
    cancelled: int
    wall_s: float = Field(description="sum of the runs' wall seconds (the runner's, else the agent's clock)")
    cpu_s: float = Field(description="sum of the runs' core-seconds (user + system CPU of every thread)")
    gpu_s: float = Field(description="sum of the runs' seconds of GPU simulation")
    peak_rss_bytes: int | None = Field(description="the largest peak resident memory of one run; null: none reported")
    no_usage: int = Field(
        description="tasks without a usage record: never ran (cancelled queued), force-failed, or an older agent"
    )
    agent_measured: int = Field(description="tasks whose usage is only the agent's clock (the runner left no account)")


class UsageReport(Response):
    since: str = Field(description="the period's start (inclusive), ISO 8601")
    until: str = Field(description="the period's end (exclusive), ISO 8601")
    by: UsageGrouping
    rows: list[UsageRow]

    def csv(self) -> str:
        """The rows as CSV with a header line (`USAGE_CSV_COLUMNS`); an empty cell is null."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(USAGE_CSV_COLUMNS)
        for row in self.rows:
            values = row.model_dump()
            writer.writerow(["" if values[c] is None else values[c] for c in USAGE_CSV_COLUMNS])
        return out.getvalue()
