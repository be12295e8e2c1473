"""The paper's recovery and concurrency scenes, and a restart that finishes what the agent started."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from harness.circuits import BELL, busy
from tests.e2e.conftest import LIVENESS_WINDOW_S
from tests.e2e.sites import Site
from tests.requirements import require_slurm

MEDIUM = busy(10, 12)
"""A few seconds of simulation."""


def _completions(site: Site, task_id: str) -> int:
    return sum(e["type"] == "TASK_COMPLETED" for e in site.events(task_id))


def _claim_note(site: Site, task_id: str, attempt: int) -> dict[str, object]:
    note: dict[str, object] = json.loads((site.workdir / "runs" / f"{task_id}.{attempt}" / "claim.json").read_text())
    return note


def _noted_ending(site: Site, task_id: str, attempt: int) -> object:
    """The claim note's ending, once the agent has written it: it does so right after the control plane
    answers the report, so a client can see the task finished a moment before."""
    deadline = time.monotonic() + 10
    while (ended := _claim_note(site, task_id, attempt)["ended"]) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return ended


@pytest.mark.slow
def test_the_recovery_scene_a_killed_agents_tasks_go_stale_are_requeued_and_complete_exactly_once(
    site: Site, prefect_env: str
) -> None:
    first = site.agent("local", agent_id="agent-a", slots=3)
    ids = [site.submit(MEDIUM, dialect="qasm2", shots=200, seed=s) for s in (1, 2, 3)]
    for task_id in ids:
        site.wait_running(task_id)
    tokens = {t: _claim_note(site, t, 1)["claim_token"] for t in ids}

    first.kill()  # SIGKILL: no drain, no report
    for task_id in ids:
        stale = site.wait(task_id, ["RUNNING"], timeout_s=LIVENESS_WINDOW_S * 4, stale=True)
        assert stale["agent_id"] == "agent-a"
        r = site.admin.post(f"/v1/admin/tasks/{task_id}/requeue", json={"reason": "agent-a was killed"})
        assert r.status_code == 200 and r.json()["state"] == "QUEUED", r.text

    site.agent("local", agent_id="agent-b", slots=3)
    for task_id in ids:
        task = site.wait(task_id, timeout_s=180)
        assert task["state"] == "COMPLETED" and task["attempt"] == 2 and task["agent_id"] == "agent-b"
        assert _completions(site, task_id) == 1

    # The killed lineage reports late (its runner may still have finished): refused, and kept as evidence.
    late_result = site.result(ids[0])
    r = site.agent_http.post(
        f"/v1/agent/tasks/{ids[0]}/completed", json={"claim_token": tokens[ids[0]], "result": late_result}
    )
    assert r.status_code == 409 and r.json()["error"]["code"] in ("FENCED", "ILLEGAL_TRANSITION"), r.text
    rejected = [e for e in site.events(ids[0]) if e["type"] == "TASK_REPORT_REJECTED"]
    assert rejected and rejected[-1]["data"]["action"].endswith("completed")
    assert _completions(site, ids[0]) == 1 and site.task(ids[0])["state"] == "COMPLETED"


@pytest.mark.slow
def test_a_restarted_agent_follows_its_still_running_slurm_job_and_reports_it_exactly_once(
    site: Site, prefect_env: str
) -> None:
    require_slurm()
    first = site.agent("sbatch-local", agent_id="agent-s")
    task_id = site.submit(MEDIUM, dialect="qasm2", shots=200, seed=5)
    site.wait_running(task_id)
    first.kill()  # the sbatch job lives on without its agent

    site.agent("sbatch-local", agent_id="agent-s")  # the same agent, restarted before anyone noticed
    task = site.wait(task_id, timeout_s=120)
    assert task["state"] == "COMPLETED" and task["attempt"] == 1, task["error"]
    assert _completions(site, task_id) == 1
    assert not any(e["type"] == "TASK_REQUEUED" for e in site.events(task_id))
    assert _noted_ending(site, task_id, 1) == "reported"
    provenance = site.result(task_id)["provenance"]
    assert provenance["scheduler_job_id"] == task["scheduler"]["job_id"]


@pytest.mark.slow
def test_the_concurrency_scene_two_agents_two_slots_each_complete_50_tasks_exactly_once(
    site: Site, prefect_env: str, record_property: pytest.RecordProperty
) -> None:
    for name in ("agent-1", "agent-2"):
        site.agent("local", agent_id=name, slots=2)
    started = time.monotonic()
    ids = [site.submit(BELL, shots=500, seed=i) for i in range(50)]
    finished = [site.wait(t, timeout_s=600) for t in ids]
    batch_s = time.monotonic() - started
    assert Counter(t["state"] for t in finished) == {"COMPLETED": 50}
    assert all(_completions(site, t) == 1 and site.task(t)["attempt"] == 1 for t in ids)
    split = Counter(t["agent_id"] for t in finished)
    assert set(split) == {"agent-1", "agent-2"}, f"both agents take work: {split}"
    record_property("split", dict(split))
    record_property("batch_s", round(batch_s, 1))
    print(f"\n50 tasks in {batch_s:.1f} s; split {dict(split)}")


@pytest.mark.slow
def test_a_task_handed_back_at_sigterm_is_finished_by_the_restarted_agent_exactly_once(
    site: Site, prefect_env: str
) -> None:
    first = site.agent("local", agent_id="agent-h", slots=1, grace_s=0)
    task_id = site.submit(MEDIUM, dialect="qasm2", shots=200, seed=9)
    site.wait_running(task_id)
    assert first.stop(timeout_s=60) == 0, first.log_tail()
    # Not reported: the task is still this agent's, and its claim note is still open.
    assert site.task(task_id)["state"] == "RUNNING"
    assert _claim_note(site, task_id, 1)["ended"] is None

    site.agent("local", agent_id="agent-h", slots=1)
    task = site.wait(task_id, timeout_s=120)
    assert task["state"] == "COMPLETED" and task["attempt"] == 1, task["error"]
    assert _completions(site, task_id) == 1
    assert _noted_ending(site, task_id, 1) == "reported"
