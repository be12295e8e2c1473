"""The agent role reads no tenant's tasks (issue 17): what an agent needs of a task comes with its
claim, so a stolen agent key lists nothing (403) and reads no task, circuit, result or events (404,
the answer an unknown id gets). Over SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from harness.documents import result_document
from tests.integration.control_plane.api_client import Api, error


@pytest.fixture
def finished(api: Api) -> str:
    """Alice's task, claimed by the agent and completed: everything there is to read about it exists."""
    task_id: str = api.submit("alice").json()["id"]
    [c] = api.call("POST", "/v1/agent/claim", "agent", json={"agent_id": "a1", "wait_s": 1}).json()["tasks"]
    body = {"claim_token": c["claim_token"], "result": result_document(c)}
    assert api.call("POST", f"/v1/agent/tasks/{task_id}/completed", "agent", json=body).status_code == 200
    return task_id


@pytest.mark.parametrize("route", ["", "/circuit", "/result", "/events"])
def test_an_agent_key_reads_no_tenants_task_and_learns_not_even_that_it_exists(
    api: Api, finished: str, route: str
) -> None:
    assert api.call("GET", f"/v1/tasks/{finished}{route}", "alice").status_code == 200  # it is there
    r = api.call("GET", f"/v1/tasks/{finished}{route}", "agent")
    assert (r.status_code, error(r)["code"]) == (404, "NOT_FOUND")
    unknown = api.call("GET", f"/v1/tasks/t-none{route}", "agent")
    assert (unknown.status_code, error(unknown)["message"]) == (404, error(r)["message"].replace(finished, "t-none"))


def test_an_agent_key_cannot_read_the_task_it_is_running_either(api: Api) -> None:
    """No caller in the agent reads a task: its claim carries the task, the snapshot and the token."""
    task_id = api.submit("alice").json()["id"]
    api.call("POST", "/v1/agent/claim", "agent", json={"agent_id": "a1", "wait_s": 1})
    assert api.call("GET", f"/v1/tasks/{task_id}/circuit", "agent").status_code == 404


@pytest.mark.parametrize(
    "path", ["/v1/tasks", "/v1/tasks?state=QUEUED", "/v1/events", "/v1/devices/line-16/epochs/0/queued-violations"]
)
def test_an_agent_key_lists_no_tasks_and_follows_no_event_stream(api: Api, finished: str, path: str) -> None:
    api.submit("bob")
    r = api.call("GET", path, "agent")
    assert (r.status_code, error(r)["code"]) == (403, "FORBIDDEN")
    assert finished not in r.text


def test_an_agent_key_still_claims_heartbeats_reports_and_reads_devices(api: Api) -> None:
    task_id = api.submit("alice").json()["id"]
    [c] = api.call("POST", "/v1/agent/claim", "agent", json={"agent_id": "a1", "wait_s": 1}).json()["tasks"]
    assert c["task"]["circuit"] and c["snapshot"]  # everything it runs comes with the claim
    beat = {"agent_id": "a1", "tasks": [{"id": task_id, "claim_token": c["claim_token"]}]}
    reply = api.call("POST", "/v1/agent/heartbeat", "agent", json=beat).json()
    assert reply == {"cancel": [], "fenced": [], "ended": {}}
    done = {"claim_token": c["claim_token"], "result": result_document(c)}
    ack = api.call("POST", f"/v1/agent/tasks/{task_id}/completed", "agent", json=done)
    assert ack.status_code == 200 and ack.json()["state"] == "COMPLETED"
    assert api.call("GET", "/v1/devices/line-16", "agent").status_code == 200  # devices are no tenant's


def test_users_and_admins_read_as_before(api: Api, finished: str) -> None:
    assert [t["id"] for t in api.call("GET", "/v1/tasks", "alice").json()["tasks"]] == [finished]
    assert [t["id"] for t in api.call("GET", "/v1/tasks", "root").json()["tasks"]] == [finished]
    assert api.call("GET", f"/v1/tasks/{finished}/circuit", "root").status_code == 200
    assert api.call("GET", f"/v1/tasks/{finished}", "bob").status_code == 404
