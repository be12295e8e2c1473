"""The real control-plane app over SQLite, in this process, for tests that need the API's door and a
hand-played agent (the control-plane suite's own `api` fixture runs per test over two databases)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tests.integration.control_plane.api_client import Api
from vqpu_protocol.api.agent import ClaimedTask
from vqpu_service.adapters.auth import create_key
from vqpu_service.bootstrap import app_for
from vqpu_service.config import Settings
from vqpu_service.domain.model import Role


@contextmanager
def served_api(directory: Path) -> Iterator[Api]:
    """Default settings (the 4 MiB body limit included) but the database and keys in `directory`."""
    settings = Settings(database_url=f"sqlite:///{directory / 'vqpu.db'}", keys_file=directory / "keys.json")
    keys = {
        name: create_key(settings.keys_file, name, role)
        for name, role in [("alice", Role.USER), ("agent", Role.AGENT), ("root", Role.ADMIN)]
    }
    with TestClient(app_for(settings), raise_server_exceptions=False) as client:
        yield Api(client, keys)


def claim_one(api: Api) -> ClaimedTask:
    """Claim the one queued task as an agent would."""
    response = api.call("POST", "/v1/agent/claim", "agent", json={"agent_id": "test-agent", "wait_s": 1})
    assert response.status_code == 200, response.text
    [claimed] = response.json()["tasks"]
    return ClaimedTask.model_validate(claimed)


def complete(api: Api, claimed: ClaimedTask, result: dict[str, Any]) -> Any:
    path = f"/v1/agent/tasks/{claimed.task.id}/completed"
    return api.call("POST", path, "agent", json={"claim_token": claimed.claim_token, "result": result})
