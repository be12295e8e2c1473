"""No claim into the void (issue 20, must-have 8), against a real `vqpu-server serve` over TCP, on SQLite and
PostgreSQL: an agent-like process long-polls CLAIM and is SIGKILLed.

Killed while its claim waits, it is handed nothing: the task arrives after it died and stays QUEUED for the
next live agent, whose claim is the task's first attempt. Killed just after the claim was answered (the
reply reached a process that never acknowledged it), the task goes back to QUEUED within the
acknowledgement window, never left RUNNING under the dead agent, and a late report from that attempt is
409 FENCED; a live agent that acknowledges its claim keeps it past the window and completes it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.circuits import BELL
from harness.documents import result_document
from harness.postgres import scratch_postgres_database
from harness.servers import ServerProcess, make_keys
from tests.requirements import require_postgres
from vqpu_service.domain.model import Role

pytestmark = pytest.mark.slow
DEVICE = "line-16"
ACK_WINDOW_S = 3.0
"""The server's VQPU_CLAIM_ACK_WINDOW_S here: short, so the test is; agents declare heartbeat_s 1 (3 beats)."""
MARGIN_S = 10.0
"""Generous: a sweep every 0.5 s takes a claim back within about half a second of its deadline."""

LONG_POLL = """
import json, os, sys, httpx
url, reply_file = sys.argv[1], sys.argv[2]
body = {"agent_id": "doomed", "devices": ["line-16"], "wait_s": 30, "heartbeat_s": 1}
headers = {"Authorization": "Bearer " + os.environ["VQPU_AGENT_KEY"]}
r = httpx.post(url + "/v1/agent/claim", json=body, headers=headers, timeout=60)
with open(reply_file + ".tmp", "w") as f:
    json.dump({"status": r.status_code, "body": r.json() if r.status_code == 200 else None}, f)
os.rename(reply_file + ".tmp", reply_file)
sys.stdin.read()  # holds what it claimed and never acknowledges it: killed here
"""
"""An agent as the control plane sees one, reduced to its long-poll CLAIM."""


class ControlPlane:
    def __init__(self, server: ServerProcess, keys: dict[str, str], workdir: Path) -> None:
        self.server, self.keys, self.workdir = server, keys, workdir
        self.doomed: list[subprocess.Popen[bytes]] = []
        self.http = {
            who: httpx.Client(base_url=server.url, headers=_auth(key), timeout=30) for who, key in keys.items()
        }

    def long_poll(self) -> tuple[subprocess.Popen[bytes], Path]:
        """The doomed agent's process, its long-poll CLAIM parked on the server (its agent is seen, and its
        first pass found nothing), and the file its claim's reply will be written to."""
        reply = self.workdir / f"reply-{time.monotonic_ns()}.json"
        env = {**os.environ, "VQPU_AGENT_KEY": self.keys["agent"]}
        proc = subprocess.Popen(
            [sys.executable, "-c", LONG_POLL, self.server.url, str(reply)], stdin=subprocess.PIPE, env=env
        )
        self.doomed.append(proc)
        _until(lambda: self.seen("doomed"), 30, "the doomed agent's claim reached the server")
        time.sleep(0.5)  # past its first pass over the queue, into its wait for work
        return proc, reply

    def seen(self, agent_id: str) -> bool:
        return any(a["agent_id"] == agent_id for a in self.get("admin", "/v1/admin/agents")["agents"])

    def get(self, who: str, path: str) -> Any:
        r = self.http[who].get(path)
        assert r.status_code == 200, r.text
        return r.json()

    def submit(self) -> str:
        r = self.http["user"].post(
            "/v1/tasks", json={"device": DEVICE, "circuit": BELL, "dialect": "qasm3", "shots": 100}
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def task(self, task_id: str) -> dict[str, Any]:
        task: dict[str, Any] = self.get("user", f"/v1/tasks/{task_id}")
        return task

    def events(self, task_id: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.get("user", f"/v1/tasks/{task_id}/events")["events"]
        return events

    def claim(self, agent_id: str) -> dict[str, Any]:
        body = {"agent_id": agent_id, "devices": [DEVICE], "wait_s": 5, "heartbeat_s": 1}
        r = self.http["agent"].post("/v1/agent/claim", json=body)
        assert r.status_code == 200, r.text
        [claimed] = r.json()["tasks"]
        return dict(claimed)

    def agent_post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.http["agent"].post(path, json=body)

    def close(self) -> None:
        for client in self.http.values():
            client.close()
        for proc in self.doomed:  # a test that failed before it killed its agent
            if proc.poll() is None:
                _kill(proc)


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        time.sleep(0.1)


def _time(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["time"])


def _kill(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)  # no goodbye: the kernel closes its connection
    proc.wait(10)
    assert proc.stdin is not None
    proc.stdin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def plane(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ControlPlane]:
    keys = make_keys(tmp_path / "keys.json", user=Role.USER, agent=Role.AGENT, admin=Role.ADMIN)
    env = {"VQPU_CLAIM_ACK_WINDOW_S": str(ACK_WINDOW_S), "VQPU_SWEEP_INTERVAL_S": "0.5"}
    with _database(request.param, tmp_path) as url, ServerProcess(tmp_path, url, tmp_path / "keys.json", env=env) as cp:
        plane = ControlPlane(cp, keys, tmp_path)
        try:
            yield plane
        finally:
            plane.close()


@contextmanager
def _database(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'control-plane.db'}"
        return
    require_postgres()
    with scratch_postgres_database() as url:
        yield url


def test_an_agent_killed_while_its_long_poll_waited_is_handed_nothing(plane: ControlPlane) -> None:
    doomed, reply = plane.long_poll()
    _kill(doomed)
    task_id = plane.submit()  # the work its claim was waiting for, arriving after it died
    watched_until = time.monotonic() + ACK_WINDOW_S + 2.0
    while time.monotonic() < watched_until:  # never RUNNING under the dead agent, not even for a window
        task = plane.task(task_id)
        assert (task["state"], task["attempt"], task["agent_id"]) == ("QUEUED", 0, None), task
        time.sleep(0.1)
    assert [e["type"] for e in plane.events(task_id)] == ["TASK_SUBMITTED"]
    assert not reply.exists()  # no reply reached it either
    claimed = plane.claim("live")
    assert claimed["task"]["id"] == task_id and claimed["attempt"] == 1  # the next live agent: its first attempt


def test_a_claim_answered_as_its_agent_died_goes_back_to_queued_and_a_live_agents_acknowledged_one_stays(
    plane: ControlPlane,
) -> None:
    doomed, reply = plane.long_poll()
    task_id = plane.submit()
    _until(reply.exists, 30, "the claim's reply reached the doomed agent")
    _kill(doomed)  # answered, never acknowledged: from here on nothing would ever report on the task
    lost = json.loads(reply.read_text())["body"]["tasks"][0]
    assert lost["task"]["id"] == task_id and plane.task(task_id)["agent_id"] == "doomed"

    _until(lambda: plane.task(task_id)["state"] != "RUNNING", ACK_WINDOW_S + MARGIN_S, "the claim was taken back")
    task = plane.task(task_id)
    assert (task["state"], task["agent_id"], task["attempt"]) == ("QUEUED", None, 1)
    events = {e["type"]: e for e in plane.events(task_id)}
    requeued = events["TASK_REQUEUED"]["data"]
    assert (requeued["reason"], requeued["previous_agent"]) == ("claim never acknowledged", "doomed")
    held_s = (_time(events["TASK_REQUEUED"]) - _time(events["TASK_CLAIMED"])).total_seconds()
    assert ACK_WINDOW_S <= held_s < ACK_WINDOW_S + MARGIN_S  # its whole window, as the server's clock says
    late = plane.agent_post(f"/v1/agent/tasks/{task_id}/running", {"claim_token": lost["claim_token"]})
    assert (late.status_code, late.json()["error"]["code"]) == (409, "FENCED")

    claimed = plane.claim("live")
    assert claimed["task"]["id"] == task_id and claimed["attempt"] == 2
    beat = {"agent_id": "live", "tasks": [{"id": task_id, "claim_token": claimed["claim_token"]}]}
    r = plane.agent_post("/v1/agent/heartbeat", beat)  # acknowledged: the agent has it
    assert r.status_code == 200 and r.json()["fenced"] == [], r.text
    time.sleep(ACK_WINDOW_S + 2.0)  # past its window, and several sweeps
    kept = plane.task(task_id)
    assert (kept["state"], kept["agent_id"], kept["attempt"]) == ("RUNNING", "live", 2)
    done = plane.agent_post(
        f"/v1/agent/tasks/{task_id}/completed",
        {"claim_token": claimed["claim_token"], "result": result_document(claimed, {"00": 100})},
    )
    assert done.status_code == 200 and done.json()["state"] == "COMPLETED", done.text
    assert [e["data"]["reason"] for e in plane.events(task_id) if e["type"] == "TASK_REQUEUED"] == [
        "claim never acknowledged"
    ]
