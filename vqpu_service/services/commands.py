"""The lifecycle commands on one task (report, cancel, requeue, force-fail), each one unit of work: load
the task locked, let `domain.decisions` change it, save it with the events it produced."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from vqpu_service.domain import decisions
from vqpu_service.domain.decisions import Outcome, Report
from vqpu_service.domain.errors import Fenced, IllegalTransition, InvalidResult
from vqpu_service.domain.events import NewEvent
from vqpu_service.domain.model import Task
from vqpu_service.ports import Store


def report(store: Store, task_id: str, rep: Report, now: datetime) -> tuple[Task, Outcome]:
    """Apply an owner's report; a refused one stores nothing of it, is kept as TASK_REPORT_REJECTED, and raises."""
    try:
        with store.unit(now) as uow:
            task = uow.tasks.get(task_id, lock=True)
            outcome, events = decisions.report(task, rep, now)
            uow.tasks.save(task)
            uow.record(events)
            return task, outcome
    except (IllegalTransition, Fenced, InvalidResult) as err:
        with store.unit(now) as uow:
            uow.record([decisions.rejected(uow.tasks.get(task_id), rep, err)])
        raise


def cancel(store: Store, task_id: str, by: str, now: datetime) -> Task:
    return _command(store, task_id, lambda t: decisions.cancel(t, by, now), now)


def requeue(store: Store, task_id: str, by: str, reason: str, now: datetime) -> Task:
    return _command(store, task_id, lambda t: decisions.requeue(t, by, reason, now), now)


def force_fail(store: Store, task_id: str, by: str, reason: str, now: datetime) -> Task:
    return _command(store, task_id, lambda t: decisions.force_fail(t, by, reason, now), now)


def _command(store: Store, task_id: str, decide: Callable[[Task], list[NewEvent]], now: datetime) -> Task:
    with store.unit(now) as uow:
        task = uow.tasks.get(task_id, lock=True)
        events = decide(task)
        uow.tasks.save(task)
        uow.record(events)
        return task
