"""A completed report's result checked against its task (domain.results, issue 17): each mismatch is
refused naming its field, nothing of the result is applied, and the evidence says what was wrong."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import pytest

from tests.unit.control_plane.test_lifecycle import ACK_BY, NOW, queued, result_of
from vqpu_service.domain import decisions
from vqpu_service.domain.decisions import Outcome, Report
from vqpu_service.domain.errors import InvalidResult
from vqpu_service.domain.lifecycle import Action, TaskState
from vqpu_service.domain.model import Task
from vqpu_service.domain.results import KeyShape, problems


def claimed(layout: Sequence[int] | None = (2,), *, memory: bool = False) -> Task:
    task = queued()
    task.shots = 1000
    task.classical_layout = None if layout is None else list(layout)
    task.options = {"memory": memory}
    decisions.claim(task, "agent-1", "tok-1", 3, "b" * 64, NOW, ACK_BY)
    return task


def fields(task: Task, result: dict[str, Any]) -> list[str]:
    return [p.field for p in problems(task, result)]


def good(task: Task) -> dict[str, Any]:
    return result_of(task, {"00": 600, "11": 400})


def test_the_tasks_own_result_passes() -> None:
    task = claimed()
    assert problems(task, good(task)) == []


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("provenance.task_id", "t-other"),
        ("provenance.attempt", 2),
        ("provenance.device_id", "ibm-torino"),
        ("provenance.epoch", 4),
        ("provenance.snapshot_sha256", "c" * 64),
    ],
)
def test_provenance_that_is_not_the_claims_is_named(field: str, change: object) -> None:
    task = claimed()
    result = good(task)
    result["provenance"] = {**result["provenance"], field.split(".")[1]: change}
    [problem] = problems(task, result)
    assert problem.field == field and repr(change)[:20] in problem.reason


def test_seven_shots_of_one_for_a_thousand_shot_task_names_shots_and_counts() -> None:
    task = claimed()
    result = {**good(task), "shots": 7, "counts": {"1": 7}}
    assert fields(task, result) == ["shots", "counts"]
    assert "7, but the task's is 1000" in problems(task, result)[0].reason


def test_a_number_is_not_its_string_nor_a_boolean_its_integer() -> None:
    task = claimed()
    assert fields(task, {**good(task), "shots": "1000"}) == ["shots"]
    task.attempt = 1
    result = good(task)
    result["provenance"]["attempt"] = True
    assert fields(task, result) == ["provenance.attempt"]


def test_a_result_without_provenance_or_counts_names_each_missing_field() -> None:
    task = claimed()
    assert fields(task, {"shots": 1000}) == [
        "provenance.task_id",
        "provenance.attempt",
        "provenance.device_id",
        "provenance.epoch",
        "provenance.snapshot_sha256",
        "counts",
    ]


@pytest.mark.parametrize(
    ("layout", "fits", "misfits"),
    [
        ([2], ["00", "11"], ["0", "000", "0 0", "0a"]),
        ([1, 2], ["01 1", "00 0"], ["011", "1 01", "01  1", "01 1 "]),  # the last register first
        ([3, 0, 1], ["01011"], ["0101", "010111"]),  # registers and lone bits: width only, any grouping
        ([0, 0], ["01"], ["0 1", "011"]),  # lone bits only: one group
        ([], [], ["0"]),  # nothing classical: no outcome fits
    ],
)
def test_outcomes_have_the_circuits_classical_width_in_the_runners_grouping(
    layout: list[int], fits: list[str], misfits: list[str]
) -> None:
    shape = KeyShape.of(layout)
    assert all(shape.fits(k) for k in fits) and not any(shape.fits(k) for k in misfits)


def test_a_key_of_the_wrong_width_is_named_with_the_width_expected() -> None:
    task = claimed([1, 2])
    [problem] = problems(task, result_of(task, {"01 1": 999, "1": 1}))
    assert (
        problem.field == "counts" and "'1'" in problem.reason and "3 classical bits in groups of 2 1" in problem.reason
    )


def test_a_task_stored_before_its_layout_was_recorded_has_its_widths_unchecked_and_the_rest_checked() -> None:
    task = claimed(None)
    assert problems(task, result_of(task, {"0": 1000})) == []
    assert fields(task, {**result_of(task, {"0": 1000}), "shots": 10}) == ["shots"]


def test_memory_must_be_there_exactly_when_asked_and_tally_to_counts() -> None:
    asked, plain = claimed(memory=True), claimed()
    memory = ["00"] * 600 + ["11"] * 400
    assert problems(asked, {**good(asked), "memory": memory}) == []
    assert fields(asked, good(asked)) == ["memory"]
    assert fields(plain, {**good(plain), "memory": memory}) == ["memory"]
    for wrong, reason in (
        (memory[:-1], "memory holds 999 shots, not the task's 1000"),
        (["00"] * 601 + ["11"] * 399, "memory does not tally to counts: '00' is 601 in memory, 600 in counts"),
        (["0", *memory[1:]], "memory entry '0' is not 2 classical bits wide"),
        ([0, *memory[1:]], "memory entry 0 is not"),
    ):
        [problem] = problems(asked, {**good(asked), "memory": wrong})
        assert problem.field == "memory" and reason in problem.reason


def test_a_refused_result_changes_nothing_and_its_evidence_names_the_field() -> None:
    task = claimed()
    before = vars(task).copy()
    rep = Report(Action.REPORT_COMPLETED, "tok-1", result={**good(task), "shots": 7, "counts": {"1": 7}})
    with pytest.raises(InvalidResult) as refused:
        decisions.report(task, rep, NOW)
    assert vars(task) == before and task.state is TaskState.RUNNING
    assert refused.value.status == 422 and refused.value.detail["field"] == "shots"
    assert refused.value.message.startswith(f"the result is not task {task.id}'s: shots is 7")
    evidence = decisions.rejected(task, rep, refused.value)
    assert evidence.data["field"] == "shots" and [p["field"] for p in evidence.data["problems"]] == ["shots", "counts"]
    assert (
        decisions.report(task, Report(Action.REPORT_COMPLETED, "tok-1", result=good(task)), NOW)[0] is Outcome.APPLIED
    )


def test_a_cancel_from_prefect_is_the_operators_and_keeps_its_repeat() -> None:
    task = claimed()
    rep = Report(Action.REPORT_CANCELLED, "tok-1", requested_by="prefect", actor="ops-anna")
    _, [event] = decisions.report(task, rep, NOW)
    assert {k: event.data[k] for k in ("by", "via", "actor")} == {
        "by": "operator",
        "via": "prefect",
        "actor": "ops-anna",
    }
    assert decisions.report(task, rep, NOW) == (Outcome.REPEATED, [])


def test_a_cancelled_report_without_a_source_keeps_the_digest_stored_before_the_fields_existed() -> None:
    """A task cancelled before an upgrade keeps answering its agent's retry as a repeat."""
    plain = Report(Action.REPORT_CANCELLED, "tok-1")
    before = {"action": "cancelled", "result": None, "error": None}
    assert (
        plain.digest() == hashlib.sha256(json.dumps(before, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    )
    task = claimed()
    _, [event] = decisions.report(task, plain, NOW)
    assert event.data["by"] == "owner" and "via" not in event.data
