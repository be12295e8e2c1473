"""The REST API through the real ASGI app, as the API tests call it: one key per role, the error shape checked."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.integration.control_plane.tasks import BELL


class Api:
    def __init__(self, client: TestClient, keys: dict[str, str]) -> None:
        self.client = client
        self.keys = keys

    def call(self, method: str, path: str, who: str | None = "alice", **kw: Any) -> Any:
        headers = dict(kw.pop("headers", {}))
        if who is not None:
            headers["Authorization"] = f"Bearer {self.keys[who]}"
        return self.client.request(method, path, headers=headers, **kw)

    def submit(self, who: str = "alice", headers: dict[str, str] | None = None, **body: Any) -> Any:
        payload = {"device": "line-16", "circuit": BELL, "dialect": "qasm3", "shots": 100, **body}
        return self.call("POST", "/v1/tasks", who, json=payload, headers=headers or {})

    def count(self) -> int:
        return len(self.call("GET", "/v1/tasks?limit=1000", "root").json()["tasks"])


def error(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    err: dict[str, Any] = body["error"]
    assert {"code", "message", "detail", "correlation_id", "timestamp"} <= set(err)
    assert response.headers["X-Correlation-ID"] == err["correlation_id"]
    return err
