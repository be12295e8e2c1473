"""The accounting export in SQL: one grouped aggregate over the usage columns, the same on both databases."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, case, cast, func
from sqlalchemy import select as sa_select
from sqlmodel import Session

from vqpu_service.adapters.sql.schema import TaskRow
from vqpu_service.domain.lifecycle import TaskState
from vqpu_service.domain.usage import Grouping, UsageTotals

_TERMINAL = [str(s) for s in TaskState if s.terminal]


def totals(s: Session, since: datetime, until: datetime, by: Grouping) -> list[UsageTotals]:
    t = TaskRow.__table__.c  # type: ignore[attr-defined]
    key = {Grouping.OWNER: t.owner, Grouping.DEVICE: t.device_id, Grouping.AGENT: t.agent_id}[by]
    q = (
        sa_select(
            key,
            func.count(),
            _count(t.state == str(TaskState.COMPLETED)),
            _count(t.state == str(TaskState.FAILED)),
            _count(t.state == str(TaskState.CANCELLED)),
            func.sum(t.usage_wall_s),
            func.sum(t.usage_cpu_s),
            func.sum(t.usage_gpu_s),
            func.max(t.usage_peak_rss_bytes),
            _count(t.usage_wall_s.is_(None)),
            _count(t.usage_measured_by == "agent"),
        )
        .where(t.state.in_(_TERMINAL), t.finished_at >= since, t.finished_at < until)
        .group_by(key)
    )
    found = [_totals(row) for row in s.connection().execute(q)]
    return sorted(found, key=lambda u: (u.key is None, u.key or ""))  # the databases order NULL differently


def _count(condition: Any) -> Any:
    return func.coalesce(func.sum(cast(case((condition, 1), else_=0), Integer)), 0)


def _totals(row: Any) -> UsageTotals:
    key, tasks, completed, failed, cancelled, wall, cpu, gpu, peak, none, agent = row
    return UsageTotals(
        key=key,
        tasks=int(tasks),
        completed=int(completed),
        failed=int(failed),
        cancelled=int(cancelled),
        wall_s=float(wall or 0.0),
        cpu_s=float(cpu or 0.0),
        gpu_s=float(gpu or 0.0),
        peak_rss_bytes=None if peak is None else int(peak),
        no_usage=int(none),
        agent_measured=int(agent),
    )
