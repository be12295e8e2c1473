"""The agent's HTTP client and one task's execution against a real `vqpu-server serve` process.

No agent process and no Prefect server: the tests drive `agent.control_plane.ControlPlane` and
`agent.execution.Execution` directly, against a control plane on a SQLite file, and look at what a user
or an operator would see over the REST API (the task, its error, its events).
"""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from agent.claims import CLAIM_FILE, Claim
from agent.control_plane import ControlPlane, Fenced
from agent.execution import Execution, Phase
from agent.scheduler.base import Resources
from agent.scheduler.memory import MemoryScheduler
from harness.circuits import BELL
from harness.documents import result_document
from harness.servers import ServerProcess, make_keys
from tests.e2e.sites import Site
from vqpu_protocol.api.agent import ClaimedTask, CompletedReport
from vqpu_protocol.rundir import ResultDocument, materialise
from vqpu_service.domain.model import Role

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]

AGENT_ID = "agent-cp"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def connect(site: Site, retry_for_s: float = 10.0) -> ControlPlane:
    return ControlPlane(site.control_plane.url, site.keys["agent"], AGENT_ID, retry_for_s=retry_for_s)


def event_types(site: Site, task_id: str) -> list[str]:
    return [e["type"] for e in site.events(task_id)]


def submit(site: Site) -> str:
    return site.submit(BELL, shots=100)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    keys = make_keys(tmp_path / "keys.json", user=Role.USER, agent=Role.AGENT, admin=Role.ADMIN)
    with ServerProcess(tmp_path, f"sqlite:///{tmp_path / 'control-plane.db'}", tmp_path / "keys.json") as server:
        site = Site(tmp_path, server, keys)
        try:
            yield site
        finally:
            site.close()


def restart_on_the_same_port(server: ServerProcess, timeout_s: float = 60.0) -> None:
    """Start the stopped server again on its old port (`start()` would pick a new one), on the same database."""
    assert server.proc is not None and server.proc.poll() is not None, "stop the server first"
    server._spawn()
    if not server._wait_healthy(timeout_s):
        raise RuntimeError(f"{server.name} did not come back on port {server.port}; its log:\n{server.log_tail()}")


def completed_report(claimed: ClaimedTask) -> CompletedReport:
    result = ResultDocument.model_validate(result_document(claimed.model_dump()))
    return CompletedReport(claim_token=claimed.claim_token, result=result)


async def claim_one(plane: ControlPlane, task_id: str) -> ClaimedTask:
    claimed = await plane.claim(max_tasks=1, wait_s=10)
    assert [c.task.id for c in claimed] == [task_id]
    return claimed[0]


def fake_python(tmp_path: Path, name: str, body: str) -> str:
    """An executable that the memory scheduler starts as `PATH -m runner RUN_DIR` ($3 is the run dir)."""
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


async def drive_with(site: Site, tmp_path: Path, python: str) -> tuple[str, Path, Any]:
    """Submit and claim a task, then execute it as the agent would, with `python` as the runner's
    interpreter; returns the task id, its run dir and how the execution ended (what its flow run will show)."""
    task_id = submit(site)
    async with connect(site) as plane:
        claimed = await claim_one(plane, task_id)
        run_dir = materialise(tmp_path / "runs" / f"{task_id}.{claimed.attempt}", claimed)
        claim = Claim.of(claimed, AGENT_ID)
        claim.save(run_dir)
        scheduler = MemoryScheduler(python=python, cwd=tmp_path)
        execution = Execution(
            claim=claim, run_dir=run_dir, control_plane=plane, scheduler=scheduler, resources=Resources()
        )
        try:
            with anyio.fail_after(60):
                state = await execution.drive()
        finally:
            await scheduler.close()
    assert state.phase is Phase.ENDED, state
    return task_id, run_dir, state


# --- reports ------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_a_report_sent_while_the_control_plane_is_down_is_retried_and_lands_once_it_is_back(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    task_id = submit(site)
    async with connect(site, retry_for_s=90) as plane:
        claimed = await claim_one(plane, task_id)
        report = completed_report(claimed)
        await anyio.to_thread.run_sync(site.control_plane.stop)

        acks: list[Any] = []

        async def send() -> None:
            acks.append(await plane.report(task_id, report))

        with caplog.at_level(logging.WARNING, logger="agent.control_plane"), anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                tg.start_soon(send)
                await anyio.sleep(1.0)
                assert acks == [], "a report was acknowledged while the control plane was down"
                await anyio.to_thread.run_sync(restart_on_the_same_port, site.control_plane)

    retries = [r for r in caplog.records if r.name == "agent.control_plane" and "retrying" in r.getMessage()]
    assert retries, "the report never failed while the control plane was down"
    [ack] = acks
    assert ack.id == task_id and ack.state == "COMPLETED" and ack.repeated is False
    task = site.task(task_id)
    assert task["state"] == "COMPLETED" and task["error"] is None
    assert event_types(site, task_id).count("TASK_COMPLETED") == 1
    r = site.user.get(f"/v1/tasks/{task_id}/result")
    assert r.status_code == 200 and r.json()["counts"] == {"00": 100}, r.text


async def test_the_same_terminal_report_sent_twice_answers_repeated_the_second_time_and_changes_nothing(
    site: Site,
) -> None:
    task_id = submit(site)
    async with connect(site) as plane:
        claimed = await claim_one(plane, task_id)
        report = completed_report(claimed)
        first = await plane.report(task_id, report)
        task_after_first = site.task(task_id)
        events_after_first = site.events(task_id)
        second = await plane.report(task_id, report)

    assert first.state == "COMPLETED" and first.repeated is False
    assert second.state == "COMPLETED" and second.repeated is True
    assert site.task(task_id) == task_after_first
    assert site.events(task_id) == events_after_first
    assert [e["type"] for e in events_after_first].count("TASK_COMPLETED") == 1
    assert "TASK_REPORT_REJECTED" not in [e["type"] for e in events_after_first]


async def test_a_report_with_a_claim_token_an_admin_requeue_fenced_raises_fenced_and_changes_nothing(
    site: Site,
) -> None:
    task_id = submit(site)
    async with connect(site, retry_for_s=30) as plane:
        claimed = await claim_one(plane, task_id)
        r = site.admin.post(f"/v1/admin/tasks/{task_id}/requeue", json={"reason": "the agent looked dead"})
        assert r.status_code == 200 and r.json()["state"] == "QUEUED", r.text

        started = time.monotonic()
        with pytest.raises(Fenced) as fenced:
            await plane.report(task_id, completed_report(claimed))
        assert time.monotonic() - started < 5, "a fenced report was retried instead of given up at once"

    assert fenced.value.status == 409 and fenced.value.code == "FENCED"
    task = site.task(task_id)
    assert task["state"] == "QUEUED" and task["error"] is None
    types = event_types(site, task_id)
    assert "TASK_COMPLETED" not in types
    rejected = [e for e in site.events(task_id) if e["type"] == "TASK_REPORT_REJECTED"]
    assert len(rejected) == 1
    assert rejected[0]["data"]["action"].endswith("completed") and rejected[0]["data"]["code"] == "FENCED"


# --- claims -------------------------------------------------------------------------------------


async def test_claim_returns_nothing_after_its_wait_when_nothing_is_queued(site: Site) -> None:
    wait_s = 1.5
    async with connect(site) as plane:
        started = time.monotonic()
        claimed = await plane.claim(max_tasks=4, wait_s=wait_s)
        elapsed = time.monotonic() - started
    assert claimed == []
    assert wait_s - 0.2 <= elapsed <= wait_s + 2.0, f"an empty claim came back after {elapsed:.2f} s"


async def test_claim_never_hands_out_more_than_max_tasks(site: Site) -> None:
    ids = {submit(site) for _ in range(3)}
    async with connect(site) as plane:
        first = await plane.claim(max_tasks=2, wait_s=5)
        second = await plane.claim(max_tasks=2, wait_s=5)
        third = await plane.claim(max_tasks=2, wait_s=0.5)
    assert len(first) == 2 and len(second) == 1 and third == []
    claimed_ids = [c.task.id for c in first + second]
    assert len(set(claimed_ids)) == 3 and set(claimed_ids) == ids
    for task_id in ids:
        task = site.task(task_id)
        assert task["state"] == "RUNNING" and task["agent_id"] == AGENT_ID and task["attempt"] == 1


# --- one task's execution -----------------------------------------------------------------------


async def test_a_runner_that_leaves_no_outcome_becomes_a_failed_task_carrying_the_evidence(
    site: Site, tmp_path: Path
) -> None:
    python = fake_python(tmp_path, "crashing-python", 'echo "boom: out of cheese"\nexit 7')
    task_id, run_dir, state = await drive_with(site, tmp_path, python)

    task = site.task(task_id)
    assert task["state"] == "FAILED", task
    error = task["error"]
    assert error["code"] == "RUNNER_CRASH", error
    assert error["detail"]["exit_code"] == 7
    assert any("boom: out of cheese" in line for line in error["detail"]["runner_log_tail"]), error
    assert task["scheduler"]["adapter"] == "memory" and task["scheduler"]["exit_code"] == 7, task["scheduler"]
    assert event_types(site, task_id).count("TASK_FAILED") == 1

    assert state.state == "FAILED" and "RUNNER_CRASH" in state.message
    note = json.loads((run_dir / CLAIM_FILE).read_text())
    assert note["ended"] == "reported" and note["task_id"] == task_id
    assert stat.S_IMODE(os.stat(run_dir / CLAIM_FILE).st_mode) == 0o600


async def test_a_runner_that_writes_a_malformed_result_becomes_a_failed_task_saying_result_malformed(
    site: Site, tmp_path: Path
) -> None:
    python = fake_python(
        tmp_path, "sloppy-python", """printf '{"schema": "vqpu.result/1"}' > "$3/result.json"\nexit 0"""
    )
    task_id, run_dir, state = await drive_with(site, tmp_path, python)

    task = site.task(task_id)
    assert task["state"] == "FAILED", task
    assert task["error"]["code"] == "RESULT_MALFORMED", task["error"]
    assert task["error"]["detail"] == {"file": "result.json"}
    assert task["scheduler"]["adapter"] == "memory" and task["scheduler"]["exit_code"] == 0, task["scheduler"]
    assert "TASK_COMPLETED" not in event_types(site, task_id)
    r = site.user.get(f"/v1/tasks/{task_id}/result")
    assert r.status_code != 200, r.text

    assert state.state == "FAILED" and "RESULT_MALFORMED" in state.message
    assert json.loads((run_dir / CLAIM_FILE).read_text())["ended"] == "reported"
