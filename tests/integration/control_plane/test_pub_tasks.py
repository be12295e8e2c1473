"""Primitives as one task (issue 19): Sampler and Estimator PUBs submitted, read back, claimed and completed
through the API, and every way a PUB task is refused. Over SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text

from harness.documents import result_document
from tests.integration.control_plane.api_client import Api, error
from tests.integration.control_plane.conftest import served
from tests.integration.control_plane.tasks import completed, new_task
from vqpu_protocol.pubs import SamplerPubs, resolved, sampled_shots
from vqpu_service.adapters.sql.store import SqlStore
from vqpu_service.config import Settings
from vqpu_service.domain.lifecycle import TaskState

HEAD = 'OPENQASM 3.0;\ninclude "stdgates.inc";\n'
TWO_INPUTS = (
    HEAD + "input float[64] theta;\ninput float[64] phi;\nbit[2] c;\n"
    "rz(2*theta + 1) $0;\nsx $0;\nrz(phi) $1;\ncz $0, $1;\nc[0] = measure $0;\nc[1] = measure $1;\n"
)
"""Two parameters, declared theta then phi: each row gives (theta, phi)."""
NO_INPUTS = (
    HEAD
    + "bit[1] a;\nbit[3] b;\nx $2;\na[0] = measure $0;\nb[0] = measure $1;\nb[1] = measure $2;\nb[2] = measure $3;\n"
)
"""No parameters, two registers: keys are 'bbb a'."""
ESTIMATED = HEAD + "input float[64] theta;\nrz(theta) $0;\nsx $0;\ncz $0, $1;\n"

SAMPLER: dict[str, Any] = {
    "kind": "sampler",
    "pubs": [
        {"circuit": TWO_INPUTS, "parameter_values": [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], "shots": 50},
        {"circuit": NO_INPUTS},
        {"circuit": TWO_INPUTS, "parameter_values": [[0.0, 0.0]] * 4, "shape": [2, 2]},
    ],
}
"""Shots: 3 x 50 + 1 x 100 (the task's default) + 4 x 100 = 650."""
ESTIMATOR: dict[str, Any] = {
    "kind": "estimator",
    "pubs": [
        {
            "circuit": ESTIMATED,
            "parameter_values": [[0.0], [1.0], [2.0]],
            "observables": [
                [{"paulis": "ZZ", "qubits": [0, 1], "coeff": 1.0}],
                [{"paulis": "X", "qubits": [0], "coeff": 0.5}],
            ],
            "observables_shape": [2, 1],
            "precision": 0.01,
        },
        {"circuit": HEAD + "x $3;\n", "observables": [[{"paulis": "Z", "qubits": [3], "coeff": 1.0}]]},
    ],
}
"""Results of shape [2, 3] (observables [2, 1] broadcast with bindings [3]) and [1]; precision 0.01, then 0."""


def submit(
    api: Api, pubs: dict[str, Any], who: str = "alice", headers: dict[str, str] | None = None, **body: Any
) -> Any:
    payload = {"device": "line-16", "pubs": pubs, "dialect": "qasm3", **body}
    return api.call("POST", "/v1/tasks", who, json=payload, headers=headers or {})


def claim(api: Api) -> dict[str, Any]:
    r = api.call("POST", "/v1/agent/claim", "agent", json={"agent_id": "a1", "max_tasks": 1, "wait_s": 1})
    assert r.status_code == 200, r.text
    [task] = r.json()["tasks"]
    return dict(task)


def report(api: Api, claimed: dict[str, Any], result: dict[str, Any]) -> Any:
    body = {"claim_token": claimed["claim_token"], "result": result}
    return api.call("POST", f"/v1/agent/tasks/{claimed['task']['id']}/completed", "agent", json=body)


def pub_result(claimed: dict[str, Any], pubs: dict[str, Any]) -> dict[str, Any]:
    """The result a runner would report for this PUB task: `pubs` its per-PUB results."""
    doc = result_document(claimed, {"0": 1})
    return {**doc, "counts": {}, "shots": claimed["task"]["shots"], "pubs": pubs}


def sampler_results() -> dict[str, Any]:
    return {
        "kind": "sampler",
        "pubs": [
            {"shape": [3], "shots": 50, "registers": [{"name": "c", "num_bits": 2}], "counts": [{"00": 50}] * 3},
            {
                "shape": [],
                "shots": 100,
                "registers": [{"name": "a", "num_bits": 1}, {"name": "b", "num_bits": 3}],
                "counts": [{"110 0": 60, "010 1": 40}],
            },
            {"shape": [2, 2], "shots": 100, "registers": [{"name": "c", "num_bits": 2}], "counts": [{"11": 100}] * 4},
        ],
    }


def estimator_results() -> dict[str, Any]:
    return {
        "kind": "estimator",
        "pubs": [
            {"shape": [2, 3], "evs": [0.5] * 6, "stds": [0.01] * 6, "precision": 0.01},
            {"shape": [1], "evs": [-1.0], "stds": [0.0], "precision": 0.0},
        ],
    }


# --- what a user sees --------------------------------------------------------------------------


def test_a_sampler_task_is_stored_resolved_claimed_with_its_pubs_and_completed(api: Api) -> None:
    r = submit(api, SAMPLER, shots=100)
    assert r.status_code == 201, r.text
    view = r.json()
    assert (view["kind"], view["pubs"], view["shots"]) == ("sampler", 3, 650)
    assert view["estimate"] is not None and view["estimate"]["counts_chars"] > 0
    got = api.call("GET", f"/v1/tasks/{view['id']}").json()
    assert (got["kind"], got["pubs"], got["shots"]) == ("sampler", 3, 650)

    claimed = claim(api)
    task = claimed["task"]
    assert task["circuit"] is None and task["shots"] == 650
    want = resolved(SamplerPubs.model_validate(SAMPLER), 100).model_dump(mode="json")
    assert task["pubs"] == want and [p["shots"] for p in task["pubs"]["pubs"]] == [50, 100, 100]

    ok = report(api, claimed, pub_result(claimed, sampler_results()))
    assert ok.status_code == 200 and ok.json()["state"] == "COMPLETED", ok.text
    result = api.call("GET", f"/v1/tasks/{view['id']}/result").json()
    assert result["pubs"]["pubs"][1]["counts"] == [{"110 0": 60, "010 1": 40}] and result["counts"] == {}


def test_an_estimator_task_samples_no_shots_and_is_claimed_with_each_precision(api: Api) -> None:
    r = submit(api, ESTIMATOR)
    assert r.status_code == 201, r.text
    assert (r.json()["kind"], r.json()["pubs"], r.json()["shots"]) == ("estimator", 2, 0)
    claimed = claim(api)
    assert [p["precision"] for p in claimed["task"]["pubs"]["pubs"]] == [0.01, 0.0]
    assert claimed["task"]["circuit"] is None and claimed["task"]["shots"] == 0
    ok = report(api, claimed, pub_result(claimed, estimator_results()))
    assert ok.status_code == 200 and ok.json()["state"] == "COMPLETED", ok.text


def test_a_pub_tasks_source_is_its_resolved_pubs(api: Api) -> None:
    task_id = submit(api, ESTIMATOR).json()["id"]
    r = api.call("GET", f"/v1/tasks/{task_id}/circuit")
    assert r.status_code == 200, r.text
    source = r.json()
    assert source["circuit"] is None and source["pubs"]["kind"] == "estimator"
    assert [p["precision"] for p in source["pubs"]["pubs"]] == [0.01, 0.0]


def test_a_circuit_task_reads_back_as_one(api: Api) -> None:
    view = api.submit().json()
    assert (view["kind"], view["pubs"], view["shots"]) == ("circuit", None, 100)


# --- results that are not the task's ---------------------------------------------------------


def _sampler_wrong(name: str) -> dict[str, Any]:
    pubs = sampler_results()
    if name == "kind":
        return estimator_results()
    if name == "count":
        pubs["pubs"].pop()
    elif name == "shots":
        pubs["pubs"][0] = {**pubs["pubs"][0], "shots": 25, "counts": [{"00": 25}] * 3}
    elif name == "shape":
        pubs["pubs"][2] = {**pubs["pubs"][2], "shape": [4]}
    elif name == "key":
        pubs["pubs"][1] = {**pubs["pubs"][1], "counts": [{"1100": 100}]}
    return pubs


@pytest.mark.parametrize(
    ("wrong", "field", "fragment"),
    [
        ("kind", "pubs.kind", "'estimator'"),
        ("count", "pubs.pubs", "2 PUB result(s), but the task has 3"),
        ("shots", "pubs.pubs[0]", "pubs[0]: shots is 25"),
        ("shape", "pubs.pubs[2]", "pubs[2]: shape is [4]"),
        ("key", "pubs.pubs[1]", "pubs[1]: counts[0] key '1100' is not 4 classical bits in groups of 3 1 wide"),
    ],
)
def test_a_sampler_result_not_of_the_tasks_pubs_is_refused(api: Api, wrong: str, field: str, fragment: str) -> None:
    task_id = submit(api, SAMPLER, shots=100).json()["id"]
    claimed = claim(api)
    r = report(api, claimed, pub_result(claimed, _sampler_wrong(wrong)))
    err = error(r)
    assert (r.status_code, err["code"], err["detail"]["field"]) == (422, "INVALID_RESULT", field), err
    assert fragment in err["message"], err["message"]
    assert api.call("GET", f"/v1/tasks/{task_id}").json()["state"] == "RUNNING"
    assert report(api, claimed, pub_result(claimed, sampler_results())).status_code == 200


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"shape": [3, 2], "evs": [0.5] * 6, "stds": [0.0] * 6}, "pubs.pubs[0]", "pubs[0]: shape is [3, 2]"),
        ({"precision": 0.5}, "pubs.pubs[0]", "pubs[0]: precision is 0.5"),
    ],
)
def test_an_estimator_result_not_of_the_tasks_pubs_is_refused(
    api: Api, change: dict[str, Any], field: str, fragment: str
) -> None:
    submit(api, ESTIMATOR)
    claimed = claim(api)
    pubs = estimator_results()
    pubs["pubs"][0] = {**pubs["pubs"][0], **change}
    err = error(report(api, claimed, pub_result(claimed, pubs)))
    assert (err["code"], err["detail"]["field"]) == ("INVALID_RESULT", field) and fragment in err["message"], err


def test_a_pub_tasks_result_without_pubs_and_a_circuit_tasks_with_them_are_refused(api: Api) -> None:
    submit(api, SAMPLER, shots=100)
    claimed = claim(api)
    counts_only = result_document(claimed, {"00": 650})
    err = error(report(api, claimed, counts_only))
    assert (err["code"], err["detail"]["field"]) == ("INVALID_RESULT", "pubs"), err
    assert report(api, claimed, pub_result(claimed, sampler_results())).status_code == 200

    api.submit(shots=650)
    circuit = claim(api)
    err = error(report(api, circuit, pub_result(circuit, sampler_results())))
    assert err["code"] == "INVALID_RESULT" and "pubs" in err["message"], err


# --- refused at submit -----------------------------------------------------------------------


def _with(pubs: dict[str, Any], index: int, **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(pubs)
    out["pubs"][index] = {**out["pubs"][index], **changes}
    return out


def _refused(r: Any, status: int, code: str) -> dict[str, Any]:
    err = error(r)
    assert (r.status_code, err["code"]) == (status, code), err
    return err


def test_a_violation_in_a_pub_names_the_pub(api: Api) -> None:
    bad = _with(SAMPLER, 2, circuit=TWO_INPUTS.replace("sx $0;", "h $0;"))
    err = _refused(submit(api, bad, shots=100), 422, "NOT_ADMISSIBLE")
    [v] = err["detail"]["violations"]
    assert v["code"] == "UNKNOWN_GATE" and v["message"].startswith("pubs[2]: h is not a native gate") and v["line"] == 7
    assert "pubs[2]: " in err["message"]
    assert api.count() == 0


@pytest.mark.parametrize(
    ("pub", "fragment"),
    [
        ({"circuit": TWO_INPUTS, "parameter_values": [[0.1], [0.2]]}, "gives 1 value(s); the circuit declares 2 input"),
        ({"circuit": TWO_INPUTS}, "declares 2 input parameter(s) (theta, phi), in that order, but parameter_values"),
        ({"circuit": NO_INPUTS, "parameter_values": [[0.1]]}, "declares no input parameters"),
    ],
)
def test_rows_must_give_one_value_per_declared_input(api: Api, pub: dict[str, Any], fragment: str) -> None:
    err = _refused(
        submit(api, {"kind": "sampler", "pubs": [{"circuit": NO_INPUTS}, pub]}, shots=10), 422, "NOT_ADMISSIBLE"
    )
    [v] = err["detail"]["violations"]
    assert v["code"] == "PARAMETER_MISMATCH" and v["message"].startswith("pubs[1]: ") and fragment in v["message"], v


def test_a_circuit_without_inputs_may_run_a_shape_of_bindings(api: Api) -> None:
    r = submit(api, {"kind": "sampler", "pubs": [{"circuit": NO_INPUTS, "shape": [2, 3]}]}, shots=10)
    assert r.status_code == 201 and r.json()["shots"] == 60, r.text


def test_an_observable_on_a_missing_or_offline_qubit_is_refused(api: Api) -> None:
    term = {"paulis": "Z", "qubits": [16], "coeff": 1.0}
    missing = _with(ESTIMATOR, 1, observables=[[term]])
    err = _refused(submit(api, missing), 422, "NOT_ADMISSIBLE")
    [v] = err["detail"]["violations"]
    assert v["code"] == "QUBIT_OUT_OF_RANGE" and v["operands"] == [16] and v["message"].startswith("pubs[1]: ")

    r = api.call("PATCH", "/v1/devices/line-16", "root", json={"qubits": [{"index": 5, "status": "OFFLINE"}]})
    assert r.status_code == 200, r.text
    offline = _with(
        ESTIMATOR, 0, observables=[[{"paulis": "ZZ", "qubits": [0, 5], "coeff": 1.0}]], observables_shape=None
    )
    err = _refused(submit(api, offline), 422, "NOT_ADMISSIBLE")
    [v] = err["detail"]["violations"]
    assert v["code"] == "QUBIT_OFFLINE" and "observables[0] term 0 acts on qubit 5" in v["message"]


def test_a_queued_pub_task_an_epoch_refuses_is_named_ahead_and_fails_at_claim(api: Api) -> None:
    task_id = submit(api, ESTIMATOR).json()["id"]
    r = api.call("PATCH", "/v1/devices/line-16", "root", json={"qubits": [{"index": 3, "status": "OFFLINE"}]})
    after = r.json()["epoch"]
    ahead = api.call("GET", f"/v1/devices/line-16/epochs/{after}/queued-violations").json()
    assert ahead["checked"] == 1 and ahead["checked_bytes"] > sum(len(p["circuit"]) for p in ESTIMATOR["pubs"])
    [refused] = ahead["tasks"]
    assert refused["task_id"] == task_id
    assert [(v["code"], v["message"][:9]) for v in refused["violations"]] == [
        ("QUBIT_OFFLINE", "pubs[1]: "),  # x $3
        ("QUBIT_OFFLINE", "pubs[1]: "),  # its observable on qubit 3
    ]
    r = api.call("POST", "/v1/agent/claim", "agent", json={"agent_id": "a1", "max_tasks": 1, "wait_s": 0.2})
    assert r.status_code == 204, r.text  # nothing to hand out: the one task failed at claim
    task = api.call("GET", f"/v1/tasks/{task_id}").json()
    assert task["state"] == "FAILED" and task["error"]["code"] == "NOT_ADMISSIBLE_AT_CLAIM", task


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"pubs": SAMPLER, "circuit": NO_INPUTS, "shots": 10}, "not both"),
        ({"pubs": ESTIMATOR, "shots": 10}, "an estimator task takes no `shots`"),
        ({"pubs": ESTIMATOR, "options": {"memory": True}}, "an estimator samples none"),
        ({"pubs": _with(SAMPLER, 1, shape=[1000]), "shots": 100, "options": {"memory": True}}, "the PUBs sample"),
    ],
)
def test_a_pub_task_must_be_well_formed(api: Api, body: dict[str, Any], fragment: str) -> None:
    r = api.call("POST", "/v1/tasks", json={"device": "line-16", "dialect": "qasm3", **body})
    assert r.status_code == 400 and fragment in r.text, r.text


def _with_memory(pubs: dict[str, Any]) -> dict[str, Any]:
    """Each binding's shots in order: its counts unfolded."""
    out = copy.deepcopy(pubs)
    for pub in out["pubs"]:
        pub["memory"] = [[key for key, n in counts.items() for _ in range(n)] for counts in pub["counts"]]
    return out


def test_a_sampler_task_asking_memory_completes_only_with_every_pubs_memory(api: Api) -> None:
    task_id = submit(api, SAMPLER, shots=100, options={"memory": True}).json()["id"]
    claimed = claim(api)
    assert claimed["task"]["options"]["memory"] is True
    err = error(report(api, claimed, pub_result(claimed, sampler_results())))
    assert err["detail"]["field"] == "pubs.pubs[0]", err
    assert "pubs[0]: memory is missing, but the task asked for it" in err["message"], err
    top = {**pub_result(claimed, _with_memory(sampler_results())), "memory": ["00"] * 650}
    r = report(api, claimed, top)  # not a vqpu.result/1 document: a PUB task's memory is in its pubs
    assert (r.status_code, error(r)["code"]) == (422, "INVALID_RESULT") and "none in `counts` or `memory`" in r.text
    ok = report(api, claimed, pub_result(claimed, _with_memory(sampler_results())))
    assert ok.status_code == 200, ok.text
    result = api.call("GET", f"/v1/tasks/{task_id}/result").json()
    assert result["pubs"]["pubs"][1]["memory"] == [["110 0"] * 60 + ["010 1"] * 40]


def test_a_sampler_result_with_memory_nobody_asked_for_is_refused(api: Api) -> None:
    submit(api, SAMPLER, shots=100)
    claimed = claim(api)
    err = error(report(api, claimed, pub_result(claimed, _with_memory(sampler_results()))))
    assert "pubs[0]: memory is present, but not asked for" in err["message"], err


def test_a_sampler_pub_measuring_into_a_lone_bit_is_refused_at_submit(api: Api) -> None:
    """The runner refuses it (its outcomes are per register); admission must, before it is queued."""
    lone = HEAD + "bit[1] c;\nbit b;\nx $0;\nc[0] = measure $0;\nb = measure $1;\n"
    err = _refused(
        submit(api, {"kind": "sampler", "pubs": [{"circuit": NO_INPUTS}, {"circuit": lone}]}, shots=10),
        422,
        "NOT_ADMISSIBLE",
    )
    [violation] = err["detail"]["violations"]
    assert violation["code"] == "PARSE_ERROR" and violation["message"].startswith("pubs[1]: "), violation
    assert "b is a lone bit" in violation["message"]
    as_circuit = api.submit(circuit=lone, shots=10)  # a circuit task's counts key it as a bit of its own
    assert as_circuit.status_code == 201, as_circuit.text


def test_a_sampler_pub_without_shots_needs_the_tasks_default(api: Api) -> None:
    err = _refused(submit(api, SAMPLER), 400, "INVALID_SHOTS")
    assert "sampler PUB 1 gives no shots" in err["message"]


def test_a_circuit_with_inputs_is_still_refused_as_a_circuit_task(api: Api) -> None:
    err = _refused(api.submit(circuit=TWO_INPUTS, shots=10), 422, "NOT_ADMISSIBLE")
    assert err["detail"]["violations"][0]["code"] == "PARSE_ERROR" and "input parameters" in err["message"]


def test_over_limit_totals_are_refused(api: Api) -> None:
    too_many = {"kind": "sampler", "pubs": [{"circuit": NO_INPUTS, "shape": [100_000], "shots": 1000}]}
    err = _refused(submit(api, too_many), 400, "INVALID_SHOTS")
    assert "sample 100000000 shots in all" in err["message"]

    half = "// " + "x" * (33 * 1024) + "\n"  # two PUBs over the 64 KiB circuit limit together, each under it
    big = {"kind": "sampler", "pubs": [{"circuit": NO_INPUTS + half}, {"circuit": NO_INPUTS + half}]}
    r = submit(api, big, shots=10)
    assert (r.status_code, error(r)["code"]) in ((413, "PAYLOAD_TOO_LARGE"),), r.text
    assert "in all" in error(r)["message"]


def test_the_limits_apply_to_each_pub_and_the_price_to_the_whole_task(database_url: str, tmp_path: Path) -> None:
    settings = Settings(
        database_url=database_url, keys_file=tmp_path / "keys.json", max_shots=1000, max_expanded_ops=1000
    )
    with served(settings) as limited:
        err = _refused(submit(limited, _with(SAMPLER, 0, shots=1001), shots=10), 400, "INVALID_SHOTS")
        assert "pubs[0].shots must be between 1 and 1000" in err["message"]

        deep = HEAD + "rz(0.1) $0;\n" * 400  # 400 operations: one PUB fits, three do not
        pub = {"circuit": deep, "observables": [[{"paulis": "Z", "qubits": [0], "coeff": 1.0}]]}
        assert submit(limited, {"kind": "estimator", "pubs": [pub]}).status_code == 201
        err = _refused(submit(limited, {"kind": "estimator", "pubs": [pub] * 3}), 422, "TOO_LARGE")
        assert err["detail"]["limit"] == "expanded_ops" and err["detail"]["needed"] == 1200
        assert err["detail"]["estimate"]["expanded_ops"] == 1200


# --- idempotency ------------------------------------------------------------------------------


def test_an_idempotent_resubmission_of_the_same_pubs_is_the_same_task_and_other_pubs_conflict(api: Api) -> None:
    first = submit(api, SAMPLER, shots=100, headers={"Idempotency-Key": "p-1"})
    again = submit(api, SAMPLER, shots=100, headers={"Idempotency-Key": "p-1"})
    assert (first.status_code, again.status_code) == (201, 200) and first.json()["id"] == again.json()["id"]
    other = submit(api, _with(SAMPLER, 0, shots=51), shots=100, headers={"Idempotency-Key": "p-1"})
    assert (other.status_code, error(other)["code"]) == (409, "IDEMPOTENCY_CONFLICT")
    spelled = copy.deepcopy(SAMPLER)
    spelled["pubs"][1]["parameter_values"] = []  # the default spelled out: the same submission
    same = submit(api, spelled, shots=100, headers={"Idempotency-Key": "p-1"})
    assert same.status_code == 200 and same.json()["id"] == first.json()["id"]
    assert api.count() == 1
    assert sampled_shots(resolved(SamplerPubs.model_validate(SAMPLER), 100), None) == 650


# --- an older database ------------------------------------------------------------------------


def test_a_database_from_before_pub_tasks_gains_the_columns_and_its_tasks_still_run(store: SqlStore) -> None:
    store.submit(new_task(store), datetime.now(UTC))
    with store.tx.engine.begin() as conn:  # the table an older release made
        conn.execute(text("ALTER TABLE task DROP COLUMN pubs"))
        conn.execute(text("ALTER TABLE task DROP COLUMN pub_layouts"))
    assert not {"pubs", "pub_layouts"} & {c["name"] for c in inspect(store.tx.engine).get_columns("task")}
    store.create_schema()  # what every start does
    store.create_schema()  # and again: adding is done once
    assert {"pubs", "pub_layouts"} <= {c["name"] for c in inspect(store.tx.engine).get_columns("task")}
    [old] = store.claim("agent", 1, None, datetime.now(UTC))
    assert (old.task.pubs, old.task.pub_layouts, old.task.kind) == (None, None, "circuit")
    done, _ = store.report(old.task.id, completed(old), datetime.now(UTC))
    assert done.state is TaskState.COMPLETED

    pubs = resolved(SamplerPubs.model_validate(SAMPLER), 100).model_dump(mode="json")
    new = dataclasses.replace(new_task(store), circuit="", shots=650, pubs=pubs, pub_layouts=[[2], [1, 3], [2]])
    task, _ = store.submit(new, datetime.now(UTC))
    stored = store.get_task(task.id)
    assert (stored.pubs, stored.pub_layouts, stored.kind) == (pubs, [[2], [1, 3], [2]], "sampler")
