"""The inspection routes over a real database (SQLite and PostgreSQL), through the real ASGI app:
a task's submitted circuit, and which QUEUED tasks a device epoch would refuse at claim."""

from __future__ import annotations

import time
from typing import Any

from tests.integration.control_plane.api_client import Api, error
from tests.integration.control_plane.tasks import BELL
from vqpu_protocol.limits import MAX_QUEUED_CHECK

ON_QUBIT_3 = "OPENQASM 3.0;\nbit[1] c;\nx $3;\nc[0] = measure $3;\n"
"""Admissible on line-16 until qubit 3 goes OFFLINE."""
QASM2 = (
    'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\nsx q[0];\ncz q[0],q[1];  // kept\nmeasure q -> c;\n'
)


def _current_epoch(api: Api, device: str = "line-16") -> int:
    epoch: int = api.call("GET", f"/v1/devices/{device}/epochs").json()["epochs"][-1]["epoch"]
    return epoch


def _offline(api: Api, qubit: int) -> int:
    r = api.call("PATCH", "/v1/devices/line-16", "root", json={"qubits": [{"index": qubit, "status": "OFFLINE"}]})
    assert r.status_code == 200, r.text
    epoch: int = r.json()["epoch"]
    return epoch


def _violations(api: Api, epoch: int, who: str = "alice") -> dict[str, Any]:
    r = api.call("GET", f"/v1/devices/line-16/epochs/{epoch}/queued-violations", who)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_the_circuit_route_returns_the_source_exactly_as_submitted_to_its_owner_only(api: Api) -> None:
    task = api.submit(circuit=QASM2, dialect="qasm2").json()
    r = api.call("GET", f"/v1/tasks/{task['id']}/circuit")
    assert r.status_code == 200
    assert r.json() == {"task_id": task["id"], "dialect": "qasm2", "circuit": QASM2, "pubs": None}
    assert api.call("GET", f"/v1/tasks/{task['id']}/circuit", "root").json()["circuit"] == QASM2
    other = api.call("GET", f"/v1/tasks/{task['id']}/circuit", "bob")
    assert (other.status_code, error(other)["code"]) == (404, "NOT_FOUND")  # another user's task is not revealed
    missing = api.call("GET", "/v1/tasks/t-nope/circuit")
    assert (missing.status_code, error(missing)["code"]) == (404, "NOT_FOUND")
    assert api.call("GET", f"/v1/tasks/{task['id']}/circuit", None).status_code == 401


def test_queued_violations_name_the_unpinned_tasks_a_new_epoch_refuses_and_the_claim_agrees(api: Api) -> None:
    before = _current_epoch(api)
    doomed = api.submit(circuit=ON_QUBIT_3).json()
    fine = api.submit(circuit=BELL).json()
    pinned = api.submit(circuit=ON_QUBIT_3, epoch=before).json()  # bound to `before` whatever happens next
    bobs = api.submit("bob", circuit=ON_QUBIT_3).json()
    after = _offline(api, 3)

    mine = _violations(api, after)
    assert (mine["device_id"], mine["epoch"], mine["checked"], mine["truncated"]) == ("line-16", after, 2, False)
    assert mine["sha256"] == api.call("GET", "/v1/devices/line-16").headers["ETag"].strip('"')
    assert [t["task_id"] for t in mine["tasks"]] == [doomed["id"]]
    (refused,) = mine["tasks"]
    assert refused["admitted_epoch"] == before
    assert [(v["code"], v["line"], v["operands"]) for v in refused["violations"]] == [
        ("QUBIT_OFFLINE", 3, [3]),  # x $3
        ("QUBIT_OFFLINE", 4, [3]),  # the measurement of $3
    ]

    everyone = _violations(api, after, "root")
    assert [t["task_id"] for t in everyone["tasks"]] == [doomed["id"], bobs["id"]] and everyone["checked"] == 3
    assert [t["task_id"] for t in _violations(api, after, "bob")["tasks"]] == [bobs["id"]]
    assert _violations(api, before)["tasks"] == []  # the epoch they were admitted on refuses nothing

    claim = api.call("POST", "/v1/agent/claim", "agent", json={"agent_id": "a", "max_tasks": 10, "wait_s": 0})
    assert {t["task"]["id"] for t in claim.json()["tasks"]} == {fine["id"], pinned["id"]}
    for task in (doomed, bobs):
        failed = api.call("GET", f"/v1/tasks/{task['id']}", "root").json()
        assert (failed["state"], failed["error"]["code"]) == ("FAILED", "NOT_ADMISSIBLE_AT_CLAIM")
    nothing = {"checked": 0, "checked_bytes": 0, "cached": 0, "tasks": []}
    assert _violations(api, after, "root") == {**everyone, **nothing}  # nothing QUEUED is left


def test_queued_violations_check_at_most_the_documented_number_of_tasks_and_say_so(api: Api) -> None:
    for _ in range(MAX_QUEUED_CHECK + 1):
        assert api.submit(circuit=ON_QUBIT_3).status_code == 201
    after = _offline(api, 3)
    started = time.monotonic()
    body = _violations(api, after)
    assert (body["checked"], body["truncated"], len(body["tasks"])) == (MAX_QUEUED_CHECK, True, MAX_QUEUED_CHECK)
    assert time.monotonic() - started < 10
    oldest_first = [t["id"] for t in api.call("GET", "/v1/tasks?limit=1000").json()["tasks"]]
    assert [t["task_id"] for t in body["tasks"]] == oldest_first[:MAX_QUEUED_CHECK]


def test_queued_violations_of_an_unknown_device_or_epoch_are_typed_404s(api: Api) -> None:
    for path in ("/v1/devices/nowhere/epochs/0/queued-violations", "/v1/devices/line-16/epochs/99/queued-violations"):
        r = api.call("GET", path)
        assert (r.status_code, error(r)["code"]) == (404, "NOT_FOUND")
    r = api.call("GET", "/v1/devices/line-16/epochs/-1/queued-violations")
    assert (r.status_code, error(r)["code"]) == (400, "INVALID_REQUEST")
    assert api.call("GET", "/v1/devices/line-16/epochs/0/queued-violations", None).status_code == 401
