"""Prefect is the operators' view, not a dependency (issue 20): with the site's Prefect server killed for
120 s while tasks are submitted and running, and an agent SIGKILLed right after a COMPLETED report and
restarted meanwhile, every task completes exactly once on the control plane during the outage; within 60 s
of Prefect's return every task's flow run is in the matching final state with its artifacts.

Real processes throughout: a control plane, a Prefect server on SQLite (the embedded default's), an agent on
a Dask LocalCluster, and Prefect killed with SIGKILL (a crash, not a clean stop) and started again on the
same port and database."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter, FlowRunFilterName
from prefect.client.schemas.objects import StateType

from harness.agents import ROOT
from harness.circuits import BELL, busy
from harness.prefect_server import PrefectServerProcess, prefect_api
from harness.servers import ServerProcess, make_keys
from tests.e2e.sites import Site
from vqpu_service.domain.model import Role

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

OUTAGE_S = 120.0
CATCH_UP_S = 60.0


class InterruptiblePrefect(PrefectServerProcess):
    """A Prefect server that can crash and come back where it was (same port, same SQLite database)."""

    def crash(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        subprocess.run(["pkill", "-KILL", "-g", str(self.proc.pid)], check=False)
        self.proc.wait()

    def resume(self, timeout_s: float = 120.0) -> None:
        self._spawn()
        assert self._wait_healthy(timeout_s), self.log_tail()


def flow_run(prefect: SyncPrefectClient, task_id: str) -> Any:
    runs = prefect.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[f"vqpu-{task_id}"])))
    assert len(runs) <= 1, f"{len(runs)} flow runs for task {task_id}"
    return runs[0] if runs else None


def shown_completed(prefect: SyncPrefectClient, task_id: str) -> bool:
    run = flow_run(prefect, task_id)
    if run is None or run.state_type is not StateType.COMPLETED:
        return False
    artifacts = prefect.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
    )
    return f"vqpu-{task_id}-snapshot" in {a.key for a in artifacts}


def agent_status(site_path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "agent.cli", "status", "--site", str(site_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    status: dict[str, Any] = json.loads(out.stdout)
    return status


def test_a_prefect_outage_costs_no_task_and_the_view_converges_after_it(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys.json", user=Role.USER, agent=Role.AGENT, admin=Role.ADMIN)
    prefect = InterruptiblePrefect(tmp_path / "prefect").start(timeout_s=120)
    try:
        with (
            prefect_api(prefect),
            ServerProcess(tmp_path, f"sqlite:///{tmp_path / 'control-plane.db'}", tmp_path / "keys.json") as cp,
        ):
            site = Site(tmp_path, cp, keys, prefect.api_url)
            try:
                scenario(site, prefect)
            finally:
                site.close()
    finally:
        if prefect.proc is not None and prefect.proc.poll() is None:
            prefect.stop()


def scenario(site: Site, prefect: InterruptiblePrefect) -> None:
    agent = site.agent("local", slots=2)
    first = site.submit(BELL, shots=200)
    assert site.wait(first)["state"] == "COMPLETED"
    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + 30
        while not shown_completed(client, first):
            assert time.monotonic() < deadline, "the view did not show a task while Prefect was up"
            time.sleep(0.2)

    running = site.submit(busy(10, 12), dialect="qasm2", shots=100)  # a few seconds: running when Prefect dies
    site.wait_running(running)
    prefect.crash()
    crashed_at = time.monotonic()

    during = [site.submit(BELL, shots=100 + i) for i in range(5)]
    for task_id in [running, *during]:
        task = site.wait(task_id, timeout_s=60)
        assert task["state"] == "COMPLETED", (task_id, task["state"], task["error"])

    # The agent is SIGKILLed right after a COMPLETED report is taken, and comes back while Prefect is still away.
    killed = site.submit(busy(6, 4), dialect="qasm2", shots=100)
    site.wait(killed, states=("COMPLETED",), timeout_s=60)
    agent.kill()
    restarted = site.agent("local", slots=2)
    after = [site.submit(BELL, shots=300 + i) for i in range(2)]
    for task_id in after:
        assert site.wait(task_id, timeout_s=60)["state"] == "COMPLETED"
    deadline = time.monotonic() + 10  # the agent rewrites its status every 2 s
    while True:
        status = agent_status(restarted.site)
        if status["prefect"]["reachable"] is False and status["prefect"]["behind"] >= len(after):
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.5)
    assert time.monotonic() - crashed_at < OUTAGE_S, "the work did not finish within the outage"

    everything = [first, running, *during, killed, *after]
    for task_id in everything:  # exactly once: one attempt, one completion, nothing failed for want of Prefect
        task = site.task(task_id)
        assert (task["state"], task["attempt"]) == ("COMPLETED", 1), (task_id, task)
        kinds = [e["type"] for e in site.events(task_id)]
        assert kinds.count("TASK_COMPLETED") == 1 and "TASK_FAILED" not in kinds, (task_id, kinds)

    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - crashed_at)))
    prefect.resume()
    back_at = time.monotonic()
    with get_client(sync_client=True) as client:
        missing = list(everything)
        while missing:
            missing = [t for t in missing if not shown_completed(client, t)]
            if missing and time.monotonic() - back_at > CATCH_UP_S:
                states = {t: getattr(flow_run(client, t), "state_type", None) for t in missing}
                raise AssertionError(f"{CATCH_UP_S:.0f} s after Prefect came back, not shown: {states}")
            time.sleep(0.5)
        late = flow_run(client, during[0])
        assert "late: it happened at" in (late.state.message or ""), late.state.message
        killed_run = flow_run(client, killed)
        assert killed_run.state_type is StateType.COMPLETED  # not Cancelled "handed to another attempt"
    caught_up = time.monotonic() - back_at

    log = restarted.log_file.read_text(errors="replace")
    assert log.count("view: Prefect does not answer") == 2, "one line from each agent process that saw the outage"
    assert log.count("view: caught up") == 1
    time.sleep(2.5)  # the next status the agent writes
    status = agent_status(restarted.site)
    prefect = dict(status["prefect"])
    busy_answers = prefect.pop("busy_answers")  # how often Prefect answered 'busy' (5xx) meanwhile: it may have
    assert prefect == {"reachable": True, "behind": 0, "oldest_s": 0.0} and isinstance(busy_answers, int), status
    print(f"every flow run settled {caught_up:.1f} s after Prefect came back")
