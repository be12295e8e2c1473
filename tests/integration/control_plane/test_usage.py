"""Accounting (issue 18, must-have 7), over SQLite and PostgreSQL alike: a terminal report's usage is
stored with its task, and the export totals the tasks finished in a period per owner, device or agent,
through the store, the admin API (JSON and CSV) and `vqpu-server admin usage`."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text

from harness.documents import result_document
from tests.integration.control_plane.api_client import Api, error
from tests.integration.control_plane.tasks import LINE, completed, new_task
from vqpu_service import cli
from vqpu_service.adapters.sql.store import SqlStore
from vqpu_service.domain.decisions import Outcome, Report
from vqpu_service.domain.lifecycle import Action
from vqpu_service.domain.usage import Grouping, UsageTotals

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
GIB = 1024**3


def usage(wall: float, cpu: float | None = None, gpu: float | None = None, rss: int | None = None, by: str = "runner"):  # type: ignore[no-untyped-def]
    return {"wall_s": wall, "cpu_s": cpu, "gpu_s": gpu, "peak_rss_bytes": rss, "measured_by": by}


def run(store: SqlStore, owner: str, agent: str, action: Action, used: dict[str, Any] | None, at: datetime) -> str:
    """One task of `owner`, claimed by `agent` and ended by its report at `at`."""
    task, _ = store.submit(new_task(store, owner), at - timedelta(seconds=5))
    [claimed] = store.claim(agent, 1, None, at - timedelta(seconds=4))
    assert claimed.task.id == task.id
    if action is Action.REPORT_COMPLETED:
        rep = replace(completed(claimed), usage=used)
    elif action is Action.REPORT_FAILED:
        rep = Report(action, claimed.claim_token, error={"code": "RUNNER_FAILED", "message": "x"}, usage=used)
    else:
        store.cancel(task.id, owner, at - timedelta(seconds=2))
        rep = Report(action, claimed.claim_token, usage=used)
    store.report(task.id, rep, at)
    return task.id


@pytest.fixture
def ledger(store: SqlStore) -> SqlStore:
    """Alice: a completed run, a failed one measured only by the agent, a queued cancel; bob: a cancelled
    run and a completed run from an older agent (no usage); carol: a task finished before the period."""
    run(store, "alice", "a1", Action.REPORT_COMPLETED, usage(10.0, 18.5, 2.0, 3 * GIB), T0)
    run(store, "alice", "a2", Action.REPORT_FAILED, usage(4.25, None, None, None, "agent"), T0 + timedelta(minutes=1))
    queued, _ = store.submit(new_task(store, "alice"), T0)
    store.cancel(queued.id, "alice", T0 + timedelta(minutes=2))
    run(store, "bob", "a1", Action.REPORT_CANCELLED, usage(1.5, 1.0, None, GIB), T0 + timedelta(minutes=3))
    run(store, "bob", "a2", Action.REPORT_COMPLETED, None, T0 + timedelta(minutes=4))
    run(store, "carol", "a1", Action.REPORT_COMPLETED, usage(99.0, 99.0), T0 - timedelta(days=1))
    return store


def test_a_terminal_reports_usage_is_stored_with_its_task(store: SqlStore) -> None:
    used = usage(3.5, 6.25, 1.0, 2 * GIB)
    task_id = run(store, "alice", "a1", Action.REPORT_COMPLETED, used, T0)
    assert store.get_task(task_id).usage == used
    queued, _ = store.submit(new_task(store), T0)
    assert store.get_task(queued.id).usage is None


def test_a_repeated_report_with_a_remeasured_clock_is_still_repeated_and_keeps_the_first_usage(
    store: SqlStore,
) -> None:
    store.submit(new_task(store), T0)
    [claimed] = store.claim("a1", 1, None, T0)
    first = replace(completed(claimed), usage=usage(2.0, 3.0))
    store.report(claimed.task.id, first, T0)
    again, outcome = store.report(claimed.task.id, replace(first, usage=usage(2.1, 3.2)), T0 + timedelta(seconds=9))
    assert outcome is Outcome.REPEATED and again.usage == usage(2.0, 3.0)


def test_the_export_totals_each_owners_tasks_finished_in_the_period(ledger: SqlStore) -> None:
    found = ledger.usage(T0 - timedelta(hours=1), T0 + timedelta(hours=1), Grouping.OWNER)
    alice = UsageTotals("alice", 3, 1, 1, 1, 14.25, 18.5, 2.0, 3 * GIB, no_usage=1, agent_measured=1)
    bob = UsageTotals("bob", 2, 1, 0, 1, 1.5, 1.0, 0.0, GIB, no_usage=1, agent_measured=0)
    assert found == [alice, bob]  # carol's task finished the day before


def test_the_period_includes_its_start_and_excludes_its_end(ledger: SqlStore) -> None:
    [first] = ledger.usage(T0, T0 + timedelta(minutes=1), Grouping.OWNER)
    assert (first.key, first.tasks, first.wall_s) == ("alice", 1, 10.0)


def test_the_export_groups_by_device_and_by_agent(ledger: SqlStore) -> None:
    period = (T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    [line] = ledger.usage(*period, Grouping.DEVICE)
    assert (line.key, line.tasks, line.wall_s, line.cpu_s) == (LINE, 5, 15.75, 19.5)
    by_agent = {u.key: (u.tasks, u.wall_s) for u in ledger.usage(*period, Grouping.AGENT)}
    assert by_agent == {"a1": (2, 11.5), "a2": (2, 4.25), None: (1, 0.0)}  # None: cancelled while queued


def test_a_database_from_before_accounting_is_upgraded_in_place(store: SqlStore) -> None:
    columns = ("usage", "usage_wall_s", "usage_cpu_s", "usage_gpu_s", "usage_peak_rss_bytes", "usage_measured_by")
    with store.tx.engine.begin() as conn:
        for name in columns:
            conn.execute(text(f"ALTER TABLE task DROP COLUMN {name}"))  # the table an older release made
    store.create_schema()
    assert set(columns) <= {c["name"] for c in inspect(store.tx.engine).get_columns("task")}
    task_id = run(store, "alice", "a1", Action.REPORT_COMPLETED, usage(1.0, 2.0), T0)
    assert store.get_task(task_id).usage == usage(1.0, 2.0)
    [alice] = store.usage(T0 - timedelta(hours=1), T0 + timedelta(hours=1), Grouping.OWNER)
    assert (alice.tasks, alice.cpu_s) == (1, 2.0)


# --- the admin API --------------------------------------------------------------------------------


def _finish(api: Api, owner: str, used: dict[str, Any] | None) -> str:
    task_id: str = api.submit(owner).json()["id"]
    r = api.call("POST", "/v1/agent/claim", "agent", json={"agent_id": "a1", "max_tasks": 1, "wait_s": 1})
    [claimed] = r.json()["tasks"]
    body: dict[str, Any] = {"claim_token": claimed["claim_token"], "result": result_document(claimed)}
    if used is not None:
        body["usage"] = used
    r = api.call("POST", f"/v1/agent/tasks/{task_id}/completed", "agent", json=body)
    assert r.status_code == 200, r.text
    return task_id


def test_the_admin_api_exports_usage_as_json_and_csv_and_refuses_users_and_agents(api: Api) -> None:
    a = _finish(api, "alice", usage(2.5, 4.0, None, GIB))
    _finish(api, "bob", usage(1.25, 0.5, None, 2 * GIB, "agent"))
    _finish(api, "bob", None)
    assert api.call("GET", f"/v1/tasks/{a}").json()["usage"] == usage(2.5, 4.0, None, GIB)
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()

    r = api.call("GET", "/v1/admin/usage", "root", params={"since": since, "by": "owner"})
    assert r.status_code == 200, r.text
    rows = {row["key"]: row for row in r.json()["rows"]}
    assert (rows["alice"]["tasks"], rows["alice"]["wall_s"], rows["alice"]["cpu_s"]) == (1, 2.5, 4.0)
    assert (rows["bob"]["tasks"], rows["bob"]["no_usage"], rows["bob"]["agent_measured"]) == (2, 1, 1)
    assert rows["bob"]["peak_rss_bytes"] == 2 * GIB

    r = api.call("GET", "/v1/admin/usage", "root", params={"since": since, "format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert [(t["key"], t["tasks"], float(t["wall_s"])) for t in table] == [("alice", "1", 2.5), ("bob", "2", 1.25)]

    for who in ("alice", "agent"):
        r = api.call("GET", "/v1/admin/usage", who, params={"since": since})
        assert (r.status_code, error(r)["code"]) == (403, "FORBIDDEN")
    r = api.call("GET", "/v1/admin/usage", "root", params={"since": "last tuesday"})
    assert r.status_code == 400 and "since" in error(r)["message"]


def test_a_report_with_an_infinite_clock_is_refused_and_stores_nothing(api: Api) -> None:
    task_id = api.submit("alice").json()["id"]
    r = api.call("POST", "/v1/agent/claim", "agent", json={"agent_id": "a1", "max_tasks": 1, "wait_s": 1})
    [claimed] = r.json()["tasks"]
    body = json.dumps(
        {"claim_token": claimed["claim_token"], "result": result_document(claimed), "usage": {"wall_s": 1e400}}
    )
    r = api.call(
        "POST",
        f"/v1/agent/tasks/{task_id}/completed",
        "agent",
        content=body.replace("1e400", "Infinity"),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert api.call("GET", f"/v1/tasks/{task_id}").json()["state"] == "RUNNING"


# --- the CLI --------------------------------------------------------------------------------------


def test_the_cli_exports_usage_as_json_and_csv(
    ledger: SqlStore, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ["--db", database_url, "--keys-file", str(tmp_path / "keys.json")]
    period = ["--since", "2026-12-01T09:00:00Z", "--until", "2026-12-01T11:00"]
    assert cli.main(["admin", "usage", *period, *where]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["by"] == "owner" and report["since"] == "2026-12-01T09:00:00+00:00"
    assert [(r["key"], r["tasks"], r["wall_s"], r["cpu_s"]) for r in report["rows"]] == [
        ("alice", 3, 14.25, 18.5),
        ("bob", 2, 1.5, 1.0),
    ]
    assert cli.main(["admin", "usage", *period, "--by", "agent", "--format", "csv", *where]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "key,tasks,completed,failed,cancelled,wall_s,cpu_s,gpu_s,peak_rss_bytes,no_usage,agent_measured"
    assert [line.split(",")[:2] for line in lines[1:]] == [["a1", "2"], ["a2", "2"], ["", "1"]]


def test_the_cli_refuses_a_time_that_is_not_iso_8601_with_status_2(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ["--db", database_url, "--keys-file", str(tmp_path / "keys.json")]
    assert cli.main(["admin", "usage", "--since", "yesterday", *where]) == 2
    assert "--since: 'yesterday' is not an ISO 8601 time" in capsys.readouterr().err
    assert cli.main(["admin", "usage", *where]) == 2
    assert cli.main(["admin", "usage", "--since", "2026-12-02", "--until", "2026-12-01", *where]) == 2
