"""The REST API against its own `/openapi.json`, served by a real `vqpu-server serve` on both databases.

What the document declares (a typed body for every 2xx, the one error body for every documented
error, the bearer scheme), and a schema-driven fuzz run (schemathesis) that must find no 5xx, no
status the document does not list and no response that breaks its declared schema or headers;
as an admin (the agent protocol as an agent) over every route but the event stream, and as a user
over the task and device routes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.circuits import BELL
from harness.fuzz import FuzzRun, run_schemathesis
from harness.postgres import scratch_postgres_database
from harness.servers import ServerProcess, make_keys
from tests.requirements import require_postgres
from vqpu_service.domain.model import Role

pytestmark = pytest.mark.slow

# A CLAIM may ask to wait up to 300 s for work; the server caps the wait here, so that a fuzzed
# CLAIM (the queue is soon empty) costs at most a second, not minutes.
SERVER_ENV = {"VQPU_MAX_CLAIM_WAIT_S": "1", "VQPU_CLAIM_RECHECK_S": "0.5"}
# Examples per operation in the fuzzing phase; the coverage phase adds its own boundary cases, a few
# dozen per operation. 300 (100 as a user) keep this file near three minutes on two cores for both
# databases; VQPU_FUZZ_EXAMPLES=1000 runs a longer campaign by hand.
EXAMPLES = int(os.environ.get("VQPU_FUZZ_EXAMPLES", "300"))
USER_EXAMPLES = EXAMPLES // 3
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)
METHODS = ("get", "put", "post", "patch", "delete")
HEALTH = ("get", "/v1/health")
EVENTS = ("get", "/v1/events")
NO_CLAIM = ("post", "/v1/agent/claim", "204")
ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}


@dataclass(frozen=True)
class Served:
    url: str
    keys: dict[str, str]
    task_ids: list[str]
    document: dict[str, Any]
    work: Path


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server on a fresh database with a few queued tasks, whose ids the fuzzer draws from."""
    work = tmp_path_factory.mktemp(f"api-schema-{request.param}")
    keys = make_keys(work / "keys.json", admin=Role.ADMIN, alice=Role.USER, agent=Role.AGENT)
    if request.param == "sqlite":
        with ServerProcess(work, f"sqlite:///{work / 'vqpu.db'}", work / "keys.json", env=SERVER_ENV) as server:
            yield _prepared(server, keys, work)
    else:
        require_postgres()
        with scratch_postgres_database() as url, ServerProcess(work, url, work / "keys.json", env=SERVER_ENV) as server:
            yield _prepared(server, keys, work)


def _prepared(server: ServerProcess, keys: dict[str, str], work: Path) -> Served:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        task_ids = []
        for device in ("line-16", "ibm-fez", "line-16", "ibm-fez"):
            body = {"device": device, "circuit": BELL, "dialect": "qasm3", "shots": 100}
            r = client.post("/v1/tasks", json=body, headers={"Authorization": f"Bearer {keys['alice']}"})
            assert r.status_code == 201, r.text
            task_ids.append(r.json()["id"])
        r = client.get("/openapi.json")
        assert r.status_code == 200, r.text
    return Served(server.url, keys, task_ids, r.json(), work)


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield method, path, item[method]


def test_the_bearer_scheme_is_declared_and_every_route_but_health_requires_it(served: Served) -> None:
    schemes = served.document["components"]["securitySchemes"]
    bearer = {name for name, s in schemes.items() if s["type"] == "http" and s["scheme"].lower() == "bearer"}
    assert bearer, f"no HTTP bearer scheme among {schemes}"
    open_routes = [
        f"{method.upper()} {path}"
        for method, path, operation in _operations(served.document)
        if not any(bearer & set(requirement) for requirement in operation.get("security", []))
    ]
    assert open_routes == ["GET /v1/health"]


def test_every_2xx_has_a_json_body_typed_by_a_component_but_the_event_stream_and_an_empty_claim(
    served: Served,
) -> None:
    untyped = []
    for method, path, operation in _operations(served.document):
        successes = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
        if not successes:
            untyped.append(f"{method.upper()} {path}: no 2xx response")
        for status, response in successes.items():
            if (method, path) == EVENTS or (method, path, status) == NO_CLAIM:
                continue
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            if not schema.get("$ref", "").startswith("#/components/schemas/"):
                untyped.append(f"{method.upper()} {path} {status}: {schema or 'no JSON schema'}")
    assert untyped == []
    assert list(served.document["paths"]["/v1/events"]["get"]["responses"]["200"]["content"]) == ["text/event-stream"]
    assert "content" not in served.document["paths"]["/v1/agent/claim"]["post"]["responses"]["204"]


def test_every_route_documents_400_and_401_with_the_error_body_and_none_documents_fastapis_422(
    served: Served,
) -> None:
    problems = []
    for method, path, operation in _operations(served.document):
        responses = operation["responses"]
        required = ("400",) if (method, path) == HEALTH else ("400", "401")
        problems += [f"{method.upper()} {path}: no {status}" for status in required if status not in responses]
        for status, response in responses.items():
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            if status[0] in "45" and schema != ERROR_BODY:
                problems.append(f"{method.upper()} {path} {status}: {schema}")
    assert problems == []
    assert "HTTPValidationError" not in str(served.document)
    assert "ErrorBody" in served.document["components"]["schemas"]


def _fuzz_config(served: Served, key: str, examples: int) -> dict[str, Any]:
    return {
        "headers": {"Authorization": f"Bearer {served.keys[key]}"},
        "workers": 1,
        "request-timeout": 10,
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
        # Deterministic: the same inputs in the same order on every run, but for the ids of the tasks
        # the fixture submitted (fresh on every server), so that a failure reproduces.
        "generation": {
            "max-examples": examples,
            "deterministic": True,
            "database": "none",
            "with-security-parameters": False,
        },
        # Real ids half the time, so that requests reach the handlers and not only their 404s.
        "dictionaries": {
            "devices": {"values": ["line-16", "ibm-fez", "ibm-fez-ideal"]},
            "tasks": {"values": served.task_ids},
            "epochs": {"values": [0, 1, 2]},
        },
        "parameters": {
            "path.device_id": {"dictionary": "devices", "probability": 0.5},
            "path.task_id": {"dictionary": "tasks", "probability": 0.5},
            "path.epoch": {"dictionary": "epochs", "probability": 0.5},
        },
        "operations": [
            # An endless SSE stream: a fuzzed request to it would only end at the request timeout,
            # and its body is not JSON to check. Its declaration is checked above.
            {"include-path": "/v1/events", "enabled": False},
            # The agent protocol as an agent (an admin key is refused there with 403).
            {"include-path-regex": "^/v1/agent/", "headers": {"Authorization": f"Bearer {served.keys['agent']}"}},
        ],
    }


def _report(run: FuzzRun) -> str:
    found = "\n\n".join(f"== {operation}\n{text}" for operation, text in sorted(run.findings.items()))
    return f"schemathesis exited {run.returncode} after {run.seconds:.0f} s\n{found or run.output[-4000:]}"


def test_fuzzing_every_route_finds_no_5xx_no_undocumented_status_and_no_body_off_its_schema(served: Served) -> None:
    run = run_schemathesis(
        f"{served.url}/openapi.json", _fuzz_config(served, "admin", EXAMPLES), served.work / "fuzz-admin", 900
    )
    assert run.findings == {} and run.returncode == 0, _report(run)


def test_fuzzing_a_users_task_and_device_routes_finds_nothing_either(served: Served) -> None:
    config = _fuzz_config(served, "alice", USER_EXAMPLES)
    config["operations"] = [{"include-path-regex": "^/v1/(agent|admin|events|health)", "enabled": False}]
    run = run_schemathesis(f"{served.url}/openapi.json", config, served.work / "fuzz-user", 600)
    assert run.findings == {} and run.returncode == 0, _report(run)
