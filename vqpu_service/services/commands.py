"""The lifecycle commands on one task (submit, report, cancel, requeue, force-fail), each one unit of
work: load the task locked, let `domain.decisions` change it, save it with the events it produced."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from vqpu_service.domain import decisions, ids, liveness
from vqpu_service.domain.decisions import Outcome, Report
from vqpu_service.domain.errors import Fenced, IllegalTransition, InvalidResult, QueueFull
from vqpu_service.domain.events import NewEvent
from vqpu_service.domain.model import NewTask, Task
from vqpu_service.ports import KeyTaken, Store, UnitOfWork


def submit(store: Store, new: NewTask, now: datetime, max_queued: int | None) -> tuple[Task, bool]:
    """Store a QUEUED task and its TASK_SUBMITTED event, or answer a repeat of an Idempotency-Key with its
    task and False; QueueFull when the owner already has `max_queued` QUEUED tasks (None: no cap)."""
    try:
        with store.unit(now) as uow:
            existing = _keyed(uow, new)
            if existing is not None:
                return existing, False
            try:
                liveness.queue_room(new.owner, 0 if max_queued is None else uow.tasks.queued(new.owner), max_queued)
            except QueueFull:  # a repeat of a submit that committed while this one waited is still answered
                existing = _keyed(uow, new)
                if existing is None:
                    raise
                return existing, False
            task = uow.tasks.add(ids.task_id(), new, now)
            uow.record(decisions.submitted(task))
            return task, True
    except KeyTaken:  # a concurrent submit with the same key won the race: answer with its task
        with store.unit(now) as uow:
            existing = _keyed(uow, new)
        if existing is None:
            raise
        return existing, False


def _keyed(uow: UnitOfWork, new: NewTask) -> Task | None:
    if new.idempotency_key is None:
        return None
    task = uow.tasks.keyed(new.owner, new.idempotency_key)
    return None if task is None else decisions.repeat_of(task, new.body_sha256)


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
            task = uow.tasks.get(task_id, lock=True)
            if decisions.acknowledge(task, rep.claim_token):  # a refused result still shows its owner holds it
                uow.tasks.save(task)
            uow.record([decisions.rejected(task, rep, err)])
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
