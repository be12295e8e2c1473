"""The Store contract for results and cancels (issue 17), over SQLite and PostgreSQL alike: a result
that is not its task's is refused with nothing stored, and kept as evidence; a cancel from Prefect
is the operator's; a database from before the classical layout was recorded is upgraded in place."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import inspect, text

from tests.integration.control_plane.tasks import completed, its_result, new_task
from vqpu_service.adapters.sql.store import SqlStore
from vqpu_service.domain.decisions import Outcome, Report
from vqpu_service.domain.errors import InvalidResult
from vqpu_service.domain.events import EventType
from vqpu_service.domain.lifecycle import Action, TaskState
from vqpu_service.domain.model import Claimed
from vqpu_service.ports import EventFilter


def now() -> datetime:
    return datetime.now(UTC)


def claim_two(store: SqlStore) -> tuple[Claimed, Claimed]:
    """Alice's task (the victim) and Bob's, claimed together by one agent."""
    store.submit(new_task(store, "alice"), now())
    store.submit(new_task(store, "bob"), now())
    victim, other = store.claim("agent", 2, None, now())
    return victim, other


def rejections(store: SqlStore, task_id: str) -> list[dict[str, Any]]:
    flt = EventFilter(task_id=task_id, types=frozenset({EventType.TASK_REPORT_REJECTED}))
    return [e.data for e in store.events_after(0, flt, 100)]


FORGERIES = {
    "seven shots of 1": ("shots", lambda v, o: its_result(v, {"1": 7}, shots=7)),
    "the other task's result": ("provenance.task_id", lambda v, o: its_result(o)),
    "another attempt": ("provenance.attempt", lambda v, o: its_result(v, provenance={"attempt": 2})),
    "another device": ("provenance.device_id", lambda v, o: its_result(v, provenance={"device_id": "ibm-fez"})),
    "another epoch": ("provenance.epoch", lambda v, o: its_result(v, provenance={"epoch": 5})),
    "another snapshot": (
        "provenance.snapshot_sha256",
        lambda v, o: its_result(v, provenance={"snapshot_sha256": "0" * 64}),
    ),
    "one-bit outcomes": ("counts", lambda v, o: its_result(v, {"0": 60, "1": 40})),
    "memory nobody asked for": ("memory", lambda v, o: {**its_result(v, {"00": 100}), "memory": ["00"] * 100}),
}


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_a_result_that_is_not_the_tasks_is_refused_with_nothing_stored_and_kept_as_evidence(
    store: SqlStore, forgery: str
) -> None:
    field, forge = FORGERIES[forgery]
    victim, other = claim_two(store)
    with pytest.raises(InvalidResult) as refused:
        store.report(
            victim.task.id, Report(Action.REPORT_COMPLETED, victim.claim_token, result=forge(victim, other)), now()
        )
    assert refused.value.status == 422 and refused.value.detail["field"] == field
    assert field in refused.value.message
    task = store.get_task(victim.task.id)
    assert task.state is TaskState.RUNNING and task.result is None and task.outcome_token is None
    [evidence] = rejections(store, victim.task.id)
    assert (evidence["code"], evidence["field"], evidence["action"]) == ("INVALID_RESULT", field, "completed")
    assert field in evidence["reason"]
    # The owner can still report the task's own result: it completes, once.
    done, outcome = store.report(victim.task.id, completed(victim), now())
    assert outcome is Outcome.APPLIED and done.state is TaskState.COMPLETED and done.result == its_result(victim)


def test_every_field_that_does_not_match_is_named(store: SqlStore) -> None:
    victim, _ = claim_two(store)
    with pytest.raises(InvalidResult) as refused:
        store.report(victim.task.id, completed(victim, {"1": 7}, shots=7, provenance={"epoch": 3}), now())
    fields = [p["field"] for p in refused.value.detail["problems"]]
    assert fields == ["shots", "provenance.epoch", "counts"]


def test_a_task_that_asked_for_memory_needs_memory_that_tallies_to_its_counts(store: SqlStore) -> None:
    store.submit(new_task(store, options={"memory": True}), now())
    [c] = store.claim("agent", 1, None, now())
    good = ["00"] * 60 + ["11"] * 40
    for memory, reason in (
        (None, "memory is missing"),
        (good[:-1], "memory holds 99 shots"),
        (["00"] * 61 + ["11"] * 39, "memory does not tally to counts"),
        (["0"] * 60 + ["11"] * 40, "not 2 classical bits wide"),
    ):
        result = {**its_result(c, {"00": 60, "11": 40}), "memory": memory}
        with pytest.raises(InvalidResult, match=reason):
            store.report(c.task.id, Report(Action.REPORT_COMPLETED, c.claim_token, result=result), now())
    result = {**its_result(c, {"00": 60, "11": 40}), "memory": good}
    done, _ = store.report(c.task.id, Report(Action.REPORT_COMPLETED, c.claim_token, result=result), now())
    assert done.state is TaskState.COMPLETED and done.result is not None and done.result["memory"] == good
    assert [e["field"] for e in rejections(store, c.task.id)] == ["memory"] * 4


def test_the_classical_layout_is_stored_with_the_task(store: SqlStore) -> None:
    task, _ = store.submit(new_task(store, classical=(3, 0, 1)), now())
    assert store.get_task(task.id).classical_layout == [3, 0, 1]


def test_a_cancel_set_in_prefect_is_recorded_as_the_operators_and_the_old_report_as_the_owners(
    store: SqlStore,
) -> None:
    store.submit(new_task(store), now())
    store.submit(new_task(store), now())
    by_prefect, plain = store.claim("agent", 2, None, now())
    rep = Report(Action.REPORT_CANCELLED, by_prefect.claim_token, requested_by="prefect", actor="ops-anna")
    done, outcome = store.report(by_prefect.task.id, rep, now())
    assert done.state is TaskState.CANCELLED and outcome is Outcome.APPLIED
    assert store.report(by_prefect.task.id, rep, now())[1] is Outcome.REPEATED  # an agent's retry
    store.report(plain.task.id, Report(Action.REPORT_CANCELLED, plain.claim_token), now())

    def cancelled(task_id: str) -> dict[str, Any]:
        flt = EventFilter(task_id=task_id, types=frozenset({EventType.TASK_CANCELLED}))
        [event] = store.events_after(0, flt, 10)
        return event.data

    data = cancelled(by_prefect.task.id)
    assert (data["by"], data["via"], data["actor"]) == ("operator", "prefect", "ops-anna")
    data = cancelled(plain.task.id)
    assert data["by"] == "owner" and "via" not in data and "actor" not in data


def test_a_database_from_before_the_classical_layout_gains_the_column_and_its_tasks_still_complete(
    store: SqlStore,
) -> None:
    store.submit(new_task(store, classical=None), now())
    with store.tx.engine.begin() as conn:
        conn.execute(text("ALTER TABLE task DROP COLUMN classical_layout"))  # the table an older release made
    assert "classical_layout" not in {c["name"] for c in inspect(store.tx.engine).get_columns("task")}
    store.create_schema()  # what every start does
    store.create_schema()  # and again: adding is done once
    [old] = store.claim("agent", 1, None, now())
    assert old.task.classical_layout is None  # not recorded: its widths go unchecked, everything else is
    with pytest.raises(InvalidResult):
        store.report(old.task.id, completed(old, shots=7), now())
    done, _ = store.report(old.task.id, completed(old, {"0": 100}), now())
    assert done.state is TaskState.COMPLETED
    task, _ = store.submit(new_task(store), now())
    assert store.get_task(task.id).classical_layout == [2]
