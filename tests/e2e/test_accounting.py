"""Accounting end to end (issue 18, must-have 7): tasks of two owners run as real Slurm jobs through a real
agent and control plane; the export, from `vqpu-server admin usage` (JSON and CSV) and from the admin API,
gives each owner exactly the sums of the usage its tasks show, and each task names its job and node."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from harness.circuits import BELL
from tests.e2e.sites import TERMINAL, Site
from tests.requirements import require_slurm
from vqpu_service.adapters.auth import create_key
from vqpu_service.domain.model import Role

pytestmark = pytest.mark.timeout(300)


def _sums(tasks: list[dict[str, Any]]) -> tuple[int, float, float]:
    return len(tasks), sum(t["usage"]["wall_s"] for t in tasks), sum(t["usage"]["cpu_s"] or 0.0 for t in tasks)


def _finished(site: Site, task_id: str, timeout_s: float = 180) -> dict[str, Any]:
    """The task as `GET /v1/tasks/{id}` shows it (to the admin: it reads both owners') once terminal."""
    deadline = time.monotonic() + timeout_s
    while True:
        task: dict[str, Any] = site.admin.get(f"/v1/tasks/{task_id}").json()
        if task["state"] in TERMINAL:
            return task
        assert time.monotonic() < deadline, f"task {task_id} is {task['state']} after {timeout_s} s"
        time.sleep(0.05)


def _export(site: Site, since: str, fmt: str) -> str:
    cp = site.control_plane
    command = [sys.executable, "-m", "vqpu_service.cli", "admin", "usage", "--since", since, "--by", "owner"]
    command += ["--format", fmt, "--db", cp.database_url, "--keys-file", str(cp.keys_file)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_the_usage_export_gives_each_owner_the_sums_of_its_tasks_usage(site: Site, prefect_env: str) -> None:
    require_slurm()
    since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    bob_key = create_key(site.control_plane.keys_file, "bob", Role.USER)
    site.agent("sbatch-local")
    submitted: dict[str, list[str]] = {"user": [site.submit(BELL, shots=200, seed=n) for n in range(2)], "bob": []}
    with httpx.Client(base_url=site.control_plane.url, headers={"Authorization": f"Bearer {bob_key}"}) as bob:
        for n in range(2):
            body = {"device": "ibm-fez", "circuit": BELL, "dialect": "qasm3", "shots": 300, "seed": n}
            r = bob.post("/v1/tasks", json=body)
            assert r.status_code == 201, r.text
            submitted["bob"].append(r.json()["id"])
    finished = {owner: [_finished(site, t) for t in ids] for owner, ids in submitted.items()}
    for task in finished["user"] + finished["bob"]:
        assert task["state"] == "COMPLETED", task["error"]
        assert task["usage"]["measured_by"] == "runner" and task["usage"]["wall_s"] > 0, task["usage"]
        assert task["usage"]["cpu_s"] is not None and task["usage"]["cpu_s"] > 0, task["usage"]
        assert str(task["scheduler"]["job_id"]).isdigit() and task["scheduler"]["node"], task["scheduler"]
    expected = {owner: _sums(tasks) for owner, tasks in finished.items()}

    report = json.loads(_export(site, since, "json"))
    got = {row["key"]: (row["tasks"], row["wall_s"], row["cpu_s"]) for row in report["rows"]}
    assert set(got) == {"user", "bob"}
    for owner, (count, wall, cpu) in expected.items():
        assert got[owner][0] == count and got[owner][1:] == pytest.approx((wall, cpu), rel=1e-12, abs=0)

    rows = list(csv.DictReader(io.StringIO(_export(site, since, "csv"))))
    from_csv = {r["key"]: (int(r["tasks"]), float(r["wall_s"]), float(r["cpu_s"])) for r in rows}
    assert from_csv == got  # the CSV writes each number as JSON does: the same values

    r = site.admin.get("/v1/admin/usage", params={"since": since, "by": "owner"})
    assert r.status_code == 200, r.text
    assert {row["key"]: (row["tasks"], row["wall_s"], row["cpu_s"]) for row in r.json()["rows"]} == got
    assert site.user.get("/v1/admin/usage", params={"since": since}).status_code == 403
