"""The control plane's side of issue 17, against a real `vqpu-server` process: a result that is not its
task's is refused (the run-directory swap made 2 of 3 tasks complete with another task's counts, or
with `shots 7, counts {"1": 7}` for a 1000-shot task), a stolen agent key reads no tenant's work, and
the database the server creates is closed to the machine's other accounts.

Each test fails on the code before issue 17: the control plane checked only that counts add up to the
document's own shots, the agent role read every task, and the SQLite file was created 0644."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.circuits import BELL, qasm2
from harness.documents import result_document
from harness.intruder import Intruder
from harness.runner_process import run_runner_process
from harness.servers import ServerProcess, make_keys
from vqpu_protocol.api.agent import ClaimedTask
from vqpu_protocol.rundir import RESULT_FILE, materialise
from vqpu_service.domain.model import Role

DEVICE = "line-16"
ONES = qasm2("x q[0];\nx q[1];\nmeasure q -> c;")
"""Bob's circuit: always "11", so his genuine result is unmistakably not Alice's Bell pair."""


@dataclass
class Served:
    server: ServerProcess
    keys: dict[str, str]
    work: Path

    def http(self, who: str) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, headers={"Authorization": f"Bearer {self.keys[who]}"}, timeout=30)


@pytest.fixture
def served() -> Iterator[Served]:
    # A directory every account may enter, as a site's service directory is: what keeps the database
    # from other accounts must then be the file's own mode, not a private directory above it.
    work = Path(tempfile.mkdtemp(prefix="vqpu-results-"))
    work.chmod(0o755)
    keys = make_keys(work / "keys.json", alice=Role.USER, bob=Role.USER, agent=Role.AGENT)
    try:
        with ServerProcess(work, f"sqlite:///{work / 'vqpu.db'}", work / "keys.json") as server:
            yield Served(server, keys, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def submit(served: Served, who: str, circuit: str, dialect: str) -> str:
    with served.http(who) as c:
        r = c.post("/v1/tasks", json={"device": DEVICE, "circuit": circuit, "dialect": dialect, "shots": 1000})
    assert r.status_code == 201, r.text
    task_id: str = r.json()["id"]
    return task_id


def run(claimed: ClaimedTask, run_dir: Path) -> dict[str, Any]:
    """The real runner on the claimed task: its genuine result.json."""
    materialise(run_dir, claimed)
    proc = run_runner_process(run_dir)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads((run_dir / RESULT_FILE).read_text())
    return result


def test_a_swapped_or_forged_result_is_refused_and_the_victim_still_completes_with_its_own(served: Served) -> None:
    victim_id = submit(served, "alice", BELL, "qasm3")
    other_id = submit(served, "bob", ONES, "qasm2")
    with served.http("agent") as agent, served.http("alice") as alice, served.http("bob") as bob:
        r = agent.post("/v1/agent/claim", json={"agent_id": "site-agent", "max_tasks": 2, "devices": [DEVICE]})
        claimed = {c["task"]["id"]: ClaimedTask.model_validate(c) for c in r.json()["tasks"]}
        assert set(claimed) == {victim_id, other_id}
        victim = claimed[victim_id]
        genuine = {task_id: run(c, served.work / "runs" / task_id) for task_id, c in claimed.items()}

        def complete(task_id: str, result: dict[str, Any]) -> httpx.Response:
            body = {"claim_token": claimed[task_id].claim_token, "result": result}
            return agent.post(f"/v1/agent/tasks/{task_id}/completed", json=body)

        # The swap: Bob's genuine result.json reported as Alice's; then the 7-shot forgery of issue 17.
        attacks = {
            "provenance.task_id": genuine[other_id],
            "shots": result_document(victim.model_dump(mode="json"), {"1": 7}),
        }
        for field, forged in attacks.items():
            r = complete(victim_id, forged)
            assert r.status_code == 422, r.text
            error = r.json()["error"]
            assert (error["code"], error["detail"]["field"]) == ("INVALID_RESULT", field)
        assert alice.get(f"/v1/tasks/{victim_id}").json()["state"] == "RUNNING"
        assert alice.get(f"/v1/tasks/{victim_id}/result").json()["error"]["code"] == "RESULT_NOT_READY"
        evidence = [e["data"] for e in alice.get(f"/v1/tasks/{victim_id}/events").json()["events"]]
        assert [e["field"] for e in evidence if e.get("code") == "INVALID_RESULT"] == list(attacks)

        # Each task then completes with its own result, and nobody sees the other's counts.
        for task_id in (victim_id, other_id):
            r = complete(task_id, genuine[task_id])
            assert (r.status_code, r.json()["state"]) == (200, "COMPLETED"), r.text
        mine = alice.get(f"/v1/tasks/{victim_id}/result").json()
        assert mine["counts"] == genuine[victim_id]["counts"] and mine["shots"] == 1000
        assert mine["provenance"]["task_id"] == victim_id and set(mine["counts"]) <= {"00", "01", "10", "11"}
        assert bob.get(f"/v1/tasks/{other_id}/result").json()["counts"] == {"11": 1000}


def test_a_stolen_agent_key_reads_no_tenants_circuit_and_lists_no_tasks(served: Served) -> None:
    secret = BELL + "// alice's secret ansatz\n"
    task_id = submit(served, "alice", secret, "qasm3")
    with served.http("agent") as stolen, served.http("alice") as alice:
        assert alice.get(f"/v1/tasks/{task_id}/circuit").json()["circuit"] == secret
        for path in ("", "/circuit", "/result", "/events"):
            r = stolen.get(f"/v1/tasks/{task_id}{path}")
            assert r.status_code == 404 and "secret" not in r.text, path
        for path in ("/v1/tasks", f"/v1/devices/{DEVICE}/epochs/0/queued-violations"):
            r = stolen.get(path)
            assert r.status_code == 403 and task_id not in r.text, path
        with stolen.stream("GET", "/v1/events", headers={"Last-Event-ID": "0"}) as events:
            assert events.status_code == 403
            assert task_id not in events.read().decode()


def test_the_database_a_real_server_creates_is_private_and_another_account_cannot_open_it(
    served: Served, intruder: Intruder
) -> None:
    submit(served, "alice", BELL, "qasm3")  # something worth stealing, and a WAL
    db = served.work / "vqpu.db"
    files = [db, db.with_name("vqpu.db-wal"), db.with_name("vqpu.db-shm")]
    assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {f.name: 0o600 for f in files}
    assert all(f.stat().st_uid == os.geteuid() for f in files)
    probe = intruder.python(
        "import sqlite3, sys\n"
        f"try:\n    open({str(db)!r}, 'rb').read(16)\nexcept PermissionError:\n    print('no read')\n"
        f"try:\n    sqlite3.connect('file:{db}?mode=ro', uri=True).execute('select circuit from task').fetchall()\n"
        "except sqlite3.Error as exc:\n    print('no query:', exc)\n"
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.splitlines()[0] == "no read" and probe.stdout.splitlines()[1].startswith("no query")


def test_a_server_refuses_to_start_on_a_keys_file_other_accounts_can_write(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    make_keys(keys, ops=Role.ADMIN)
    keys.chmod(0o666)
    proc = subprocess.run(
        [sys.executable, "-m", "vqpu_service.cli", "serve", "--port", "1", "--keys-file", str(keys)],
        env={**os.environ, "VQPU_DATABASE_URL": f"sqlite:///{tmp_path / 'vqpu.db'}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert (
        "INVALID_SETTINGS" in proc.stderr and str(keys) in proc.stderr and "writable by other accounts" in proc.stderr
    )


def test_a_server_on_a_database_others_can_read_says_so_in_its_log(tmp_path: Path) -> None:
    make_keys(tmp_path / "keys.json", ops=Role.ADMIN)
    db = tmp_path / "vqpu.db"
    with ServerProcess(tmp_path, f"sqlite:///{db}", tmp_path / "keys.json"):
        pass
    db.chmod(0o644)  # as an older release, or a careless copy, left it
    with ServerProcess(tmp_path, f"sqlite:///{db}", tmp_path / "keys.json") as server:
        log = server.log_tail(200)
    assert f"database file {db} is open to other accounts" in log and "chmod 600" in log
    assert stat.S_IMODE(db.stat().st_mode) == 0o644  # named, not silently changed
