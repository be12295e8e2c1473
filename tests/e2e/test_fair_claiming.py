"""Fair claiming end to end: a real control plane process, the session's Prefect server and a real
two-slot agent. One tenant's long backlog does not hold another tenant's short task back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.circuits import BELL, busy
from harness.prefect_server import PrefectServerProcess
from harness.servers import ServerProcess, make_keys
from tests.e2e.sites import TERMINAL, Site
from vqpu_service.domain.model import Role

LONG = busy(10, 40)
"""10-20 s of simulation: both slots stay busy while bob submits."""
LONGER = busy(10, 120)
"""Three times LONG (density-matrix time does not depend on shots): alice's second slot stays busy
while her first frees, even when the two start apart or the machine is loaded."""


@pytest.fixture
def shared_site(tmp_path: Path, prefect_server: PrefectServerProcess) -> Iterator[tuple[Site, httpx.Client]]:
    """A site whose `user` is alice, with a second tenant, bob (his client is yielded beside it)."""
    keys = make_keys(tmp_path / "keys.json", user=Role.USER, bob=Role.USER, agent=Role.AGENT, admin=Role.ADMIN)
    with ServerProcess(tmp_path, f"sqlite:///{tmp_path / 'control-plane.db'}", tmp_path / "keys.json") as cp:
        site = Site(tmp_path, cp, keys, prefect_server.api_url)
        bob = httpx.Client(base_url=cp.url, headers={"Authorization": f"Bearer {keys['bob']}"}, timeout=30)
        try:
            yield site, bob
        finally:
            bob.close()
            site.close()


def _finished(client: httpx.Client, task_id: str, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        task: dict[str, Any] = client.get(f"/v1/tasks/{task_id}").json()
        if task["state"] in TERMINAL:
            return task
        assert time.monotonic() < deadline, f"task {task_id} is still {task['state']} after {timeout_s} s"
        time.sleep(0.05)


@pytest.mark.slow
def test_another_tenants_short_task_runs_as_soon_as_a_slot_frees_behind_a_long_backlog(
    shared_site: tuple[Site, httpx.Client], prefect_env: str
) -> None:
    site, bob = shared_site
    # alice's second task holds its slot past the test: had both of hers finished together, she would
    # hold no slot when one freed, and her older task would rightly go before bob's. (CI saw that when
    # the second task differed only in shots, which a density-matrix run does not take longer for: both
    # slots freed in one claim, which took alice's oldest and bob's together.)
    alices = [site.submit(circuit, dialect="qasm2", shots=100) for circuit in [LONG, LONGER] + [LONG] * 18]
    site.agent("local", slots=2)
    for task_id in alices[:2]:
        site.wait_running(task_id)
    r = bob.post("/v1/tasks", json={"device": "ibm-fez", "circuit": BELL, "dialect": "qasm3", "shots": 10})
    assert r.status_code == 201, r.text
    bobs = r.json()["id"]

    site.wait(alices[0], timeout_s=120)  # the first slot frees
    done = _finished(bob, bobs)
    assert done["state"] == "COMPLETED", done["error"]
    # Bob's task took the first slot that freed after he submitted: none of alice's got one before it.
    claimed_since = [
        t["claimed_at"] for t in map(site.task, alices) if t["claimed_at"] and t["claimed_at"] > done["created_at"]
    ]
    assert all(when > done["claimed_at"] for when in claimed_since), (done["claimed_at"], claimed_since)
    for task_id in alices:
        site.user.post(f"/v1/tasks/{task_id}/cancel")
