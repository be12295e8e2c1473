"""The engine makes a run directory only from an id that is one safe path component: a hostile id from
the control plane is refused with nothing written anywhere and nothing reported; a good one gets a
private run directory and a claim note only the agent's account can read. Its retention loop sweeps
the run root as soon as it starts."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any, cast

import anyio
import httpx
import pytest

from agent.claims import CLAIM_FILE, Claim
from agent.control_plane import ControlPlane
from agent.engine import Engine, EngineSettings
from agent.prefect_bridge import PrefectBridge
from agent.scheduler.base import JobHandle, Resources, SchedulerError
from agent.scheduler.memory import MemoryScheduler
from agent.site import Retention
from agent.view import PrefectView
from device_registry import catalog
from vqpu_protocol.api.agent import ClaimedTask

HOSTILE = ["../../escaped", "a/b", ".", "..", "t-1\x00", "t-1\n"]


class NoRuns(MemoryScheduler):
    """Starts no runner: these tests look at what a claim writes, not at a run (the task is reported failed)."""

    async def submit(self, run_dir: Path, resources: Resources) -> JobHandle:
        raise SchedulerError("this test runs nothing")


def no_view() -> PrefectView:
    """An operators' view that is never synced: these tests watch the run directories and the reports."""
    return PrefectView(cast(PrefectBridge, None), Path("/nonexistent"), str)


def _claimed(task_id: str) -> ClaimedTask:
    snapshot = catalog.load("line-16").canonical_json().decode()
    task = {
        "id": task_id,
        "device": "line-16",
        "circuit": "OPENQASM 3.0;\nbit[1] c;\nx $0;\nc[0] = measure $0;\n",
        "dialect": "qasm3",
        "shots": 10,
        "seed": 1,
        "options": {},
        "tags": [],
        "epoch": 0,
        "snapshot_sha256": hashlib.sha256(snapshot.encode()).hexdigest(),
    }
    return ClaimedTask.model_validate({"task": task, "snapshot": snapshot, "claim_token": "tok-1", "attempt": 1})


def _engine(run_root: Path, control_plane: ControlPlane, retention: Retention | None = None) -> Engine:
    settings = EngineSettings(
        slots=8,
        run_root=run_root,
        claim_wait_s=0,
        heartbeat_s=1,
        grace_s=0,
        resources=Resources(cpus=1),
        retention=retention,
    )
    return Engine(settings, control_plane, NoRuns(), no_view())


def _start_each(run_root: Path, ids: list[str]) -> list[httpx.Request]:
    """Hand each claimed task to a fresh engine's _start; the requests it then sent to the control plane."""
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(503)

    async def main() -> None:
        control_plane = ControlPlane(
            "http://cp", "key", "agent-1", retry_for_s=0, transport=httpx.MockTransport(answer)
        )
        settings = EngineSettings(
            slots=8, run_root=run_root, claim_wait_s=0, heartbeat_s=1, grace_s=0, resources=Resources(cpus=1)
        )
        engine = Engine(settings, control_plane, NoRuns(), no_view())
        async with control_plane, anyio.create_task_group() as runs:
            for task_id in ids:
                engine._start(_claimed(task_id), runs)
        assert engine.inflight == {}

    anyio.run(main)
    return sent


@pytest.mark.parametrize("task_id", HOSTILE)
def test_a_hostile_task_id_is_refused_with_nothing_written_and_nothing_reported(tmp_path: Path, task_id: str) -> None:
    run_root = tmp_path / "a" / "b" / "runs"
    run_root.mkdir(parents=True, mode=0o700)
    sent = _start_each(run_root, [task_id])
    assert sent == []
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["a", "a/b", "a/b/runs"]


def test_a_control_plane_id_gets_a_private_run_directory_and_claim_note(tmp_path: Path) -> None:
    previous = os.umask(0)  # private by creation, not by the umask
    try:
        sent = _start_each(tmp_path, ["t-0123456789abcdef0123"])
    finally:
        os.umask(previous)
    run_dir = tmp_path / "t-0123456789abcdef0123.1"
    assert stat.S_IMODE(os.lstat(run_dir).st_mode) == 0o700
    assert {p.name: stat.S_IMODE(os.lstat(p).st_mode) for p in run_dir.iterdir()} == {
        "task.json": 0o600,
        "snapshot.json": 0o600,
        CLAIM_FILE: 0o600,
    }
    assert [r.url.path for r in sent] == ["/v1/agent/tasks/t-0123456789abcdef0123/failed"]


def test_the_retention_loop_sweeps_at_start_sparing_open_claims_and_running_tasks(tmp_path: Path) -> None:
    def claimed(task_id: str, ended: Any) -> Path:
        run_dir = tmp_path / f"{task_id}.1"
        run_dir.mkdir(mode=0o700)
        Claim(task_id, 1, "tok", "line-16", "agent-1").save(run_dir, ended=ended)
        os.utime(run_dir / CLAIM_FILE, (1, 1))
        os.utime(run_dir, (1, 1))
        return run_dir

    done, open_claim, running = claimed("t-done", "reported"), claimed("t-open", None), claimed("t-running", "fenced")

    async def main() -> None:
        control_plane = ControlPlane("http://cp", "key", "agent-1", transport=httpx.MockTransport(httpx.Response))
        engine = _engine(tmp_path, control_plane, Retention(keep_days=1))
        engine.inflight["t-running"] = engine._execution(Claim("t-running", 1, "tok", "line-16", "agent-1"), running)
        async with anyio.create_task_group() as tg:
            tg.start_soon(engine._retention_loop)
            with anyio.move_on_after(5):
                while done.exists():
                    await anyio.sleep(0.01)
            await anyio.sleep(0.1)  # whatever else that first sweep would remove, it has
            tg.cancel_scope.cancel()

    anyio.run(main)
    assert not done.exists() and open_claim.is_dir() and running.is_dir()
