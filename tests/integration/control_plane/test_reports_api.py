"""Reports through the API (issue 17): a result is accepted only if it is its task's, and a cancel set
in Prefect is recorded as the site operator's. Over SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from harness.circuits import qasm2
from harness.documents import result_document
from tests.integration.control_plane.api_client import Api, error


def claim(api: Api, n: int = 1) -> list[dict[str, Any]]:
    r = api.call("POST", "/v1/agent/claim", "agent", json={"agent_id": "a1", "max_tasks": n, "wait_s": 1})
    assert r.status_code == 200, r.text
    tasks: list[dict[str, Any]] = r.json()["tasks"]
    assert len(tasks) == n
    return tasks


def report(api: Api, claimed: dict[str, Any], result: dict[str, Any]) -> Any:
    body = {"claim_token": claimed["claim_token"], "result": result}
    return api.call("POST", f"/v1/agent/tasks/{claimed['task']['id']}/completed", "agent", json=body)


def events(api: Api, task_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = api.call("GET", f"/v1/tasks/{task_id}/events").json()["events"]
    return found


def with_provenance(claimed: dict[str, Any], **changes: Any) -> dict[str, Any]:
    doc = result_document(claimed)
    return {**doc, "provenance": {**doc["provenance"], **changes}}


FORGED = {
    # The attack of issue 17: a valid document, 7 shots of "1", reported for a 1000-shot task.
    "shots": lambda victim, other: result_document(victim, {"1": 7}),
    # Another task's genuine result, reported for the victim (a swapped run directory).
    "provenance.task_id": lambda victim, other: result_document(other, {"00": 1000}),
    "provenance.epoch": lambda victim, other: with_provenance(victim, epoch=victim["task"]["epoch"] + 1),
    "provenance.snapshot_sha256": lambda victim, other: with_provenance(victim, snapshot_sha256="f" * 64),
    "counts": lambda victim, other: result_document(victim, {"0": 500, "1": 500}),
}


@pytest.mark.parametrize("field", list(FORGED))
def test_a_forged_or_swapped_result_is_422_invalid_result_naming_the_field_and_the_task_still_completes(
    api: Api, field: str
) -> None:
    victim_id = api.submit("alice", shots=1000).json()["id"]
    api.submit("bob", shots=1000)
    victim, other = claim(api, 2)
    assert victim["task"]["id"] == victim_id

    r = report(api, victim, FORGED[field](victim, other))
    err = error(r)
    assert (r.status_code, err["code"], err["detail"]["field"]) == (422, "INVALID_RESULT", field)
    assert field in err["message"]
    task = api.call("GET", f"/v1/tasks/{victim_id}").json()
    assert task["state"] == "RUNNING"  # nothing stored: the owner can still report or fail it
    assert error(api.call("GET", f"/v1/tasks/{victim_id}/result"))["code"] == "RESULT_NOT_READY"
    [evidence] = [e["data"] for e in events(api, victim_id) if e["type"] == "TASK_REPORT_REJECTED"]
    assert (evidence["code"], evidence["field"]) == ("INVALID_RESULT", field)

    ok = report(api, victim, result_document(victim, {"00": 520, "11": 480}))
    assert ok.status_code == 200 and ok.json()["state"] == "COMPLETED"
    assert api.call("GET", f"/v1/tasks/{victim_id}/result").json()["counts"] == {"00": 520, "11": 480}


def test_outcomes_must_have_the_circuits_registers_in_the_runners_order(api: Api) -> None:
    """Qiskit writes one group per register, the last declared first: `creg a[1]; creg b[2]` reads `bb a`."""
    circuit = "OPENQASM 2.0;\nqreg q[3];\ncreg a[1];\ncreg b[2];\nmeasure q[0] -> a[0];\nmeasure q[1] -> b[0];\n"
    api.submit(circuit=circuit, dialect="qasm2")
    [c] = claim(api)
    for wrong in ({"100": 100}, {"1 00": 100}, {"00 1": 50, "0 1": 50}):
        r = report(api, c, result_document(c, wrong))
        assert (r.status_code, error(r)["detail"]["field"]) == (422, "counts"), wrong
    assert report(api, c, result_document(c, {"01 1": 100})).json()["state"] == "COMPLETED"


def test_memory_is_checked_against_what_the_task_asked(api: Api) -> None:
    api.submit(shots=4, options={"memory": True}, circuit=qasm2("measure q -> c;"), dialect="qasm2")
    api.submit(shots=4)
    asked, not_asked = claim(api, 2)
    inconsistent = {**result_document(asked, {"00": 3, "11": 1}), "memory": ["00", "00", "11", "11"]}
    r = report(api, asked, inconsistent)
    assert (r.status_code, error(r)["code"]) == (422, "INVALID_RESULT")  # refused by the document itself
    r = report(api, asked, result_document(asked, {"00": 4}))
    assert (r.status_code, error(r)["detail"]["field"]) == (422, "memory")
    good = {**result_document(asked, {"00": 3, "11": 1}), "memory": ["00", "11", "00", "00"]}
    assert report(api, asked, good).json()["state"] == "COMPLETED"
    unasked = {**result_document(not_asked, {"00": 4}), "memory": ["00"] * 4}
    r = report(api, not_asked, unasked)
    assert (r.status_code, error(r)["detail"]["field"]) == (422, "memory")


def test_a_cancel_set_in_prefect_is_recorded_as_the_operators_with_the_prefect_actor(api: Api) -> None:
    mine = api.submit().json()["id"]
    [c] = claim(api)
    body = {"claim_token": c["claim_token"], "requested_by": "prefect", "actor": "ops-anna"}
    path = f"/v1/agent/tasks/{mine}/cancelled"
    assert api.call("POST", path, "agent", json=body).json()["state"] == "CANCELLED"
    again = api.call("POST", path, "agent", json=body)  # an agent's retry after a lost answer
    assert again.status_code == 200 and again.json()["repeated"] is True
    [cancelled] = [e["data"] for e in events(api, mine) if e["type"] == "TASK_CANCELLED"]
    assert (cancelled["by"], cancelled["via"], cancelled["actor"]) == ("operator", "prefect", "ops-anna")


def test_a_cancelled_report_without_a_source_is_the_owners_as_before(api: Api) -> None:
    mine = api.submit().json()["id"]
    [c] = claim(api)
    api.call("POST", f"/v1/tasks/{mine}/cancel")
    api.call("POST", f"/v1/agent/tasks/{mine}/cancelled", "agent", json={"claim_token": c["claim_token"]})
    [cancelled] = [e["data"] for e in events(api, mine) if e["type"] == "TASK_CANCELLED"]
    assert cancelled["by"] == "owner" and "via" not in cancelled


@pytest.mark.parametrize(
    "extra", [{"requested_by": "alice"}, {"actor": "x" * 201}, {"actor": ""}, {"actor": "nul\u0000"}]
)
def test_a_cancel_source_outside_the_protocol_is_400_and_changes_nothing(api: Api, extra: dict[str, str]) -> None:
    mine = api.submit().json()["id"]
    [c] = claim(api)
    r = api.call("POST", f"/v1/agent/tasks/{mine}/cancelled", "agent", json={"claim_token": c["claim_token"], **extra})
    assert r.status_code == 400
    assert api.call("GET", f"/v1/tasks/{mine}").json()["state"] == "RUNNING"
