"""Real `vqpu-server serve` processes over TCP: clean stop, two processes on one PostgreSQL, slow consumers.

The two-process tests switch the fallbacks off (event-table poll and the CLAIM re-read every 300 s),
so an event or a wake-up that crosses processes within the tests' timeouts can only have come by
PostgreSQL LISTEN/NOTIFY.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.circuits import BELL
from harness.documents import result_document
from harness.postgres import scratch_postgres_database
from harness.servers import ServerProcess, make_keys, stalled_sse_subscriber
from tests.requirements import require_postgres
from vqpu_service.domain.model import Role

pytestmark = pytest.mark.slow
NO_FALLBACKS = {"VQPU_EVENT_POLL_S": "300", "VQPU_CLAIM_RECHECK_S": "300", "VQPU_MAX_CLAIM_WAIT_S": "300"}


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _submit(base: str, key: str, device: str = "line-16") -> dict[str, Any]:
    body = {"device": device, "circuit": BELL, "dialect": "qasm3", "shots": 100}
    r = httpx.post(f"{base}/v1/tasks", json=body, headers=_auth(key), timeout=10)
    assert r.status_code == 201, r.text
    reply: dict[str, Any] = r.json()
    return reply


def _sse_events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The events of an open SSE response (their `data:` payloads), as they arrive."""
    for line in response.iter_lines():
        if line.startswith("data: "):
            event: dict[str, Any] = json.loads(line[6:])
            yield event


def _task(event: dict[str, Any]) -> str:
    return str(event["subject"]).removeprefix("task:")


def test_serve_registers_the_catalogue_and_exits_0_on_sigterm_removing_its_pid_file(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys.json", alice=Role.USER)
    server = ServerProcess(tmp_path, f"sqlite:///{tmp_path / 'vqpu.db'}", tmp_path / "keys.json").start()
    try:
        pid = int(server.pid_file.read_text())
        assert server.proc is not None and pid == server.proc.pid
        devices = httpx.get(f"{server.url}/v1/devices", headers=_auth(keys["alice"])).json()
        assert {"ibm-fez", "line-16"} <= {d["device_id"] for d in devices["devices"]}
    finally:
        status = server.stop()
    assert status == 0, server.log_tail()
    assert not server.pid_file.exists()


@pytest.fixture(scope="module")
def two_servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, ServerProcess, dict[str, str]]]:
    """Two server processes on one fresh PostgreSQL database, started together (both race to register
    the catalogue on first start; both must come up)."""
    require_postgres()
    work = tmp_path_factory.mktemp("two-servers")
    keys = make_keys(work / "keys.json", alice=Role.USER, agent=Role.AGENT)
    with scratch_postgres_database() as url:
        servers = [ServerProcess(work, url, work / "keys.json", name=name, env=NO_FALLBACKS) for name in ("a", "b")]
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(ServerProcess.start, servers))
        try:
            yield servers[0], servers[1], keys
        finally:
            statuses = [s.stop() for s in servers]
        assert statuses == [0, 0], [s.log_tail() for s in servers]


def test_both_servers_started_on_one_fresh_database_serve_one_catalogue(two_servers) -> None:  # type: ignore[no-untyped-def]
    a, b, keys = two_servers
    seen = [httpx.get(f"{s.url}/v1/devices", headers=_auth(keys["alice"])).json()["devices"] for s in (a, b)]
    assert seen[0] == seen[1]
    assert all(d["epoch"] == 0 for d in seen[0])  # registered once: no device got a second epoch


def test_sse_on_one_server_follows_tasks_submitted_on_the_other_live(two_servers) -> None:  # type: ignore[no-untyped-def]
    a, b, keys = two_servers
    start = httpx.get(f"{b.url}/v1/health").json()["last_event_id"]
    headers = {**_auth(keys["alice"]), "Last-Event-ID": str(start)}
    with httpx.stream(
        "GET", f"{b.url}/v1/events", params={"type": "TASK_SUBMITTED"}, headers=headers, timeout=20
    ) as response:
        assert response.status_code == 200
        events = _sse_events(response)
        first = _submit(a.url, keys["alice"])
        assert _task(next(events)) == first["id"]  # replayed or pushed: either way not missed
        # The stream has now replayed the store and follows its subscription; with the table poll
        # off, this one can only arrive through NOTIFY from the other process.
        second = _submit(a.url, keys["alice"])
        event = next(events)
        assert _task(event) == second["id"] and event["type"] == "TASK_SUBMITTED"


def test_a_claim_waiting_on_one_server_is_woken_by_a_submit_on_the_other(two_servers) -> None:  # type: ignore[no-untyped-def]
    a, b, keys = two_servers
    wait_s = 25.0
    device = "ring-12"  # no other test queues work for it
    reply: dict[str, Any] = {}

    def claim() -> None:
        t0 = time.monotonic()
        r = httpx.post(
            f"{b.url}/v1/agent/claim",
            json={"agent_id": "agent-b", "devices": [device], "wait_s": wait_s},
            headers=_auth(keys["agent"]),
            timeout=wait_s + 10,
        )
        reply.update(status=r.status_code, body=r.json() if r.status_code == 200 else None, t=time.monotonic() - t0)

    waiter = threading.Thread(target=claim)
    waiter.start()
    time.sleep(1.0)  # the claim is parked in its long-poll on server b
    task = _submit(a.url, keys["alice"], device)
    waiter.join(wait_s + 15)
    assert reply["status"] == 200, reply
    claimed = reply["body"]["tasks"][0]
    assert claimed["task"]["id"] == task["id"]
    assert 1.0 <= reply["t"] < wait_s / 2, f"woken after {reply['t']:.2f} s, not by the submit"
    # Report on the other server: the lifecycle does not care which process an agent talks to.
    done = httpx.post(
        f"{a.url}/v1/agent/tasks/{task['id']}/completed",
        json={"claim_token": claimed["claim_token"], "result": result_document(claimed, {"00": 60, "11": 40})},
        headers=_auth(keys["agent"]),
    )
    assert done.status_code == 200 and done.json()["state"] == "COMPLETED"
    result = httpx.get(f"{b.url}/v1/tasks/{task['id']}/result", headers=_auth(keys["alice"]))
    assert result.json()["counts"] == {"00": 60, "11": 40}


def _read_until_closed(sock: socket.socket, timeout_s: float) -> bytes:
    """Everything the server sends until it closes the connection; fails after `timeout_s` in all
    (keep-alive comments would otherwise keep a per-read timeout from ever firing)."""
    deadline = time.monotonic() + timeout_s
    chunks = []
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        chunk = sock.recv(1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
    raise AssertionError(f"the server did not close the stalled stream within {timeout_s} s")


def _fail_one(base: str, user: str, agent: str, error: dict[str, Any]) -> str:
    """Submit a task, claim it and report it failed with `error` (its TASK_FAILED event carries it)."""
    task = _submit(base, user, "star-8")
    r = httpx.post(
        f"{base}/v1/agent/claim", json={"agent_id": "a", "devices": ["star-8"]}, headers=_auth(agent), timeout=10
    )
    claimed = r.json()["tasks"][0]
    assert claimed["task"]["id"] == task["id"]
    r = httpx.post(
        f"{base}/v1/agent/tasks/{task['id']}/failed",
        json={"claim_token": claimed["claim_token"], "error": error},
        headers=_auth(agent),
        timeout=10,
    )
    assert r.status_code == 200 and r.json()["state"] == "FAILED", r.text
    return str(task["id"])


def test_a_stalled_sse_consumer_is_evicted_and_neither_submissions_nor_live_consumers_wait(tmp_path: Path) -> None:
    # Failed tasks whose error carries a 64 KiB stderr tail: 100 of them are ~6.5 MB of events, more
    # than the kernel's socket buffers (tcp_wmem max 4 MiB) and uvicorn's can hold for a reader that
    # never reads, so the stalled stream really backs up to its queue of 8.
    n = 100
    error = {"code": "RUNNER_CRASH", "message": "the runner died", "detail": {"stderr_tail": "x" * 65536}}
    keys = make_keys(tmp_path / "keys.json", alice=Role.USER, agent=Role.AGENT, ops=Role.ADMIN)
    env = {"VQPU_SSE_QUEUE_SIZE": "8"}
    with ServerProcess(tmp_path, f"sqlite:///{tmp_path / 'vqpu.db'}", tmp_path / "keys.json", env=env) as server:
        start = httpx.get(f"{server.url}/v1/health").json()["last_event_id"]
        # An admin sees every event, so ids have no gaps. The socket is closed even when an assertion
        # fails, so that its ResourceWarning cannot fail a later test.
        with stalled_sse_subscriber(server.url, keys["ops"]) as stalled:
            live: list[str] = []

            def follow() -> None:
                headers = {**_auth(keys["alice"]), "Last-Event-ID": str(start)}
                params = {"type": "TASK_FAILED"}
                with httpx.stream("GET", f"{server.url}/v1/events", params=params, headers=headers, timeout=30) as r:
                    for event in _sse_events(r):
                        live.append(_task(event))
                        if len(live) == n:
                            return

            follower = threading.Thread(target=follow)
            follower.start()
            # Every request has a 10 s timeout: a publisher that waited for the stalled reader would hang here.
            failed = [_fail_one(server.url, keys["alice"], keys["agent"], error) for _ in range(n)]
            follower.join(60)
            assert live == failed  # the live consumer got every event, in order, while the other stalled
            last = httpx.get(f"{server.url}/v1/health").json()["last_event_id"]

            raw = _read_until_closed(stalled, timeout_s=60).decode()
            assert ": evicted: slow consumer" in raw  # the server dropped it and said why, then closed
            got = [int(line[4:]) for line in raw.splitlines() if line.startswith("id: ")]
            assert got and got[0] == 1 and got == list(range(1, len(got) + 1))  # a gap-free prefix of the stream
            assert got[-1] < last  # it really fell behind
            # Reconnecting from the last id it saw replays the rest: nothing was lost by the eviction.
            headers = {**_auth(keys["ops"]), "Last-Event-ID": str(got[-1])}
            rest: list[int] = []
            with httpx.stream("GET", f"{server.url}/v1/events", headers=headers, timeout=30) as r:
                for event in _sse_events(r):
                    rest.append(event["id"])
                    if event["id"] >= last:
                        break
            assert got + rest == list(range(1, last + 1))
