"""Every run has a wall-time limit, enforced on every path: the runner ends itself at its limit (its watchdog
writes error.json TIME_LIMIT_EXCEEDED), and whatever runs the runner stops one that does not (a runner held
here before it reads its task, so that its own watchdog never starts) at the limit plus the kill grace, and
the agent reports that as TIME_LIMIT_EXCEEDED too.

The long run is 20 noisy Fez qubits under 50 layers of `sx q;` (several seconds a shot); the held one is a
runner blocked on a task.json FIFO, which costs no CPU. The paths: the subprocess runner (the `memory`
adapter), the warm runner on a Dask worker in both of its modes, and `sbatch` on the real local Slurm,
whose own TIMEOUT (about 71 s after the start of a one-minute job, measured) is the last one.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from distributed import Client, LocalCluster

from agent.claims import Claim
from agent.control_plane import ControlPlane
from agent.deadline import KILL_GRACE_S, TIMEOUT
from agent.execution import Execution
from agent.scheduler.base import Resources, Scheduler
from agent.scheduler.dask import DaskAdapter
from agent.scheduler.memory import MemoryScheduler
from agent.scheduler.sbatch import SbatchAdapter
from agent.site import SbatchScheduler, parse_site
from agent.warm import Mode, WarmRunnerPlugin, run_on_worker
from device_registry import Snapshot
from harness.circuits import BELL, qasm2
from harness.runner_process import ROOT
from tests.conftest import MakeRunDir
from tests.requirements import require_slurm
from vqpu_protocol.codes import ErrorCode, ExitCode
from vqpu_protocol.errors import ErrorDocument
from vqpu_protocol.rundir import TASK_FILE, read_outcome

LIMIT_S = 3.0
WITHIN_S = LIMIT_S + 5.0
"""What the user is promised: a run past its limit has ended, TIME_LIMIT_EXCEEDED, this long after it started."""
LONG = qasm2("sx q;\n" * 50 + "measure q -> c;", qubits=20)
"""Noisy on Fez, statevector trajectories: 3-6 s a shot on two cores, so 100 shots run for minutes."""


def long_run(make_run_dir: MakeRunDir, fez: Snapshot, limit_s: float = LIMIT_S) -> Path:
    return make_run_dir(LONG, fez, shots=100, limits={"max_runtime_s": limit_s})


def held_run(make_run_dir: MakeRunDir, fez: Snapshot) -> Path:
    """A runner that blocks opening its task.json (a FIFO nobody writes) and so never starts its watchdog."""
    run_dir = make_run_dir(BELL, fez, dialect="qasm3")
    (run_dir / TASK_FILE).unlink()
    os.mkfifo(run_dir / TASK_FILE)
    return run_dir


def assert_time_limit_exceeded(outcome: Any, limit_s: float = LIMIT_S) -> None:
    assert isinstance(outcome, ErrorDocument), outcome
    assert outcome.code == ErrorCode.TIME_LIMIT_EXCEEDED, outcome
    assert outcome.detail["limit_s"] == limit_s
    assert limit_s <= outcome.detail["used_s"] < limit_s + 1.0, outcome.detail


# --- the agent's view: an Execution over an adapter, reporting to a recording control plane ---------


class Reports:
    """A control plane that takes every report (answering as if the task were already over) and keeps them."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.url.path.rsplit("/", 1)[1], json.loads(request.content)))
        return httpx.Response(409, json={"error": {"code": "ILLEGAL_TRANSITION", "message": "recorded"}})

    def failed(self) -> dict[str, Any]:
        [error] = [body["error"] for kind, body in self.sent if kind == "failed"]
        return error


async def execute(scheduler: Scheduler, run_dir: Path, limit_s: float) -> tuple[Reports, float]:
    """One task through the agent's Execution (submit, wait, report), as the engine runs it; its reports and
    how long it took from submission to the failed report."""
    reports = Reports()
    plane = ControlPlane("http://cp", "key", "agent-t", retry_for_s=0, transport=httpx.MockTransport(reports))
    claim = Claim("task-1", 1, "tok-1", "ibm-fez", "agent-t", limit_s)
    execution = Execution(
        claim=claim,
        run_dir=run_dir,
        control_plane=plane,
        scheduler=scheduler,
        resources=Resources(max_runtime_s=limit_s),
    )
    async with plane:
        began = time.monotonic()
        await execution.drive()
        return reports, time.monotonic() - began


# --- the subprocess runner (`memory` adapter) ---------------------------------------------------


@pytest.mark.anyio
async def test_a_runner_process_past_its_limit_ends_itself_time_limit_exceeded_within_5_s(
    make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    run_dir = long_run(make_run_dir, fez)
    scheduler = MemoryScheduler(cwd=ROOT)

    reports, took = await execute(scheduler, run_dir, LIMIT_S)

    assert took < WITHIN_S, f"the run ended {took:.1f} s after it was submitted"
    assert_time_limit_exceeded(read_outcome(run_dir))
    error = reports.failed()
    assert error["code"] == ErrorCode.TIME_LIMIT_EXCEEDED and error["detail"]["limit_s"] == LIMIT_S
    [report] = [body for kind, body in reports.sent if kind == "failed"]
    assert report["scheduler"]["exit_code"] == ExitCode.SIMULATION_FAILED  # the runner's own exit, not a kill


@pytest.mark.anyio
async def test_a_wedged_runner_process_is_killed_at_its_limit_plus_the_grace_and_reported_time_limit_exceeded(
    make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    run_dir = held_run(make_run_dir, fez)

    reports, took = await execute(MemoryScheduler(cwd=ROOT), run_dir, LIMIT_S)

    assert LIMIT_S + KILL_GRACE_S <= took < WITHIN_S, f"the run ended {took:.1f} s after it was submitted"
    assert read_outcome(run_dir) is None  # the runner never wrote: the agent says what happened
    error = reports.failed()
    assert error["code"] == ErrorCode.TIME_LIMIT_EXCEEDED, error
    assert error["detail"]["limit_s"] == LIMIT_S
    assert LIMIT_S + KILL_GRACE_S <= error["detail"]["used_s"] < WITHIN_S
    assert error["detail"]["scheduler_state"] == TIMEOUT


# --- the warm runner on a Dask worker (fork and process modes) ----------------------------------


@pytest.fixture(scope="module", params=["fork", "process"])
def warm(request: pytest.FixtureRequest) -> Iterator[Client]:
    mode: Mode = request.param
    with (
        LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(WarmRunnerPlugin(mode, cwd=str(ROOT)))
        yield client


def test_a_warm_run_past_its_limit_ends_itself_time_limit_exceeded_within_5_s(
    warm: Client, make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    run_dir = long_run(make_run_dir, fez)
    warm.submit(run_on_worker, str(ROOT / "no-such-run"), pure=False).result(timeout=120)  # a warm worker

    began = time.monotonic()
    outcome = warm.submit(run_on_worker, str(run_dir), LIMIT_S, pure=False).result(timeout=60)
    took = time.monotonic() - began

    assert took < WITHIN_S, f"the run ended {took:.1f} s after it was submitted"
    assert outcome["exit_code"] == ExitCode.SIMULATION_FAILED and outcome["timed_out"] is False, outcome
    assert_time_limit_exceeded(read_outcome(run_dir))


def test_a_wedged_warm_run_is_killed_at_its_limit_plus_the_grace(
    warm: Client, make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    run_dir = held_run(make_run_dir, fez)

    began = time.monotonic()
    outcome = warm.submit(run_on_worker, str(run_dir), LIMIT_S, pure=False).result(timeout=60)
    took = time.monotonic() - began

    assert LIMIT_S + KILL_GRACE_S <= took < WITHIN_S, f"the run ended {took:.1f} s after it was submitted"
    assert outcome["timed_out"] is True and outcome["killed"] is False, outcome
    assert outcome["limit_s"] == LIMIT_S and LIMIT_S + KILL_GRACE_S <= outcome["used_s"] < WITHIN_S
    assert read_outcome(run_dir) is None


def test_a_warm_run_within_its_limit_is_left_alone(warm: Client, make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    run_dir = make_run_dir(BELL, fez, dialect="qasm3", limits={"max_runtime_s": 30})
    outcome = warm.submit(run_on_worker, str(run_dir), 30.0, pure=False).result(timeout=60)
    assert outcome["exit_code"] == 0 and outcome["timed_out"] is False and outcome["used_s"] is None


@pytest.mark.anyio
async def test_a_wedged_run_on_the_agents_dask_cluster_is_reported_time_limit_exceeded(
    make_run_dir: MakeRunDir, fez: Snapshot, tmp_path: Path
) -> None:
    # The agent's own adapter: the runner step on its LocalCluster, the warm runner under it.
    run_root = tmp_path / "runs"
    run_root.mkdir(mode=0o700)
    site = parse_site({"site": "limits", "slots": 1, "run_root": str(run_root), "scheduler": {"kind": "local"}})
    adapter = DaskAdapter(site, cwd=ROOT)
    await adapter.start()
    try:
        reports, took = await execute(adapter, held_run(make_run_dir, fez), LIMIT_S)
    finally:
        await adapter.close()

    assert took < WITHIN_S + 5, f"the run ended {took:.1f} s after it was submitted (the worker warms first)"
    error = reports.failed()
    assert error["code"] == ErrorCode.TIME_LIMIT_EXCEEDED, error
    assert error["detail"]["limit_s"] == LIMIT_S and LIMIT_S + KILL_GRACE_S <= error["detail"]["used_s"] < WITHIN_S
    assert error["detail"]["scheduler_state"] == TIMEOUT


# --- sbatch on the real Slurm -------------------------------------------------------------------


def sbatch() -> SbatchAdapter:
    require_slurm()
    settings = SbatchScheduler(kind="sbatch", walltime="00:10:00", poll_s=0.05)
    return SbatchAdapter(settings, agent_id=f"limits-{uuid.uuid4().hex[:8]}", cwd=ROOT)


def time_limit_of(job_id: str) -> str:
    shown = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, check=True)
    return next(f.split("=", 1)[1] for f in shown.stdout.split() if f.startswith("TimeLimit="))


@pytest.mark.anyio
async def test_an_sbatch_run_past_its_limit_ends_itself_time_limit_exceeded_within_5_s(
    make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    adapter = sbatch()
    run_dir = long_run(make_run_dir, fez)
    try:
        reports, took = await execute(adapter, run_dir, LIMIT_S)
    finally:
        await adapter.close()

    assert took < WITHIN_S, f"the job ended {took:.1f} s after it was submitted"
    assert_time_limit_exceeded(read_outcome(run_dir))
    [report] = [body for kind, body in reports.sent if kind == "failed"]
    assert report["error"]["code"] == ErrorCode.TIME_LIMIT_EXCEEDED
    # Slurm is told the limit plus the grace, in its unit: a whole minute here.
    assert time_limit_of(report["scheduler"]["job_id"]) == "00:01:00"


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.anyio
async def test_a_wedged_sbatch_run_is_ended_by_slurms_timeout_and_reported_time_limit_exceeded(
    make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    adapter = sbatch()
    run_dir = held_run(make_run_dir, fez)
    try:
        with anyio.fail_after(150):
            reports, took = await execute(adapter, run_dir, LIMIT_S)
    finally:
        await adapter.close()

    [report] = [body for kind, body in reports.sent if kind == "failed"]
    error = report["error"]
    assert error["code"] == ErrorCode.TIME_LIMIT_EXCEEDED, error
    assert error["detail"]["limit_s"] == LIMIT_S and error["detail"]["scheduler_state"] == "TIMEOUT"
    # Slurm's one minute, checked every ~30 s; Slurm counts whole seconds from the job's start on its own
    # clock, so its figure can pass this test's by up to a second (measured: 73.0 against 72.79).
    assert 60 <= error["detail"]["used_s"] <= took + 1.0, error["detail"]
    assert report["scheduler"]["state"] == "TIMEOUT"
    assert read_outcome(run_dir) is None
