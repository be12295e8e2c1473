"""The queued-violations inspection and the claim's re-check cost what the server allows, not what users
stored (SQLite and PostgreSQL): one call re-checks at most its byte budget of circuit source and says
where it stopped; a verdict once known is not computed again, by the next call or by the claim; and
the claim computes one before it takes its locks."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from device_registry import parse_snapshot
from device_registry.admissibility import Violation
from harness.circuits import hostile_circuits
from tests.integration.control_plane.api_client import Api, error
from tests.integration.control_plane.claiming import ACK, ClaimingStore
from tests.integration.control_plane.conftest import TABLES
from tests.integration.control_plane.tasks import BELL, LINE, new_task
from vqpu_service.adapters.auth import create_key
from vqpu_service.bootstrap import app_for, build_store
from vqpu_service.config import Settings
from vqpu_service.container import Container
from vqpu_service.domain.model import Role
from vqpu_service.ports import DeviceEpoch
from vqpu_service.services import commands
from vqpu_service.services.claims import ClaimService
from vqpu_service.services.devices import DeviceService
from vqpu_service.services.verdicts import REMEMBERED, Verdicts

MIB = 1024 * 1024
BUDGET = 3 * MIB + MIB // 2
FITS = hostile_circuits(MIB)["valid native program"]  # about a second of checking, on $0 and $1 only
DOOMED = FITS.replace("OPENQASM 3.0;\nbit[2] c;\n", "OPENQASM 3.0;\nbit[2] c;\nx $15;\n", 1)
"""The same, touching qubit 15 too: refused once it goes OFFLINE."""
ON_QUBIT_3 = "OPENQASM 3.0;\nbit[1] c;\nx $3;\nc[0] = measure $3;\n"


def open_api(database_url: str, tmp_path: Path, **settings: Any) -> Iterator[Api]:
    config = Settings(database_url=database_url, keys_file=tmp_path / "keys.json", **settings)
    if database_url.startswith("postgresql"):
        store = build_store(config)
        with store.tx.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        store.close()
    keys = {name: create_key(config.keys_file, name, role) for name, role in [("alice", Role.USER), ("bob", Role.USER)]}
    keys |= {"root": create_key(config.keys_file, "root", Role.ADMIN)}
    keys |= {"agent": create_key(config.keys_file, "agent", Role.AGENT)}
    with TestClient(app_for(config), raise_server_exceptions=False) as client:
        yield Api(client, keys)


@pytest.fixture
def budgeted(database_url: str, tmp_path: Path) -> Iterator[Api]:
    yield from open_api(database_url, tmp_path, queued_check_bytes=BUDGET)


@pytest.fixture
def one_at_a_time(database_url: str, tmp_path: Path) -> Iterator[Api]:
    """A budget smaller than any circuit: every call re-checks exactly one."""
    yield from open_api(database_url, tmp_path, queued_check_bytes=1)


def box(api: Api) -> Container:
    container: Container = api.client.app.state.container  # type: ignore[attr-defined]
    return container


def offline(api: Api, qubit: int) -> int:
    r = api.call("PATCH", f"/v1/devices/{LINE}", "root", json={"qubits": [{"index": qubit, "status": "OFFLINE"}]})
    assert r.status_code == 200, r.text
    epoch: int = r.json()["epoch"]
    return epoch


def violations(api: Api, epoch: int, who: str = "alice", after: str | None = None) -> dict[str, Any]:
    query = "" if after is None else f"?after={after}"
    r = api.call("GET", f"/v1/devices/{LINE}/epochs/{epoch}/queued-violations{query}", who)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_200_queued_megabyte_circuits_are_inspected_within_the_byte_budget_and_then_from_memory(
    budgeted: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = box(budgeted).store
    ids = [
        commands.submit(store, new_task(store, circuit=DOOMED if n % 2 else FITS), now(), None)[0].id
        for n in range(200)
    ]
    epoch = offline(budgeted, 15)

    started = time.monotonic()
    first = violations(budgeted, epoch)
    assert time.monotonic() - started < 60  # unbounded, the 200 re-checks took minutes
    assert first["truncated"] and first["checked_bytes"] <= BUDGET == first["budget_bytes"]
    assert (first["checked"], first["cached"], first["next_after"]) == (3, 0, ids[2])  # 3 MiB of 3.5
    assert [t["task_id"] for t in first["tasks"]] == [ids[1]]

    checked: list[str] = []
    check = box(budgeted).devices.viability
    monkeypatch.setattr(box(budgeted).devices, "viability", lambda r, c, d: checked.append(c) or check(r, c, d))
    again = violations(budgeted, epoch)
    assert (again["checked"], again["cached"], len(checked)) == (6, 3, 3)  # the first three from memory
    assert again["checked_bytes"] <= BUDGET and again["next_after"] == ids[5]
    assert [t["task_id"] for t in again["tasks"]] == [ids[1], ids[3], ids[5]]

    onward = violations(budgeted, epoch, after=again["next_after"])
    assert (onward["checked"], onward["cached"], onward["next_after"]) == (3, 0, ids[8])
    assert [t["task_id"] for t in onward["tasks"]] == [ids[7]]

    checked.clear()  # the claim binds the new epoch: it re-checks, and already knows all nine verdicts
    r = budgeted.call("POST", "/v1/agent/claim", "agent", json={"agent_id": "a", "max_tasks": 9})
    assert [t["task"]["id"] for t in r.json()["tasks"]] == ids[0:9:2] and checked == []
    assert {budgeted.call("GET", f"/v1/tasks/{i}").json()["state"] for i in ids[1:9:2]} == {"FAILED"}


def test_paging_with_after_visits_every_queued_task_once(one_at_a_time: Api) -> None:
    api = one_at_a_time
    ids = [api.submit(circuit=ON_QUBIT_3 if n % 3 == 0 else BELL).json()["id"] for n in range(7)]
    epoch = offline(api, 3)
    seen: list[int] = []
    refused: list[str] = []
    after: str | None = None
    for _ in range(10):
        page = violations(api, epoch, after=after)
        assert page["checked"] == 1  # a budget smaller than any circuit still makes progress
        seen.append(page["checked"])
        refused += [t["task_id"] for t in page["tasks"]]
        after = page["next_after"]
        if not page["truncated"]:
            break
    assert sum(seen) == 7 and after is None
    assert refused == [ids[0], ids[3], ids[6]]


def test_after_must_name_a_task_the_caller_may_see(one_at_a_time: Api) -> None:
    api = one_at_a_time
    bobs = api.submit("bob").json()["id"]
    mine = api.submit().json()["id"]
    epoch = offline(api, 3)
    for who, after in (("alice", bobs), ("alice", "t-nope")):
        r = api.call("GET", f"/v1/devices/{LINE}/epochs/{epoch}/queued-violations?after={after}", who)
        assert (r.status_code, error(r)["code"]) == (404, "NOT_FOUND")
    assert violations(api, epoch, "root", after=bobs)["checked"] == 1  # an admin pages through everyone's
    assert violations(api, epoch, "alice", after=mine)["checked"] == 0


def test_a_claim_re_checks_before_it_takes_the_write_lock_so_submits_do_not_wait(
    store: ClaimingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    devices = DeviceService(store, ttl_s=0)
    store.claims = ClaimService(store, Verdicts(devices, REMEMBERED), None, ACK)
    task, _ = store.submit(new_task(store, circuit=FITS), now())
    data = store.current_epoch(LINE).snapshot().to_json_dict()
    data["qubits"][15]["status"] = "OFFLINE"
    store.new_epoch(LINE, parse_snapshot(data), now())  # the claim binds a new epoch: it must re-check

    submits: list[threading.Thread] = []
    waited: list[bool] = []
    check = devices.viability

    def while_checking(record: DeviceEpoch, circuit: str, dialect: str) -> list[Violation]:
        submit = threading.Thread(target=lambda: store.submit(new_task(store, "bob"), now()))
        submit.start()
        submit.join(5)
        waited.append(submit.is_alive())
        submits.append(submit)
        return check(record, circuit, dialect)

    monkeypatch.setattr(devices, "viability", while_checking)
    [claimed] = store.claim("agent", 1, None, now())
    for submit in submits:
        submit.join(60)
    assert claimed.task.id == task.id and waited == [False]  # checked once, and nobody waited for it


def now() -> datetime:
    return datetime.now(UTC)
