"""The agent end to end: real control plane, Prefect server, agent processes, Dask and Slurm."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterName,
)
from prefect.client.schemas.objects import FlowRun, StateType, TaskRun
from prefect.states import Cancelling, Scheduled

from harness.agents import ROOT, site_file
from harness.circuits import BELL, busy
from tests.e2e.sites import Site
from tests.requirements import require_slurm

LONG = busy(10, 40)
"""10-20 s of simulation: long enough to be cancelled mid-run."""


def _prefect() -> SyncPrefectClient:
    client: SyncPrefectClient = get_client(sync_client=True)
    return client


def _wait_flow_state(prefect: SyncPrefectClient, task_id: str, state: StateType, timeout_s: float = 20) -> FlowRun:
    """The task's flow run once it is in `state`. The view writes it beside the work, so it may appear a moment
    after the control plane has the task RUNNING."""
    deadline = time.monotonic() + timeout_s
    while True:
        runs = prefect.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[f"vqpu-{task_id}"])))
        assert len(runs) <= 1, f"expected one flow run named vqpu-{task_id}, found {len(runs)}"
        if runs and runs[0].state_type == state:
            return runs[0]
        if time.monotonic() > deadline:
            found = runs[0].state_type if runs else "no flow run"
            raise AssertionError(f"flow run of {task_id} is {found}, not {state}, after {timeout_s} s")
        time.sleep(0.1)


def _wait_task_runs(prefect: SyncPrefectClient, run: FlowRun, state: StateType, timeout_s: float = 10) -> list[TaskRun]:
    deadline = time.monotonic() + timeout_s
    while True:
        steps = prefect.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
        if steps and all(t.state_type == state for t in steps):
            return steps
        if time.monotonic() > deadline:
            raise AssertionError(f"task runs of flow run {run.name}: {[(t.name, t.state_type) for t in steps]}")
        time.sleep(0.1)


@pytest.mark.slow
def test_a_rest_submission_runs_on_a_slurm_node_and_its_flow_run_mirrors_it(site: Site, prefect_env: str) -> None:
    require_slurm()
    # The site opts in to counts in Prefect (off by default: results are tenant data).
    site.agent("slurm-local", prefect={"artifacts_include_counts": True})
    task_id = site.submit(BELL, shots=2000, seed=11)
    task = site.wait(task_id)
    assert task["state"] == "COMPLETED", task["error"]
    result = site.result(task_id)
    provenance = result["provenance"]
    job_id = provenance["scheduler_job_id"]
    assert job_id is not None and job_id.isdigit(), "the runner ran inside a Slurm job"
    assert task["scheduler"]["adapter"] == "dask" and task["scheduler"]["job_id"] == job_id
    # The worker the runner step ran on speaks TLS only.
    assert task["scheduler"]["exit_code"] == 0 and task["scheduler"]["worker"].startswith("tls://")
    assert sum(result["counts"].values()) == 2000

    with _prefect() as prefect:
        # The control plane hears first; the flow run ends once the artifacts are attached.
        run = _wait_flow_state(prefect, task_id, StateType.COMPLETED, timeout_s=10)
        assert run.deployment_id is not None, "deployment-backed"
        assert prefect.read_deployment(run.deployment_id).name == "vqpu-execute"
        assert run.idempotency_key == f"vqpu-task:{task_id}:1"
        assert {"vqpu", "device:ibm-fez"} <= set(run.tags)
        assert run.state_type == StateType.COMPLETED
        artifacts = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
        by_key = {a.key: a for a in artifacts}
        counts = by_key[f"vqpu-{task_id}-counts"]
        assert counts.type == "table"
        summary = by_key[f"vqpu-{task_id}-snapshot"]
        for expected in ("ibm-fez", task["bound_sha256"], "paper", f"{site.control_plane.url}/v1/tasks/{task_id}"):
            assert expected in str(summary.data)
        # The runner step is a task run of this flow run (Prefect records task runs from their events, a moment later).
        steps = _wait_task_runs(prefect, run, StateType.COMPLETED)
        assert [t.task_key.split("-")[0] for t in steps] == ["run_runner"] and steps[0].name.startswith("runner-")


def test_a_cancel_on_the_control_plane_kills_the_runner_within_2_s_and_the_next_task_starts(
    site: Site, prefect_env: str
) -> None:
    site.agent("local", slots=1)
    long_id = site.submit(LONG, dialect="qasm2", shots=100)
    site.wait_running(long_id)
    queued_id = site.submit(BELL)
    cancelled_at = time.monotonic()
    r = site.user.post(f"/v1/tasks/{long_id}/cancel")
    assert r.status_code == 200, r.text
    task = site.wait(long_id, timeout_s=10)
    took = time.monotonic() - cancelled_at
    assert task["state"] == "CANCELLED" and took < 2.0, f"{task['state']} after {took:.2f} s"
    with _prefect() as prefect:
        _wait_flow_state(prefect, long_id, StateType.CANCELLED, timeout_s=5)
    # The slot is free at once: the next task runs to the end long before the cancelled one would have.
    nxt = site.wait(queued_id, timeout_s=15)
    assert nxt["state"] == "COMPLETED", nxt["error"]


def test_a_cancel_pressed_in_prefect_ends_the_task_cancelled_in_both_systems_within_2_s(
    site: Site, prefect_env: str
) -> None:
    site.agent("local", slots=1)
    long_id = site.submit(LONG, dialect="qasm2", shots=100)
    site.wait_running(long_id)
    with _prefect() as prefect:
        run = _wait_flow_state(prefect, long_id, StateType.RUNNING, timeout_s=10)
        pressed = time.monotonic()
        prefect.set_flow_run_state(run.id, Cancelling(message="pressed in the UI"))
        task = site.wait(long_id, timeout_s=10)
        took = time.monotonic() - pressed
        assert task["state"] == "CANCELLED" and took < 2.0, f"{task['state']} after {took:.2f} s"
        _wait_flow_state(prefect, long_id, StateType.CANCELLED, timeout_s=5)


def test_the_agent_starts_no_flow_run_it_did_not_create(site: Site, prefect_env: str) -> None:
    site.agent("local", env={"PREFECT_WORKER_QUERY_SECONDS": "1"})
    with _prefect() as prefect:
        deployment = prefect.read_deployment_by_name("vqpu-execute/vqpu-execute")
        stray = prefect.create_flow_run_from_deployment(
            deployment.id,
            parameters={"task_id": "t-stray", "attempt": 1, "device": "ibm-fez", "run_dir": "/nonexistent"},
            state=Scheduled(),
        )
        time.sleep(4)  # four of the worker's pool polls
        assert prefect.read_flow_run(stray.id).state_type == StateType.SCHEDULED


def test_sigterm_lets_the_running_task_finish_then_the_agent_exits_0(site: Site, prefect_env: str) -> None:
    agent = site.agent("local", slots=1)
    task_id = site.submit(busy(10, 6), dialect="qasm2", shots=200)
    site.wait_running(task_id)
    assert agent.stop(timeout_s=60) == 0, agent.log_tail()
    task = site.task(task_id)
    assert task["state"] == "COMPLETED", f"{task['state']}: {task['error']}"


def test_prefect_worker_start_type_vqpu_runs_the_agent_and_stops_cleanly_on_sigterm(
    site: Site, prefect_env: str, tmp_path: Path
) -> None:
    site_path = site_file(tmp_path, "local", run_root=str(tmp_path / "runs"))
    env = {
        **os.environ,
        "VQPU_SITE": str(site_path),
        "VQPU_URL": site.control_plane.url,
        "VQPU_AGENT_KEY": site.keys["agent"],
        "VQPU_AGENT_ID": "prefect-started",
        "PREFECT_API_URL": prefect_env,
        "DO_NOT_TRACK": "1",
    }
    cmd = [sys.executable, "-m", "prefect", "worker", "start", "--pool", "vqpu-e2e", "--type", "vqpu"]
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        task_id = site.submit(BELL, shots=300)
        task = site.wait(task_id, timeout_s=120)
        assert task["state"] == "COMPLETED" and task["agent_id"] == "prefect-started", task["error"]
        with _prefect() as prefect:
            run = _wait_flow_state(prefect, task_id, StateType.COMPLETED)
            assert run.work_pool_name == "vqpu-e2e"
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, (tmp_path / "worker.log").read_text()[-3000:]
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_a_run_directory_the_agent_cannot_write_fails_that_task_and_the_agent_goes_on(
    site: Site, prefect_env: str
) -> None:
    blocked_id = site.submit(BELL)
    (site.workdir / "runs").mkdir()
    (site.workdir / "runs" / f"{blocked_id}.1").write_text("a file where the run directory should go")
    site.agent("local", slots=1)
    blocked = site.wait(blocked_id, timeout_s=60)
    assert blocked["state"] == "FAILED" and blocked["error"]["code"] == "EXECUTION_ERROR", blocked
    assert "could not write the run directory" in blocked["error"]["message"]
    fine = site.wait(site.submit(BELL), timeout_s=60)
    assert fine["state"] == "COMPLETED", fine["error"]
