"""One execution's state machine (agent.execution): every path to its end, against a control plane played
by httpx.MockTransport and an in-process scheduler whose jobs end when the test says. What is checked is what
the control plane is told, once, and what the claim note says for a restarted agent."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from agent.claims import Claim, read_note
from agent.control_plane import ControlPlane
from agent.execution import FINAL, PREFECT, TRANSITIONS, Ending, Execution, IllegalStep, Phase, Step
from agent.scheduler.base import JobHandle, JobState, Placement, Resources, Scheduler, SchedulerError, TerminalEvidence
from harness.documents import TIMINGS, provenance
from vqpu_protocol.api.tasks import RunOptions, SchedulerEvidence
from vqpu_protocol.errors import ErrorDocument
from vqpu_protocol.rundir import ERROR_FILE, RESULT_FILE, ResultDocument, atomic_write

TASK = "t-1"


class FakeScheduler(Scheduler):
    """Jobs that run until `finish` (writing what a runner would) or `cancel`; `fail_submit` makes submit raise."""

    name = "fake"

    def __init__(self, fail_submit: bool = False) -> None:
        self.fail_submit = fail_submit
        self.submitted: list[Path] = []
        self.cancelled: list[JobHandle] = []
        self._ended: dict[JobHandle, TerminalEvidence] = {}
        self.started = anyio.Event()

    async def submit(self, run_dir: Path, resources: Resources) -> JobHandle:
        if self.fail_submit:
            raise SchedulerError("the cluster refused the job")
        self.submitted.append(run_dir)
        self.started.set()
        return JobHandle(self.name, f"job-{len(self.submitted)}", run_dir)

    async def observe_active(self) -> set[JobHandle]:
        return set()

    async def placement(self, handle: JobHandle) -> Placement | None:
        return Placement(job_id=handle.job_id, node="node-1")

    async def query_terminal(self, handle: JobHandle) -> TerminalEvidence | None:
        return self._ended.get(handle)

    async def cancel(self, handle: JobHandle) -> None:
        self.cancelled.append(handle)
        self._ended.setdefault(handle, TerminalEvidence(JobState.CANCELLED, scheduler_state="killed", exit_code=-9))

    def finish(self, run_dir: Path, outcome: str | None, exit_code: int = 0) -> None:
        if outcome == "result":
            doc = ResultDocument.model_validate(
                {"counts": {"00": 10}, "shots": 10, "timings": TIMINGS, "provenance": provenance(TASK)}
            )
            atomic_write(run_dir / RESULT_FILE, doc.model_dump_json(by_alias=True).encode())
        elif outcome == "error":
            error = ErrorDocument(code="PARSE_ERROR", message="line 3: 'secret_gate' is not a gate")
            atomic_write(run_dir / ERROR_FILE, error.model_dump_json().encode())
        handle = JobHandle(self.name, f"job-{self.submitted.index(run_dir) + 1}", run_dir)
        self._ended[handle] = TerminalEvidence(JobState.COMPLETED, scheduler_state="finished", exit_code=exit_code)


class Observed:
    def __init__(self) -> None:
        self.running: list[SchedulerEvidence] = []

    def running_(self, execution: Execution, evidence: SchedulerEvidence, at: Any) -> None:
        self.running.append(evidence)


def ack(state: str) -> dict[str, Any]:
    """The control plane's answer to a report that it took: the task as it now is."""
    return {
        "id": TASK,
        "owner": "u",
        "device": "line-16",
        "dialect": "qasm3",
        "shots": 10,
        "seed": None,
        "tags": [],
        "options": RunOptions().model_dump(mode="json"),
        "state": state,
        "attempt": 1,
        "epoch": None,
        "admitted_epoch": 0,
        "bound_epoch": 0,
        "bound_sha256": "0" * 64,
        "agent_id": "agent-1",
        "cancel_requested": False,
        "stale": False,
        "scheduler": None,
        "error": None,
        "created_at": "2026-12-07T00:00:00Z",
        "updated_at": "2026-12-07T00:00:00Z",
        "claimed_at": None,
        "finished_at": None,
        "repeated": False,
    }


class ControlPlaneAnswers:
    """Records each request; `terminal` answers the terminal report (status, error code)."""

    def __init__(self, terminal: Callable[[int], tuple[int, str | None]] = lambda n: (200, None)) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.terminal = terminal
        self._terminals = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        kind = request.url.path.rsplit("/", 1)[-1]
        self.requests.append((kind, json.loads(request.content)))
        if kind == "running":
            return httpx.Response(200, json=ack("RUNNING"))
        self._terminals += 1
        status, code = self.terminal(self._terminals)
        if status == 200:
            return httpx.Response(200, json=ack(kind.upper()))
        return httpx.Response(status, json={"error": {"code": code, "message": f"{code} for the test"}})

    def kinds(self) -> list[str]:
        return [k for k, _ in self.requests]


def execution(tmp_path: Path, scheduler: Scheduler, answers: ControlPlaneAnswers, **fields: Any) -> Execution:
    run_dir = tmp_path / f"{TASK}.1"
    run_dir.mkdir(mode=0o700, exist_ok=True)
    claim = Claim(TASK, 1, "tok-1", "line-16", "agent-1")
    claim.save(run_dir)
    control_plane = ControlPlane("http://cp", "key", "agent-1", retry_for_s=0.3, transport=httpx.MockTransport(answers))
    return Execution(claim, run_dir, control_plane, scheduler, Resources(), **fields)


def drive(ex: Execution, during: Callable[[], Any] | None = None) -> Ending:
    ending: list[Ending] = []

    async def main() -> None:
        async with ex.control_plane, anyio.create_task_group() as tg:

            async def run() -> None:
                ending.append(await ex.drive())

            tg.start_soon(run)
            if during is not None:
                await during()

    anyio.run(main)
    return ending[0]


def test_the_transition_table_lets_nothing_out_of_a_final_phase_and_refuses_what_it_does_not_list() -> None:
    assert all(phase not in FINAL for phase, _ in TRANSITIONS)
    ex = Execution.__new__(Execution)
    ex.claim = Claim(TASK, 1, "tok", "d", "a")
    for phase in FINAL:
        for step in Step:
            ex.phase = phase
            with pytest.raises(IllegalStep):
                ex._move(step)
    ex.phase = Phase.CLAIMED
    ex._move(Step.SUBMIT)
    with pytest.raises(IllegalStep):
        ex._move(Step.SUBMIT)  # a runner step is submitted once


def test_a_runner_result_is_reported_completed_once_and_noted_for_a_restart(tmp_path: Path) -> None:
    scheduler, answers, seen = FakeScheduler(), ControlPlaneAnswers(), Observed()
    ex = execution(tmp_path, scheduler, answers)
    ex.observer = type("O", (), {"running": seen.running_})()

    async def run_then_finish() -> None:
        await scheduler.started.wait()
        await anyio.sleep(0.1)
        scheduler.finish(ex.run_dir, "result")

    ending = drive(ex, run_then_finish)
    assert (ending.phase, ending.state) == (Phase.ENDED, "COMPLETED") and ending.result is not None
    assert answers.kinds() == ["running", "completed"]
    assert [e.node for e in seen.running] == ["node-1"]
    note = read_note(ex.run_dir)
    assert note is not None and (note.ended, note.state) == ("reported", "COMPLETED")


def test_a_runner_error_is_reported_failed_and_the_flow_run_message_does_not_quote_the_circuit(tmp_path: Path) -> None:
    scheduler, answers = FakeScheduler(), ControlPlaneAnswers()
    ex = execution(tmp_path, scheduler, answers)

    async def fail() -> None:
        await scheduler.started.wait()
        scheduler.finish(ex.run_dir, "error", exit_code=2)

    ending = drive(ex, fail)
    assert (ending.phase, ending.state) == (Phase.ENDED, "FAILED")
    assert "secret_gate" not in ending.message and "PARSE_ERROR" in ending.message
    [(_, failed)] = [r for r in answers.requests if r[0] == "failed"]
    assert failed["error"]["message"] == "line 3: 'secret_gate' is not a gate"  # the owner reads it in full


def test_a_runner_that_leaves_nothing_is_a_runner_crash_with_the_scheduler_evidence(tmp_path: Path) -> None:
    scheduler, answers = FakeScheduler(), ControlPlaneAnswers()
    ex = execution(tmp_path, scheduler, answers)

    async def crash() -> None:
        await scheduler.started.wait()
        scheduler.finish(ex.run_dir, None, exit_code=139)

    drive(ex, crash)
    [(_, failed)] = [r for r in answers.requests if r[0] == "failed"]
    assert failed["error"]["code"] == "RUNNER_CRASH" and failed["error"]["detail"]["exit_code"] == 139


def test_a_cancel_from_prefect_stops_the_runner_and_is_reported_as_the_operators(tmp_path: Path) -> None:
    scheduler, answers = FakeScheduler(), ControlPlaneAnswers()
    ex = execution(tmp_path, scheduler, answers)

    async def cancel() -> None:
        await scheduler.started.wait()
        ex.cancel(PREFECT, actor="prefect:flow-run/1")

    ending = drive(ex, cancel)
    assert (ending.phase, ending.state) == (Phase.ENDED, "CANCELLED") and len(scheduler.cancelled) == 1
    [(_, report)] = [r for r in answers.requests if r[0] == "cancelled"]
    assert (report["requested_by"], report["actor"]) == ("prefect", "prefect:flow-run/1")


def test_a_fenced_execution_stops_its_runner_and_reports_nothing_more(tmp_path: Path) -> None:
    scheduler, answers = FakeScheduler(), ControlPlaneAnswers()
    ex = execution(tmp_path, scheduler, answers)

    async def fence() -> None:
        await scheduler.started.wait()
        ex.fence()
        ex.cancel("control plane")  # a cancel after the fencing changes nothing: the task is not ours

    ending = drive(ex, fence)
    assert ending.phase is Phase.FENCED and scheduler.cancelled
    assert "completed" not in answers.kinds() and "cancelled" not in answers.kinds()
    note = read_note(ex.run_dir)
    assert note is not None and note.ended == "fenced"


def test_a_terminal_report_answered_fenced_ends_the_execution_fenced(tmp_path: Path) -> None:
    scheduler, answers = FakeScheduler(), ControlPlaneAnswers(terminal=lambda n: (409, "FENCED"))
    ex = execution(tmp_path, scheduler, answers)

    async def finish() -> None:
        await scheduler.started.wait()
        scheduler.finish(ex.run_dir, "result")

    ending = drive(ex, finish)
    assert ending.phase is Phase.FENCED and answers.kinds().count("completed") == 1


def test_a_result_the_control_plane_refuses_as_not_this_tasks_is_reported_failed_instead(tmp_path: Path) -> None:
    answers = ControlPlaneAnswers(terminal=lambda n: (422, "INVALID_RESULT") if n == 1 else (200, None))
    scheduler = FakeScheduler()
    ex = execution(tmp_path, scheduler, answers)

    async def finish() -> None:
        await scheduler.started.wait()
        scheduler.finish(ex.run_dir, "result")

    ending = drive(ex, finish)
    assert (ending.phase, ending.state) == (Phase.ENDED, "FAILED") and answers.kinds()[-2:] == ["completed", "failed"]
    assert answers.requests[-1][1]["error"]["code"] == "INVALID_RESULT"


def test_a_scheduler_that_fails_is_the_tasks_execution_error_reported_once(tmp_path: Path) -> None:
    answers = ControlPlaneAnswers()
    ending = drive(execution(tmp_path, FakeScheduler(fail_submit=True), answers))
    assert (ending.phase, ending.state) == (Phase.ENDED, "FAILED")
    [(_, failed)] = [r for r in answers.requests if r[0] == "failed"]
    assert failed["error"]["code"] == "EXECUTION_ERROR" and "refused the job" in failed["error"]["message"]


def test_a_run_directory_that_could_not_be_written_fails_the_task_without_running_it(tmp_path: Path) -> None:
    scheduler, answers = FakeScheduler(), ControlPlaneAnswers()
    ending = drive(execution(tmp_path, scheduler, answers, setup_error="the agent could not write the run directory"))
    assert (ending.phase, ending.state) == (Phase.ENDED, "FAILED") and scheduler.submitted == []
    assert answers.kinds() == ["failed"]


def test_a_control_plane_that_never_answers_leaves_the_claim_open_for_a_restart(tmp_path: Path) -> None:
    scheduler, answers = FakeScheduler(), ControlPlaneAnswers(terminal=lambda n: (503, "UNAVAILABLE"))
    ex = execution(tmp_path, scheduler, answers)

    async def finish() -> None:
        await scheduler.started.wait()
        scheduler.finish(ex.run_dir, "result")

    ending = drive(ex, finish)
    assert ending.phase is Phase.HANDED_BACK
    note = read_note(ex.run_dir)
    assert note is not None and note.ended is None  # a restarted agent finds the result and reports it


def test_a_hand_back_before_the_end_reports_nothing_and_keeps_the_claim_open(tmp_path: Path) -> None:
    scheduler, answers = FakeScheduler(), ControlPlaneAnswers()
    ex = execution(tmp_path, scheduler, answers)

    async def stop() -> None:
        await scheduler.started.wait()
        ex.hand_back()

    ending = drive(ex, stop)
    assert ending.phase is Phase.HANDED_BACK and answers.kinds() in (["running"], [])
    note = read_note(ex.run_dir)
    assert note is not None and note.ended is None
