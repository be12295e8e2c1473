"""The REST API over a real database (SQLite and PostgreSQL), through the real ASGI app and lifespan."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from harness.documents import result_document
from tests.integration.control_plane.api_client import Api, error
from tests.integration.control_plane.tasks import BELL


def test_health_needs_no_key_and_everything_else_does(api: Api) -> None:
    assert api.call("GET", "/v1/health", None).json()["status"] == "ok"
    r = api.call("GET", "/v1/tasks", None)
    assert r.status_code == 401 and error(r)["code"] == "UNAUTHENTICATED"
    r = api.call("GET", "/v1/tasks", None, headers={"Authorization": "Bearer vqpu_wrong"})
    assert r.status_code == 401
    assert api.call("GET", "/openapi.json", None).json()["info"]["title"] == "HPC-vQPU control plane"


def test_a_fresh_database_serves_the_bundled_catalogue(api: Api) -> None:
    devices = {d["device_id"]: d for d in api.call("GET", "/v1/devices").json()["devices"]}
    assert {"ibm-fez", "ibm-fez-ideal", "line-16"} <= set(devices)
    assert devices["ibm-fez"]["num_qubits"] == 156 and devices["ibm-fez"]["unavailable_edges"] == 7
    r = api.call("GET", "/v1/devices/ibm-fez")
    assert r.json()["num_qubits"] == 156 and r.headers["ETag"] == f'"{devices["ibm-fez"]["sha256"]}"'


def test_tenancy_and_roles(api: Api) -> None:
    task = api.submit().json()
    assert task["state"] == "QUEUED" and task["owner"] == "alice"
    assert api.call("GET", f"/v1/tasks/{task['id']}", "bob").status_code == 404
    assert api.call("POST", f"/v1/tasks/{task['id']}/cancel", "bob").status_code == 404
    assert [t["id"] for t in api.call("GET", "/v1/tasks", "bob").json()["tasks"]] == []
    assert api.submit("agent").status_code == 403
    claim = api.call("POST", "/v1/agent/claim", "alice", json={"agent_id": "a"})
    assert claim.status_code == 403 and error(claim)["code"] == "FORBIDDEN"
    assert api.call("PATCH", "/v1/devices/line-16", "alice", json={"qubits": []}).status_code == 403


def test_an_inadmissible_circuit_is_422_with_violations_and_nothing_is_stored(api: Api) -> None:
    r = api.submit(circuit="OPENQASM 3.0;\nbit[2] c;\nh $0;\ncz $0, $5;\n")
    err = error(r)
    assert r.status_code == 422 and err["code"] == "NOT_ADMISSIBLE"
    assert [v["code"] for v in err["detail"]["violations"]] == ["UNKNOWN_GATE", "NO_COUPLING"]
    assert [v["line"] for v in err["detail"]["violations"]] == [3, 4]
    assert api.count() == 0


def test_control_flow_the_device_does_not_execute_is_refused_at_submit_and_the_rest_is_queued(api: Api) -> None:
    repeat_until_one = "OPENQASM 3.0;\nbit[1] c;\nc[0] = measure $0;\nwhile (!c[0]) { sx $0; c[0] = measure $0; }\n"
    r = api.submit(device="ibm-fez", circuit=repeat_until_one)
    err = error(r)
    assert r.status_code == 422 and err["code"] == "NOT_ADMISSIBLE"
    [violation] = err["detail"]["violations"]
    assert (violation["code"], violation["line"]) == ("UNSUPPORTED_CONTROL_FLOW", 4)
    assert "ibm-fez does not execute while_loop" in violation["message"]
    assert api.count() == 0
    feedback = (
        "OPENQASM 3.0;\nbit[2] c;\nsx $0;\nc[0] = measure $0;\n"
        "if (c[0]) { x $1; }\nfor uint i in [0:1] { sx $1; }\nc[1] = measure $1;\n"
    )
    r = api.submit(device="ibm-fez", circuit=feedback)
    assert r.status_code == 201, r.text
    assert r.json()["estimate"]["expanded_ops"] == 6  # sx, measure, x, the loop's two sx, measure


@pytest.mark.parametrize(
    ("request_kw", "status", "code"),
    [
        ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "MALFORMED_JSON"),
        ({"json": {"device": "line-16", "circuit": BELL, "dialect": "qasm3", "shots": "many"}}, 400, "INVALID_SHOTS"),
        ({"json": {"device": "line-16", "circuit": BELL, "dialect": "quil", "shots": 1}}, 400, "UNKNOWN_DIALECT"),
        ({"json": {"device": "line-16", "circuit": BELL, "dialect": "qasm3", "shots": 0}}, 400, "INVALID_SHOTS"),
        ({"json": {"device": "line-16", "circuit": BELL, "dialect": "qasm3", "shots": 10**9}}, 400, "INVALID_SHOTS"),
        ({"json": {"device": "nowhere", "circuit": BELL, "dialect": "qasm3", "shots": 1}}, 404, "NOT_FOUND"),
        (
            {"json": {"device": "line-16", "circuit": BELL, "dialect": "qasm3", "shots": 1, "epoch": 9}},
            404,
            "NOT_FOUND",
        ),
        (
            {"json": {"device": "line-16", "circuit": BELL + "//" + "x" * 70_000, "dialect": "qasm3", "shots": 1}},
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        (
            {"content": b"{" + b" " * 300_000 + b"}", "headers": {"Content-Type": "application/json"}},
            413,
            "PAYLOAD_TOO_LARGE",
        ),
    ],
)
def test_bad_submissions_get_typed_errors_and_store_nothing(
    api: Api, request_kw: dict[str, Any], status: int, code: str
) -> None:
    r = api.call("POST", "/v1/tasks", **request_kw)
    assert (r.status_code, error(r)["code"]) == (status, code)
    assert api.count() == 0


def test_unknown_tasks_bad_tokens_and_illegal_transitions_are_typed(api: Api) -> None:
    assert error(api.call("GET", "/v1/tasks/t-nope"))["code"] == "NOT_FOUND"
    assert error(api.call("GET", "/v1/tasks?cursor=%%%"))["code"] == "INVALID_REQUEST"
    task = api.submit().json()
    forged = {"task": {**task, "epoch": 0, "snapshot_sha256": "0" * 64}, "attempt": 1}
    r = api.call(
        "POST",
        f"/v1/agent/tasks/{task['id']}/completed",
        "agent",
        json={"claim_token": "forged", "result": result_document(forged)},
    )
    assert (r.status_code, error(r)["code"]) == (409, "FENCED")
    api.call("POST", f"/v1/tasks/{task['id']}/cancel")
    r = api.call("POST", f"/v1/tasks/{task['id']}/cancel")
    assert (r.status_code, error(r)["code"]) == (409, "ILLEGAL_TRANSITION")
    r = api.call("POST", f"/v1/admin/tasks/{task['id']}/requeue", "root", json={"reason": "x"})
    assert (r.status_code, error(r)["code"]) == (409, "ILLEGAL_TRANSITION")
    assert api.call("GET", f"/v1/tasks/{task['id']}").json()["state"] == "CANCELLED"


def test_idempotency_key(api: Api) -> None:
    first = api.submit(headers={"Idempotency-Key": "run-1"})
    again = api.submit(headers={"Idempotency-Key": "run-1"})
    assert (first.status_code, again.status_code) == (201, 200) and first.json()["id"] == again.json()["id"]
    other = api.submit(shots=200, headers={"Idempotency-Key": "run-1"})
    assert (other.status_code, error(other)["code"]) == (409, "IDEMPOTENCY_CONFLICT")
    # Options spelled out at their defaults are the same submission (a client that sends every field,
    # a retry after an upgrade that added a defaulted option); a changed option is not.
    spelled = api.submit(
        options={"noise_model": "paper", "memory": False, "noise": {"scale": {}, "disable": []}},
        tags=[],
        headers={"Idempotency-Key": "run-1"},
    )
    assert (spelled.status_code, spelled.json()["id"]) == (200, first.json()["id"])
    changed = api.submit(options={"memory": True}, headers={"Idempotency-Key": "run-1"})
    assert (changed.status_code, error(changed)["code"]) == (409, "IDEMPOTENCY_CONFLICT")
    assert api.count() == 1


def test_a_waiting_claim_returns_the_moment_a_task_is_submitted(api: Api) -> None:
    box: dict[str, Any] = {}

    def wait() -> None:
        start = time.monotonic()
        box["response"] = api.call("POST", "/v1/agent/claim", "agent", json={"agent_id": "a1", "wait_s": 20})
        box["elapsed"] = time.monotonic() - start

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.5)
    task = api.submit().json()
    waiter.join(timeout=25)
    assert box["response"].status_code == 200
    assert [t["task"]["id"] for t in box["response"].json()["tasks"]] == [task["id"]]
    assert box["elapsed"] < 10, "woken by the submission, not by the long-poll timeout"
    assert api.call("POST", "/v1/agent/claim", "agent", json={"agent_id": "a1", "wait_s": 0.2}).status_code == 204


def test_full_lifecycle_over_the_agent_protocol(api: Api) -> None:
    task = api.submit().json()
    [claimed] = api.call("POST", "/v1/agent/claim", "agent", json={"agent_id": "a1", "wait_s": 1}).json()["tasks"]
    assert claimed["attempt"] == 1 and claimed["task"]["epoch"] == 0
    token = claimed["claim_token"]
    path = f"/v1/agent/tasks/{task['id']}"
    running = api.call("POST", f"{path}/running", "agent", json={"claim_token": token, "scheduler": {"job_id": "1"}})
    assert running.json()["scheduler"]["job_id"] == "1"
    assert error(api.call("GET", f"/v1/tasks/{task['id']}/result"))["code"] == "RESULT_NOT_READY"
    done = {"claim_token": token, "result": result_document(claimed, {"00": 60, "11": 40})}
    assert api.call("POST", f"{path}/completed", "agent", json=done).json()["repeated"] is False
    again = api.call("POST", f"{path}/completed", "agent", json=done)
    assert again.status_code == 200 and again.json()["repeated"] is True
    assert api.call("GET", f"/v1/tasks/{task['id']}/result").json()["counts"] == {"00": 60, "11": 40}
    types = [e["type"] for e in api.call("GET", f"/v1/tasks/{task['id']}/events").json()["events"]]
    assert types == ["TASK_SUBMITTED", "TASK_CLAIMED", "TASK_SCHEDULED", "TASK_COMPLETED"]


def test_cancel_of_a_running_task_reaches_the_owner_through_its_heartbeat(api: Api) -> None:
    task = api.submit().json()
    [c] = api.call("POST", "/v1/agent/claim", "agent", json={"agent_id": "a1"}).json()["tasks"]
    assert api.call("POST", f"/v1/tasks/{task['id']}/cancel").json()["cancel_requested"] is True
    beat = api.call(
        "POST",
        "/v1/agent/heartbeat",
        "agent",
        json={"agent_id": "a1", "tasks": [{"id": task["id"], "claim_token": c["claim_token"]}]},
    ).json()
    assert beat == {"cancel": [task["id"]], "fenced": [], "ended": {}}
    api.call("POST", f"/v1/agent/tasks/{task['id']}/cancelled", "agent", json={"claim_token": c["claim_token"]})
    assert api.call("GET", f"/v1/tasks/{task['id']}").json()["state"] == "CANCELLED"


def test_a_heartbeat_tells_an_attempt_its_own_ended_task_from_a_fenced_one(api: Api) -> None:
    """An agent back from a crash names the tasks of its open claims: one it completed (the report went
    through before it died) is `ended` with its state; one requeued meanwhile is `fenced`."""
    done, moved = api.submit().json(), api.submit().json()
    claimed = api.call("POST", "/v1/agent/claim", "agent", json={"agent_id": "a1", "max_tasks": 2}).json()["tasks"]
    token = {c["task"]["id"]: c["claim_token"] for c in claimed}
    [first] = [c for c in claimed if c["task"]["id"] == done["id"]]
    report = {"claim_token": token[done["id"]], "result": result_document(first, {"00": 100})}
    assert api.call("POST", f"/v1/agent/tasks/{done['id']}/completed", "agent", json=report).status_code == 200
    assert api.call("POST", f"/v1/admin/tasks/{moved['id']}/requeue", "root", json={"reason": "x"}).status_code == 200
    beat = {"agent_id": "a1", "tasks": [{"id": t, "claim_token": tok} for t, tok in token.items()]}
    reply = api.call("POST", "/v1/agent/heartbeat", "agent", json=beat).json()
    assert reply == {"cancel": [], "fenced": [moved["id"]], "ended": {done["id"]: "COMPLETED"}}
    other = {"agent_id": "a1", "tasks": [{"id": done["id"], "claim_token": "not-the-token"}]}
    assert api.call("POST", "/v1/agent/heartbeat", "agent", json=other).json()["fenced"] == [done["id"]]


def test_device_epochs_through_the_api(api: Api) -> None:
    r = api.call("PATCH", "/v1/devices/line-16", "root", json={"qubits": [{"index": 1, "status": "OFFLINE"}]})
    assert r.status_code == 200 and r.json()["epoch"] == 1
    assert api.call("GET", "/v1/devices/line-16").json()["qubits"][1]["status"] == "OFFLINE"  # no stale cache
    assert [e["epoch"] for e in api.call("GET", "/v1/devices/line-16/epochs").json()["epochs"]] == [0, 1]
    assert api.call("GET", "/v1/devices/line-16/epochs/0").json()["qubits"][1]["status"] == "ONLINE"
    v = api.call("POST", "/v1/devices/line-16/viability", json={"circuit": BELL, "dialect": "qasm3"}).json()
    assert v["admissible"] is False and v["violations"][0]["code"] == "QUBIT_OFFLINE"
    assert api.submit(epoch=0).status_code == 201  # replay against the epoch it was admissible on
    bad = api.call("PATCH", "/v1/devices/line-16", "root", json={"qubits": [{"index": 99, "status": "OFFLINE"}]})
    assert bad.status_code == 400
    bad = api.call("PUT", "/v1/devices/line-16", "root", json={"device_id": "line-16"})
    assert (bad.status_code, error(bad)["code"]) == (400, "INVALID_SNAPSHOT")
    assert [e["epoch"] for e in api.call("GET", "/v1/devices/line-16/epochs").json()["epochs"]] == [0, 1]
