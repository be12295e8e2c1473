"""What the `vqpu` command line shows: device summaries and epoch diffs, counts and provenance, replay
verdicts, event lines, the progress display, and which exit status each failure gets."""

from __future__ import annotations

import io
from typing import Any

import pytest

from device_registry import Snapshot, calibration, topologies
from harness.documents import result_document
from vqpu_client import errors
from vqpu_client.cli.events import describe, line
from vqpu_client.cli.exits import Exit, failure
from vqpu_client.cli.progress import ERASE_LINE, Progress
from vqpu_client.cli.replay import compare
from vqpu_client.cli.snapshots import Change, diff, summarize
from vqpu_client.cli.tasks import noise_summary, result_lines, sorted_counts
from vqpu_protocol.api.tasks import EventView, TaskView
from vqpu_protocol.rundir import ResultDocument


def _device() -> Snapshot:
    return calibration.attach_sampled(topologies.line(4, device_id="line-4"), seed=3)


def _changed(s: Snapshot, qubits: dict[int, dict[str, Any]], edges: dict[int, dict[str, Any]]) -> Snapshot:
    data = s.to_json_dict()
    for index, fields in qubits.items():
        data["qubits"][index].update(fields)
    for index, fields in edges.items():
        data["edges"][index].update(fields)
    return Snapshot.model_validate({**data, "epoch": s.epoch + 1})


def test_the_diff_lists_every_changed_field_per_qubit_and_edge_and_nothing_else() -> None:
    a = _device()
    t1 = a.qubits[1].t1
    assert t1 is not None
    durations = {**a.qubits[2].gate_durations, "sx": 9e-8}
    b = _changed(
        a,
        {3: {"status": "OFFLINE"}, 1: {"t1": t1 * 0.5}, 2: {"gate_durations": durations}},
        {0: {"error": 0.25, "status": "UNAVAILABLE"}},
    )
    found = diff(a, b)
    edge = f"{a.edges[0].source}-{a.edges[0].target}"
    assert found == [
        Change("qubit", "1", "t1", t1, t1 * 0.5),
        Change("qubit", "2", "gate_durations.sx", a.qubits[2].gate_durations.get("sx"), 9e-8),
        Change("qubit", "3", "status", "ONLINE", "OFFLINE"),
        Change("edge", edge, "status", "AVAILABLE", "UNAVAILABLE"),
        Change("edge", edge, "error", a.edges[0].error, 0.25),
    ]
    assert [c.is_status for c in found] == [False, False, True, True, False]
    assert diff(a, a) == []


def test_an_undirected_edge_named_the_other_way_round_is_the_same_edge() -> None:
    a = _device()
    data = a.to_json_dict()
    first = data["edges"][0]
    first["source"], first["target"] = first["target"], first["source"]
    assert diff(a, Snapshot.model_validate(data)) == []


def test_the_summary_names_what_is_out_and_takes_medians_over_the_values_present() -> None:
    a = _device()
    b = _changed(a, {0: {"status": "OFFLINE", "t1": None}}, {1: {"status": "UNAVAILABLE"}})
    s = summarize(b)
    assert (s["num_qubits"], s["offline_qubits"], s["unavailable_couplers"]) == (
        4,
        [0],
        [[b.edges[1].source, b.edges[1].target]],
    )
    t1s = sorted(q.t1 for q in b.qubits if q.t1 is not None)
    assert len(t1s) == 3 and s["medians"]["t1"] == t1s[1]
    assert s["medians"]["error_2q"] == sorted(e.error for e in b.edges if e.error is not None)[1]
    assert s["sha256"] == b.sha256()
    ideal = summarize(topologies.line(3, device_id="ideal-3"))
    assert set(ideal["medians"].values()) == {None}


def _result(counts: dict[str, int], **provenance: Any) -> ResultDocument:
    task = {"id": "t-1", "device": "line-4", "epoch": 2, "snapshot_sha256": "a" * 64, "seed": 11, "dialect": "qasm3",
            "options": {"noise_model": "paper"}, "shots": sum(counts.values())}  # fmt: skip
    doc = result_document({"task": task, "attempt": 1}, counts)
    doc["provenance"].update(provenance)
    return ResultDocument.model_validate(doc)


def test_counts_are_shown_most_frequent_first_with_ties_in_outcome_order() -> None:
    assert sorted_counts({"01": 5, "11": 40, "00": 40, "10": 15}) == [("00", 40), ("11", 40), ("10", 15), ("01", 5)]
    lines = result_lines(_result({"01": 5, "11": 40, "00": 40, "10": 15}))
    assert lines[0] == f"t-1  100 shots on line-4 epoch 2 (sha256 {'a' * 12})"
    assert lines[2].split() == ["outcome", "count", "probability"]
    assert [row.split() for row in lines[3:7]] == [
        ["00", "40", "0.4000"], ["11", "40", "0.4000"], ["10", "15", "0.1500"], ["01", "5", "0.0500"]
    ]  # fmt: skip
    assert "epoch      2" in lines and f"sha256     {'a' * 64}" in lines and "seed       11 (from the task)" in lines


def test_the_noise_line_says_what_was_applied_and_what_was_asked() -> None:
    assert noise_summary(_result({"0": 1})) == "paper: none applied (ideal)"
    scaled = _result(
        {"0": 1}, noise_empty=False, noise_channels=6, noise={"scale": {"gate_2q": 2.0}, "disable": ["readout"]}
    )
    assert noise_summary(scaled) == "paper, 6 channels; gate_2q x2, readout off"


def test_a_replay_is_identical_only_with_the_same_counts() -> None:
    same = compare(_result({"00": 60, "11": 40}), _result({"11": 40, "00": 60}))
    assert same["identical"] and same["differences"] == [] and same["same_snapshot"]
    other = compare(_result({"00": 60, "11": 40}), _result({"00": 59, "11": 40, "01": 1}))
    assert not other["identical"]
    assert other["differences"] == [
        {"outcome": "00", "original": 60, "replay": 59},
        {"outcome": "01", "original": 0, "replay": 1},
    ]


def _event(type_: str, **data: Any) -> EventView:
    return EventView(id=7, time="2026-11-02T10:20:30.456000+00:00", type=type_, subject="task:t-1", data=data)


def test_event_lines_say_what_happened_in_words() -> None:
    claimed = _event("TASK_CLAIMED", state="RUNNING", agent_id="site-agent", attempt=1, epoch=4)
    assert line(claimed) == "10:20:30.456  #7  TASK_CLAIMED  task:t-1  claimed by site-agent (attempt 1, epoch 4)"
    scheduled = _event("TASK_SCHEDULED", scheduler={"adapter": "dask", "worker": "tcp://w:1", "node": None})
    assert describe(scheduled) == "scheduled: dask, worker tcp://w:1"
    failed = _event("TASK_FAILED", error={"code": "SIMULATION_ERROR", "message": "boom"}, attempt=1)
    assert describe(failed) == "failed: SIMULATION_ERROR: boom"
    assert describe(_event("SOMETHING_NEW", b=2, a=1)) == "a=1 b=2"


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_without_a_terminal_the_progress_is_one_plain_line_per_event() -> None:
    stream, clock = io.StringIO(), _Clock()
    with Progress("t-1", stream, tty=False, clock=clock) as progress:
        clock.now += 1.25
        progress.on_event(_event("TASK_CLAIMED", state="RUNNING", agent_id="a", attempt=1, epoch=0))
        clock.now += 2.0
        progress.on_event(_event("TASK_COMPLETED", state="COMPLETED", attempt=1))
    assert stream.getvalue().splitlines() == [
        "t-1  +1.2 s  TASK_CLAIMED  claimed by a (attempt 1, epoch 0)",
        "t-1  +3.2 s  TASK_COMPLETED  completed (attempt 1)",
    ]
    assert progress.state == "COMPLETED"


def test_on_a_terminal_the_progress_rewrites_one_status_line_and_ends_it() -> None:
    stream, clock = io.StringIO(), _Clock()
    with Progress("t-1", stream, tty=True, clock=clock) as progress:
        clock.now += 0.5
        progress.on_event(_event("TASK_CLAIMED", state="RUNNING", agent_id="a", attempt=1, epoch=0))
    text = stream.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1
    assert text.split(ERASE_LINE)[-1] == "t-1  RUNNING  0.5 s  claimed by a (attempt 1, epoch 0)\n"
    assert progress.status_line(width=20) == "t-1  RUNNING  0.5 …"


def test_quiet_progress_writes_nothing() -> None:
    stream = io.StringIO()
    with Progress("t-1", stream, enabled=False, tty=True) as progress:
        progress.on_event(_event("TASK_CLAIMED", state="RUNNING"))
    assert stream.getvalue() == "" and progress.state == "RUNNING"


def _task(state: str, error: dict[str, Any] | None = None) -> TaskView:
    return TaskView.model_validate(
        {"id": "t-1", "owner": "u", "device": "d", "dialect": "qasm3", "shots": 1, "seed": None, "tags": [],
         "options": {}, "state": state, "attempt": 1, "epoch": None, "admitted_epoch": 0, "bound_epoch": 0,
         "bound_sha256": None, "agent_id": None, "cancel_requested": False, "stale": False, "scheduler": None,
         "error": error, "created_at": "x", "updated_at": "x", "claimed_at": None, "finished_at": None}
    )  # fmt: skip


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (errors.NotFoundError("NOT_FOUND", "no such task", status=404), Exit.USAGE, "NOT_FOUND"),
        (errors.NotAdmissibleError("NOT_ADMISSIBLE", "no", status=422), Exit.USAGE, "NOT_ADMISSIBLE"),
        (errors.NoResultError("NO_RESULT", "it failed", status=409), Exit.TASK_FAILED, "NO_RESULT"),
        (errors.ServerError("INTERNAL", "bug", status=500), Exit.SERVER, "INTERNAL"),
        (errors.TransportError("connection refused"), Exit.SERVER, "UNREACHABLE"),
        (errors.WaitTimeoutError("t-1", 5.0, None), Exit.TIMEOUT, "WAIT_TIMEOUT"),
        (errors.TaskCancelledError(_task("CANCELLED")), Exit.TASK_FAILED, "TASK_CANCELLED"),
        (
            errors.TaskFailedError(_task("FAILED", {"code": "SIMULATION_ERROR", "message": "m", "detail": None})),
            Exit.TASK_FAILED,
            "SIMULATION_ERROR",
        ),
        (errors.UsageError("no OPENQASM header"), Exit.USAGE, "USAGE"),
    ],
)
def test_each_failure_gets_its_documented_exit_status_and_the_servers_error_shape(
    exc: Exception, status: Exit, code: str
) -> None:
    found = failure(exc)
    assert found is not None and found.exit_status is status
    assert set(found.body) == {"error"} and found.body["error"]["code"] == code
    assert {"code", "message", "detail", "correlation_id", "timestamp"} <= set(found.body["error"])


def test_a_bug_is_not_dressed_up_as_an_expected_failure() -> None:
    assert failure(ZeroDivisionError()) is None


def _refusals(epoch: int, *task_ids: str, truncated: bool = False) -> Any:
    from vqpu_protocol.api.inspect import QueuedViolations

    violation = {
        "code": "QUBIT_OFFLINE",
        "line": 3,
        "gate": "x",
        "operands": [3],
        "message": "x touches OFFLINE qubit 3",
    }
    return QueuedViolations.model_validate(
        {"device_id": "line-4", "epoch": epoch, "sha256": "b" * 64, "checked": 5, "truncated": truncated,
         "tasks": [{"task_id": t, "admitted_epoch": 0, "violations": [violation, violation]} for t in task_ids]}
    )  # fmt: skip


def test_the_diff_names_only_the_tasks_the_new_epoch_refuses_that_the_old_did_not() -> None:
    from vqpu_client.cli.devices import diff_lines, newly_refused

    a = _device()
    b = _changed(a, {3: {"status": "OFFLINE"}, 1: {"t1": 1e-4}}, {})
    newly = newly_refused(_refusals(0, "t-old"), _refusals(1, "t-old", "t-new", truncated=True))
    assert [t.task_id for t in newly] == ["t-new"]
    doc = {"device_id": "line-4", "a": {"epoch": 0, "sha256": a.sha256()}, "b": {"epoch": 1, "sha256": b.sha256()},
           "queued_checked": 5, "queued_truncated": True}  # fmt: skip
    text = diff_lines(doc, diff(a, b), newly)
    assert "  qubit 3  status: ONLINE -> OFFLINE" in text
    assert "calibration (1 qubit, 0 couplers changed):" in text
    assert any(line.startswith("  qubit 1  t1: ") and line.endswith("%)") for line in text)
    assert "  (only the oldest were checked: more are queued than the server checks at once)" in text
    assert text[-1] == "  t-new  QUBIT_OFFLINE line 3: x touches OFFLINE qubit 3 (+1 more)"
