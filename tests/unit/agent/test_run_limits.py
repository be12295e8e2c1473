"""A site's bounds on every run: what one slot holds (sent with every claim), the limits each run's task.json
gets, the wall-time ceiling each scheduler can keep, Slurm's `--time`, and how an adapter's TIMEOUT becomes
TIME_LIMIT_EXCEEDED rather than a runner crash."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any, cast

import anyio
import httpx
import pytest

from agent.bootstrap import engine_settings
from agent.claims import Claim, read_note
from agent.control_plane import ControlPlane
from agent.deadline import KILL_GRACE_S, TIMEOUT, KillTimer, slurm_minutes
from agent.engine import Engine, EngineSettings
from agent.execution import Execution
from agent.prefect_bridge import PrefectBridge
from agent.scheduler.base import JobHandle, JobState, Resources, Scheduler, SchedulerError, TerminalEvidence
from agent.scheduler.memory import MemoryScheduler
from agent.scheduler.sbatch import evidence_from_fields, job_walltime, parse_fields
from agent.site import MIB, SbatchScheduler, SiteError, node_memory_bytes, parse_site, run_limits
from agent.view import PrefectView
from device_registry import catalog
from vqpu_protocol.api.agent import ClaimedTask
from vqpu_protocol.codes import ErrorCode
from vqpu_protocol.rundir import RunLimits, read_task

GIB = 1024 * MIB


def site(scheduler: dict[str, Any], **fields: Any) -> dict[str, Any]:
    mode = "process" if scheduler["kind"] in ("sbatch", "memory") else "fork"
    return {"site": "t", "slots": 1, "run_root": "/r", "runner": {"mode": mode}, "scheduler": scheduler, **fields}


# --- what one slot holds ----------------------------------------------------------------------


def test_a_local_slot_holds_the_machines_memory_shared_by_the_slots_and_a_day() -> None:
    capacity = parse_site(site({"kind": "local"}, slots=2)).slot_capacity()
    assert capacity.memory_bytes == node_memory_bytes() // 2
    assert (capacity.gpu_memory_bytes, capacity.max_runtime_s) == (None, 24 * 3600.0)


def test_a_dask_batch_slot_holds_its_jobs_memory_shared_by_its_workers_and_ends_before_they_retire() -> None:
    loaded = parse_site(
        site({"kind": "slurm", "memory": "8GB", "processes": 2, "cores": 2, "walltime": "01:00:00"}, slots=2)
    )
    capacity = loaded.slot_capacity()
    assert capacity.memory_bytes == 4_000_000_000
    # lifetime 55 min less its stagger (5 min / 2 = 150 s): 3150 s; nine tenths of it, less the grace
    assert capacity.max_runtime_s == int(0.9 * 3150 - KILL_GRACE_S)


def test_an_sbatch_slots_ceiling_is_its_walltime_less_the_grace() -> None:
    loaded = parse_site(site({"kind": "sbatch", "walltime": "00:30:00"}))
    assert loaded.slot_capacity().max_runtime_s == 1800 - KILL_GRACE_S


def test_a_walltime_beyond_a_week_still_gives_a_ceiling_any_task_may_have() -> None:
    loaded = parse_site(site({"kind": "sbatch", "walltime": "14-00:00:00"}))
    assert loaded.slot_capacity().max_runtime_s == 7 * 24 * 3600


def test_the_site_file_sets_memory_gpu_memory_and_the_ceiling() -> None:
    resources = {"memory_mb": 2048, "gpus": 1, "gpu_memory_mb": 40960, "max_runtime_s": 600}
    capacity = parse_site(site({"kind": "local"}, resources=resources)).slot_capacity()
    assert (capacity.memory_bytes, capacity.gpu_memory_bytes, capacity.max_runtime_s) == (2 * GIB, 40 * GIB, 600)


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (
            site({"kind": "local"}, resources={"gpu_memory_mb": 1024}),
            "resources.gpu_memory_mb: set, but resources.gpus is 0",
        ),
        (
            site(
                {"kind": "slurm", "walltime": "01:00:00", "worker_lifetime": "30m"}, resources={"max_runtime_s": 1800}
            ),
            "resources.max_runtime_s: 1800 s plus the 2 s kill grace does not fit in the shortest worker lifetime",
        ),
        (
            site({"kind": "sbatch", "walltime": "00:10:00"}, resources={"max_runtime_s": 599}),
            "resources.max_runtime_s: 599 s plus the 2 s kill grace exceeds scheduler.walltime (00:10:00)",
        ),
        (site({"kind": "local"}, resources={"max_runtime_s": 8 * 24 * 3600}), "resources.max_runtime_s"),
    ],
    ids=["gpu-memory-without-gpus", "runs-outlive-workers", "runs-outlive-the-job", "beyond-seven-days"],
)
def test_a_ceiling_nothing_could_keep_is_refused_naming_the_field(raw: dict[str, Any], says: str) -> None:
    with pytest.raises(SiteError, match="resources") as refused:
        parse_site(raw, source="test.yaml")
    assert says in str(refused.value), refused.value


def test_a_ceiling_that_fits_the_shortest_worker_life_is_taken() -> None:
    raw = site({"kind": "slurm", "walltime": "01:00:00", "worker_lifetime": "30m"}, resources={"max_runtime_s": 1600})
    assert parse_site(raw).slot_capacity().max_runtime_s == 1600  # 30 min less a 3 min stagger is 1620 s


@pytest.mark.parametrize(("task", "ceiling", "limit"), [(5.0, 600.0, 5.0), (900.0, 600.0, 600.0), (None, 600.0, 600.0)])
def test_a_run_gets_the_lower_of_its_tasks_limit_and_the_sites(
    task: float | None, ceiling: float, limit: float
) -> None:
    limits = run_limits(RunLimits(max_runtime_s=ceiling, memory_bytes=GIB), task)
    assert (limits.max_runtime_s, limits.memory_bytes) == (limit, GIB)


# --- the claim and the run directory ----------------------------------------------------------


class NoRuns(MemoryScheduler):
    """Starts no runner: these tests look at what a claim writes, not at a run (the task is reported failed)."""

    async def submit(self, run_dir: Path, resources: Resources) -> JobHandle:
        raise SchedulerError("this test runs nothing")


def no_view() -> PrefectView:
    """An operators' view that is never synced: these tests watch the run directories and the reports."""
    return PrefectView(cast(PrefectBridge, None), Path("/nonexistent"), str)


def _claimed(max_runtime_s: float | None) -> ClaimedTask:
    snapshot = catalog.load("line-16").canonical_json().decode()
    task = {
        "id": "t-1",
        "device": "line-16",
        "circuit": "OPENQASM 3.0;\nbit[1] c;\nx $0;\nc[0] = measure $0;\n",
        "dialect": "qasm3",
        "shots": 10,
        "seed": 1,
        "options": {} if max_runtime_s is None else {"max_runtime_s": max_runtime_s},
        "tags": [],
        "epoch": 0,
        "snapshot_sha256": hashlib.sha256(snapshot.encode()).hexdigest(),
    }
    return ClaimedTask.model_validate({"task": task, "snapshot": snapshot, "claim_token": "tok-1", "attempt": 1})


@pytest.mark.parametrize(("asked", "gets"), [(5.0, 5.0), (7200.0, 600.0), (None, 600.0)])
def test_each_run_directorys_task_json_holds_the_runs_limits(tmp_path: Path, asked: float | None, gets: float) -> None:
    site_limits = RunLimits(max_runtime_s=600.0, memory_bytes=3 * GIB)

    async def main() -> None:
        plane = ControlPlane(
            "http://cp", "k", "a-1", retry_for_s=0, transport=httpx.MockTransport(lambda r: httpx.Response(503))
        )
        settings = EngineSettings(
            slots=1,
            run_root=tmp_path,
            claim_wait_s=0,
            heartbeat_s=1,
            grace_s=0,
            resources=Resources(),
            limits=site_limits,
        )
        engine = Engine(settings, plane, NoRuns(), no_view())
        async with plane, anyio.create_task_group() as runs:
            engine._start(_claimed(asked), runs)

    anyio.run(main)
    run_dir = tmp_path / "t-1.1"
    assert read_task(run_dir).limits == RunLimits(max_runtime_s=gets, memory_bytes=3 * GIB)
    note = read_note(run_dir)
    assert note is not None and note.max_runtime_s == gets  # what a restarted agent enforces


def test_every_claim_says_what_one_slot_holds() -> None:
    capacity = parse_site(site({"kind": "local"}, resources={"memory_mb": 1024, "max_runtime_s": 60})).slot_capacity()
    bodies: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(204)

    async def main() -> None:
        async with ControlPlane(
            "http://cp", "k", "a-1", transport=httpx.MockTransport(answer), capacity=capacity
        ) as cp:
            assert await cp.claim(1, 0) == []
            assert await cp.claim(2, 0) == []

    anyio.run(main)
    assert [b["capacity"] for b in bodies] == [
        {"memory_bytes": GIB, "gpu_memory_bytes": None, "max_runtime_s": 60.0}
    ] * 2


def test_every_claim_says_how_often_the_agent_heartbeats_so_an_unacknowledged_claim_expires_fast() -> None:
    bodies: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(204)

    async def main() -> None:
        async with ControlPlane("http://cp", "k", "a-1", transport=httpx.MockTransport(answer), heartbeat_s=2.5) as cp:
            assert await cp.claim(1, 0) == []

    anyio.run(main)
    assert bodies[0]["heartbeat_s"] == 2.5


def test_the_agent_is_wired_with_its_sites_limits() -> None:
    loaded = parse_site(site({"kind": "local"}, resources={"memory_mb": 1024, "max_runtime_s": 90}))
    assert engine_settings(loaded).limits == RunLimits(max_runtime_s=90, memory_bytes=GIB)


# --- Slurm ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "time"), [(3.0, "00:01:00"), (58.0, "00:01:00"), (59.0, "00:02:00"), (None, "00:30:00")]
)
def test_an_sbatch_jobs_time_is_its_runs_limit_plus_the_grace_in_whole_minutes(limit: float | None, time: str) -> None:
    assert job_walltime(SbatchScheduler(kind="sbatch", walltime="00:30:00"), limit) == time


def test_an_sbatch_jobs_time_never_exceeds_the_sites_walltime() -> None:
    assert job_walltime(SbatchScheduler(kind="sbatch", walltime="00:10:00"), 3590.0) == "00:10:00"
    assert slurm_minutes(3590.0) == 60


SCONTROL_TIMEOUT = (
    "JobId=1 JobName=wrap UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901759 Nice=0 Account=(null) "
    "QOS=(null) JobState=TIMEOUT Reason=TimeLimit Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 "
    "ExitCode=0:15 RunTime=00:01:11 TimeLimit=00:01:00 TimeMin=N/A SubmitTime=2026-12-06T13:10:14 "
    "StartTime=2026-12-06T13:10:14 EndTime=2026-12-06T13:11:25 Partition=debug NodeList=vm BatchHost=vm "
    "WorkDir=/tmp/slurmto StdOut=/tmp/slurmto/out-1"
)
JOBCOMP_TIMEOUT = (
    "JobId=1 UserId=root(0) GroupId=root(0) Name=wrap JobState=TIMEOUT Partition=debug TimeLimit=1 "
    "StartTime=2026-12-06T13:10:14 EndTime=2026-12-06T13:11:25 NodeList=vm NodeCnt=1 ProcCnt=1 WorkDir=/tmp/slurmto "
    "ReservationName= Tres=cpu=1,mem=1G,node=1,billing=1 Account= QOS= WcKey= Cluster=unknown "
    "SubmitTime=2026-12-06T13:10:14 EligibleTime=2026-12-06T13:10:14 DerivedExitCode=0:0 ExitCode=0:0 "
)
"""Recorded on the local Slurm: `sbatch --time=1 --wrap 'sleep 300'` ended TIMEOUT 71 s after it was submitted."""


@pytest.mark.parametrize("line", [SCONTROL_TIMEOUT, JOBCOMP_TIMEOUT], ids=["scontrol", "jobcomp"])
def test_slurms_timeout_is_evidence_of_a_time_limit_with_the_time_the_job_ran(line: str) -> None:
    evidence = evidence_from_fields(parse_fields(line), "1")
    assert evidence is not None and evidence.timed_out and evidence.state == JobState.FAILED
    assert evidence.used_s == 71.0


# --- the report ---------------------------------------------------------------------------------


class Ended(Scheduler):
    """An adapter whose jobs end at once with the given evidence and leave the run directory as it is."""

    name = "fake"

    def __init__(self, evidence: TerminalEvidence) -> None:
        self.evidence = evidence

    async def submit(self, run_dir: Path, resources: Resources) -> JobHandle:
        return JobHandle(self.name, "job-1", run_dir)

    async def observe_active(self) -> set[JobHandle]:
        return set()

    async def query_terminal(self, handle: JobHandle) -> TerminalEvidence | None:
        return self.evidence

    async def cancel(self, handle: JobHandle) -> None:
        pass


def _failed_report(tmp_path: Path, evidence: TerminalEvidence, limit_s: float | None) -> dict[str, Any]:
    sent: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/failed"):
            sent.append(json.loads(request.content))
        return httpx.Response(409, json={"error": {"code": "ILLEGAL_TRANSITION", "message": "recorded"}})

    async def main() -> None:
        async with ControlPlane("http://cp", "k", "a-1", retry_for_s=0, transport=httpx.MockTransport(answer)) as cp:
            execution = Execution(
                claim=Claim("t-1", 1, "tok-1", "line-16", "a-1", limit_s),
                run_dir=tmp_path,
                control_plane=cp,
                scheduler=Ended(evidence),
                resources=Resources(max_runtime_s=limit_s),
            )
            await execution.drive()

    anyio.run(main)
    [report] = sent
    return report


def test_a_job_stopped_at_its_limit_is_reported_time_limit_exceeded_naming_limit_and_time_used(tmp_path: Path) -> None:
    evidence = TerminalEvidence(JobState.FAILED, exit_code=-9, scheduler_state=TIMEOUT, job_id="job-1", used_s=5.01)
    error = _failed_report(tmp_path, evidence, 3.0)["error"]
    assert error["code"] == ErrorCode.TIME_LIMIT_EXCEEDED
    assert (error["detail"]["limit_s"], error["detail"]["used_s"]) == (3.0, 5.01)
    assert error["message"] == "the run reached its wall-time limit of 3 s and was stopped after 5.0 s"


def test_any_other_job_that_left_no_outcome_is_still_a_runner_crash(tmp_path: Path) -> None:
    evidence = TerminalEvidence(JobState.FAILED, exit_code=-9, scheduler_state="NODE_FAIL", job_id="job-1")
    assert _failed_report(tmp_path, evidence, 3.0)["error"]["code"] == ErrorCode.RUNNER_CRASH


# --- the kill timer -------------------------------------------------------------------------------


def test_the_kill_timer_fires_once_at_the_limit_plus_the_grace_unless_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agent.deadline.KILL_GRACE_S", 0.05)
    killed = threading.Event()
    timer = KillTimer(0.05, killed.set)
    timer.start()
    assert killed.wait(2) and timer.fired and timer.used_s is not None and timer.used_s >= 0.1

    spared = threading.Event()
    stopped = KillTimer(0.05, spared.set)
    stopped.start()
    stopped.stop()
    assert not spared.wait(0.3) and not stopped.fired and stopped.used_s is None
