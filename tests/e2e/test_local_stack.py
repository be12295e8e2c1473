"""The embedded default: the local stack keeps Prefect on SQLite, which holds only while the local
agent's concurrency is bounded (2 slots). This is the evidence that it holds; and the one setting that
puts the stack's Prefect on PostgreSQL instead."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from harness.circuits import BELL
from harness.postgres import scratch_postgres_database
from harness.stack import LocalStack, main
from tests.e2e.sites import TERMINAL, Site
from tests.requirements import require_postgres


@pytest.mark.slow
def test_the_local_stack_on_sqlite_runs_30_tasks_exactly_once_without_locking_up_and_stops_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    stack = LocalStack(Path("stack")).start()  # relative, as the main job's default --out is
    try:
        assert stack.prefect is not None and stack.prefect.database_url.startswith("sqlite")
        site = Site(stack.workdir, stack.control_plane, stack.keys, stack.prefect.api_url)  # type: ignore[arg-type]
        ids = [site.submit(BELL, shots=256, seed=i) for i in range(30)]
        finished = [site.wait(task_id, timeout_s=300) for task_id in ids]
        assert Counter(t["state"] for t in finished) == {"COMPLETED": 30}
        assert all(sum(e["type"] == "TASK_COMPLETED" for e in site.events(t)) == 1 for t in ids)
        site.close()
    finally:
        statuses = stack.stop()
    assert statuses == {"agent": 0, "prefect": 0, "control_plane": 0}
    prefect_log = stack.prefect.log_file.read_text(errors="replace")
    assert "database is locked" not in prefect_log


def test_the_stack_command_refuses_a_prefect_database_url_without_an_async_driver(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--prefect-database-url", "postgresql://postgres@127.0.0.1/prefect"])
    assert exited.value.code == 2
    assert "postgresql+asyncpg://" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_one_setting_puts_the_stacks_prefect_on_postgresql(tmp_path: Path) -> None:
    """`scripts/stack.sh --prefect-database-url postgresql+asyncpg://...`: Prefect keeps its flow runs in that
    database (no SQLite file appears), the task's run is there, and SIGTERM stops everything cleanly."""
    require_postgres()
    workdir = tmp_path / "stack"
    with scratch_postgres_database() as url:
        prefect_url = url.replace("postgresql+psycopg://", "postgresql+asyncpg://", 1)
        command = [sys.executable, "-m", "harness.stack", "--no-ui", "--dir", str(workdir)]
        stack = subprocess.Popen(
            [*command, "--prefect-database-url", prefect_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            described = _described(stack, workdir / "stack.json", timeout_s=180)
            assert described["prefect_database"] == make_url(prefect_url).render_as_string(hide_password=True)
            assert not (workdir / "prefect.db").exists()
            user = {"Authorization": f"Bearer {described['keys']['user']}"}
            with httpx.Client(base_url=described["control_plane"], headers=user, timeout=30) as http:
                body = {"device": "ibm-fez", "circuit": BELL, "dialect": "qasm3", "shots": 256}
                task_id = http.post("/v1/tasks", json=body).json()["id"]
                deadline = time.monotonic() + 120
                while (state := http.get(f"/v1/tasks/{task_id}").json()["state"]) not in TERMINAL:
                    assert time.monotonic() < deadline, f"task {task_id} still {state}"
                    time.sleep(0.2)
            assert state == "COMPLETED"
            assert _flow_run_state(url, f"vqpu-{task_id}", timeout_s=30) == "COMPLETED"
        finally:
            if stack.poll() is None:
                stack.send_signal(signal.SIGTERM)  # what Ctrl-C at scripts/stack.sh does
            try:
                out, _ = stack.communicate(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(stack.pid, signal.SIGKILL)
                stack.communicate()
                raise
    assert stack.returncode == 0, out[-3000:]
    assert "stopped: agent exit 0, prefect exit 0, control_plane exit 0" in out


def _described(stack: subprocess.Popen[str], path: Path, timeout_s: float) -> dict[str, Any]:
    """stack.json, once the stack has written it (it does so when every process is up)."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert stack.poll() is None, f"the stack exited with {stack.returncode}"
        assert time.monotonic() < deadline, f"the stack did not start within {timeout_s} s"
        time.sleep(0.2)
    described: dict[str, Any] = json.loads(path.read_text())
    return described


def _flow_run_state(database_url: str, name: str, timeout_s: float) -> str | None:
    """The state of flow run `name` as Prefect's own database holds it, once it is final (or the last seen)."""
    engine = create_engine(database_url)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            with engine.connect() as conn:
                state = conn.execute(
                    text("SELECT state_type FROM flow_run WHERE name = :name"), {"name": name}
                ).scalar()
            if state in (*TERMINAL, "CRASHED") or time.monotonic() > deadline:
                return None if state is None else str(state)
            time.sleep(0.2)
    finally:
        engine.dispose()
