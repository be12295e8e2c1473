"""Hostile input at the door, over SQLite and PostgreSQL: a typed 4xx, never a 500, and nothing stored.

Each case here once answered 500, stored a task that poisoned later reads, or queued work that could
only fail on a compute node.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from harness.documents import result_document
from tests.integration.control_plane.api_client import Api, error
from tests.integration.control_plane.tasks import BELL

POISON_BODIES = {
    "a lone surrogate in options": '{"noise_model": "\\ud800"}',
    "a lone surrogate as an options key": '{"\\udfff": "paper"}',
    "options nested 300 deep": "[" * 300 + "]" * 300,
}


def _submit_raw(api: Api, options_json: str) -> Any:
    head = {"device": "line-16", "circuit": BELL, "dialect": "qasm3", "shots": 10}
    body = json.dumps(head)[:-1] + f', "options": {options_json}}}'
    return api.call("POST", "/v1/tasks", content=body.encode(), headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("options_json", list(POISON_BODIES.values()), ids=list(POISON_BODIES))
def test_a_poisoned_submission_is_refused_and_every_later_read_and_claim_still_works(
    api: Api, options_json: str
) -> None:
    healthy = api.submit().json()
    r = _submit_raw(api, options_json)
    assert (r.status_code, error(r)["code"]) == (400, "UNSAFE_TEXT")
    assert api.count() == 1
    assert api.call("GET", "/v1/tasks").status_code == 200  # the owner's listing
    assert api.call("GET", "/v1/tasks", "root").status_code == 200  # the admin's listing
    claim = api.call("POST", "/v1/agent/claim", "agent", json={"agent_id": "a1", "max_tasks": 8})
    assert claim.status_code == 200
    assert [t["task"]["id"] for t in claim.json()["tasks"]] == [healthy["id"]]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"circuit": BELL + "// a comment with \x00 in it\n"}, "circuit"),
        ({"device": "line\x00-16"}, "device"),
        ({"tags": ["ok", "bad\x00tag"]}, "tag"),
        ({"circuit": BELL + "// \ud83d\ude00 is a real emoji, \udc00 is not\n"}, "circuit"),
    ],
)
def test_nul_and_lone_surrogates_in_any_string_are_refused_before_storage(
    api: Api, body: dict[str, Any], where: str
) -> None:
    payload = {"device": "line-16", "circuit": BELL, "dialect": "qasm3", "shots": 10, **body}
    r = api.call(
        "POST", "/v1/tasks", content=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    assert (r.status_code, error(r)["code"]) == (400, "UNSAFE_TEXT"), where
    assert api.count() == 0


def test_a_real_emoji_in_a_comment_is_fine(api: Api) -> None:
    r = api.submit(circuit=BELL + "// 😀 surrogate pairs decode to one code point\n")
    assert r.status_code == 201
    assert api.call("GET", f"/v1/tasks/{r.json()['id']}").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "kw"),
    [
        ("GET", "/v1/tasks/t%00x", {}),
        ("GET", "/v1/tasks?device=line%00-16", {}),
        ("GET", "/v1/devices/line-16%00", {}),
        ("POST", "/v1/agent/claim", {"who": "agent", "json": {"agent_id": "a\x00"}}),
        (
            "POST",
            "/v1/agent/heartbeat",
            {"who": "agent", "json": {"agent_id": "a1", "tasks": [{"id": "t\x00", "claim_token": "x"}]}},
        ),
        ("GET", "/v1/events?task=t%00", {}),
    ],
)
def test_nul_in_paths_queries_and_agent_bodies_is_a_typed_400(
    api: Api, method: str, path: str, kw: dict[str, Any]
) -> None:
    who = kw.pop("who", "alice")
    r = api.call(method, path, who, **kw)
    assert (r.status_code, error(r)["code"]) == (400, "UNSAFE_TEXT")


def _cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode()


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/v1/devices/line-16/epochs/9223372036854775808", {}),
        ("/v1/devices/line-16/epochs/2147483648", {}),
        (f"/v1/tasks?cursor={_cursor(2**63)}", {}),
        (f"/v1/tasks?cursor={_cursor(2**31)}", {}),
        ("/v1/events?last_event_id=9223372036854775808", {}),
        ("/v1/events", {"Last-Event-ID": "9" * 5000}),
    ],
)
def test_integers_beyond_their_column_are_a_typed_400(api: Api, path: str, headers: dict[str, str]) -> None:
    r = api.call("GET", path, headers=headers)
    assert r.status_code == 400 and error(r)["code"] == "INVALID_REQUEST"


@pytest.mark.parametrize("epoch", [2**63, 2**31])
def test_a_pinned_epoch_beyond_its_column_is_refused(api: Api, epoch: int) -> None:
    r = api.submit(epoch=epoch)
    assert (r.status_code, error(r)["code"]) == (400, "INVALID_REQUEST")
    assert api.count() == 0


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("shots", True, "INVALID_SHOTS"),
        ("shots", "100", "INVALID_SHOTS"),
        ("shots", 100.0, "INVALID_SHOTS"),
        ("seed", "7", "INVALID_REQUEST"),
        ("epoch", True, "INVALID_REQUEST"),
        ("tags", [1], "INVALID_REQUEST"),
        ("dialect", "QASM3", "UNKNOWN_DIALECT"),
    ],
)
def test_values_of_the_wrong_type_are_not_coerced(api: Api, field: str, value: Any, code: str) -> None:
    r = api.submit(**{field: value})
    assert (r.status_code, error(r)["code"]) == (400, code)
    assert api.count() == 0


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"noise_model": "bogus"}, "options.noise_model"),
        ({"method": "tensor_network"}, "options.method"),
        ({"device": "gpu"}, "options.device"),
        ({"shots_per_batch": 4}, "options.shots_per_batch"),
    ],
)
def test_bad_run_options_are_refused_at_submit_and_at_viability_naming_the_field(
    api: Api, options: dict[str, Any], named: str
) -> None:
    r = api.submit(options=options)
    err = error(r)
    assert (r.status_code, err["code"]) == (400, "INVALID_OPTIONS")
    assert named in err["message"]
    assert api.count() == 0
    v = api.call(
        "POST", "/v1/devices/line-16/viability", json={"circuit": BELL, "dialect": "qasm3", "options": options}
    )
    assert (v.status_code, error(v)["code"]) == (400, "INVALID_OPTIONS")


def test_good_run_options_are_stored_and_handed_to_the_agent(api: Api) -> None:
    noise = {"scale": {"relaxation": 2.0}, "disable": ["readout"]}
    task = api.submit(options={"noise_model": "relaxation", "device": "CPU", "memory": True, "noise": noise}).json()
    assert task["options"] == {
        "noise_model": "relaxation",
        "method": "auto",
        "device": "CPU",
        "memory": True,
        "noise": noise,
        "precision": "double",
        "max_runtime_s": 3600.0,  # none asked: the user key's ceiling, which every site enforces
    }
    [claimed] = api.call("POST", "/v1/agent/claim", "agent", json={"agent_id": "a1"}).json()["tasks"]
    assert claimed["task"]["options"] == task["options"]


def _claimed(api: Api) -> dict[str, Any]:
    api.submit()
    [claimed] = api.call("POST", "/v1/agent/claim", "agent", json={"agent_id": "a1"}).json()["tasks"]
    return claimed


@pytest.mark.parametrize(
    "spoil",
    [
        lambda r: r.update(counts={"00": 1}),  # counts that do not add up to the shots
        lambda r: r.update(counts={"0x": r["shots"]}),  # not a bitstring
        lambda r: r["provenance"].pop("snapshot_sha256"),
        lambda r: r.update(schema="vqpu.result/2"),
        lambda r: r["timings"].update(total_s=-1),
        lambda r: r.update(shots=True),
    ],
)
def test_a_malformed_result_is_422_and_the_task_stays_running(api: Api, spoil: Any) -> None:
    claimed = _claimed(api)
    task_id = claimed["task"]["id"]
    result = result_document(claimed, {"00": 100})
    spoil(result)
    r = api.call(
        "POST",
        f"/v1/agent/tasks/{task_id}/completed",
        "agent",
        json={"claim_token": claimed["claim_token"], "result": result},
    )
    assert (r.status_code, error(r)["code"]) == (422, "INVALID_RESULT")
    assert api.call("GET", f"/v1/tasks/{task_id}").json()["state"] == "RUNNING"
    assert [e["type"] for e in api.call("GET", f"/v1/tasks/{task_id}/events").json()["events"]] == [
        "TASK_SUBMITTED",
        "TASK_CLAIMED",
    ]


def test_a_failed_report_needs_an_error_document(api: Api) -> None:
    claimed = _claimed(api)
    path = f"/v1/agent/tasks/{claimed['task']['id']}/failed"
    for bad in ({"message": "no code"}, {"code": "lower case", "message": "x"}, {"code": "X", "message": 5}):
        r = api.call("POST", path, "agent", json={"claim_token": claimed["claim_token"], "error": bad})
        assert (r.status_code, error(r)["code"]) == (400, "INVALID_REQUEST"), bad
    good = {"code": "SIMULATION_ERROR", "message": "Aer ran out of memory", "detail": {"exit_code": 3}}
    r = api.call("POST", path, "agent", json={"claim_token": claimed["claim_token"], "error": good})
    assert r.status_code == 200 and r.json()["error"] == good


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_json_is_415_saying_what_to_send(api: Api, content_type: str | None) -> None:
    body = json.dumps({"device": "line-16", "circuit": BELL, "dialect": "qasm3", "shots": 10}).encode()
    headers = {} if content_type is None else {"Content-Type": content_type}
    r = api.call("POST", "/v1/tasks", content=body, headers=headers)
    err = error(r)
    assert (r.status_code, err["code"]) == (415, "UNSUPPORTED_MEDIA_TYPE")
    assert "Content-Type: application/json" in err["message"]
    assert api.count() == 0


def test_admin_actions_accept_an_empty_body(api: Api) -> None:
    claimed = _claimed(api)
    task_id = claimed["task"]["id"]
    r = api.call("POST", f"/v1/admin/tasks/{task_id}/requeue", "root")
    assert r.status_code == 200 and r.json()["state"] == "QUEUED"
    r = api.call("POST", f"/v1/admin/tasks/{task_id}/force-fail", "root")
    assert r.status_code == 200 and r.json()["error"]["message"] == "admin action"


def test_a_snapshot_whose_edge_carries_a_one_qubit_gate_is_refused_at_registration_and_put(api: Api) -> None:
    snapshot = api.call("GET", "/v1/devices/line-16").json()
    snapshot["edges"][0]["gate"] = "sx"
    r = api.call("PUT", "/v1/devices/line-16", "root", json=snapshot)
    assert (r.status_code, error(r)["code"]) == (400, "INVALID_SNAPSHOT")
    fresh = {**snapshot, "device_id": "line-16-copy"}
    r = api.call("POST", "/v1/devices", "root", json=fresh)
    assert (r.status_code, error(r)["code"]) == (400, "INVALID_SNAPSHOT")
    assert [e["epoch"] for e in api.call("GET", "/v1/devices/line-16/epochs").json()["epochs"]] == [0]
    assert api.call("GET", "/v1/devices/line-16-copy").status_code == 404


def test_a_snapshot_with_a_native_gate_of_unknown_arity_is_refused(api: Api) -> None:
    snapshot = {**api.call("GET", "/v1/devices/line-16").json(), "device_id": "line-16-odd"}
    snapshot["native_gates"] = [*snapshot["native_gates"], "frobnicate"]
    r = api.call("POST", "/v1/devices", "root", json=snapshot)
    assert (r.status_code, error(r)["code"]) == (400, "INVALID_SNAPSHOT")


def test_a_snapshot_with_numbers_as_strings_is_refused_not_coerced(api: Api) -> None:
    snapshot = {**api.call("GET", "/v1/devices/line-16").json(), "device_id": "line-16-text"}
    snapshot["num_qubits"] = str(snapshot["num_qubits"])
    r = api.call("POST", "/v1/devices", "root", json=snapshot)
    assert (r.status_code, error(r)["code"]) == (400, "INVALID_SNAPSHOT")
    assert api.call("GET", "/v1/devices/line-16-text").status_code == 404


@pytest.mark.parametrize("body", [b"\xff", b'{"device": "\xc3\x28"}'])
def test_a_body_that_is_not_utf8_is_malformed_json(api: Api, body: bytes) -> None:
    r = api.call("POST", "/v1/tasks", content=body, headers={"Content-Type": "application/json"})
    assert (r.status_code, error(r)["code"]) == (400, "MALFORMED_JSON")


def test_a_method_a_route_does_not_have_is_405_with_an_allow_header(api: Api) -> None:
    r = api.call("DELETE", "/v1/tasks/t-1")
    assert (r.status_code, error(r)["code"]) == (405, "METHOD_NOT_ALLOWED")
    assert r.headers["Allow"] == "GET"
