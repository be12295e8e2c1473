"""The agent's claims say what one of its slots holds, and the real control plane (its app, in this process,
on SQLite) records it: the slot memory it then prices tasks for the agent's devices against."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import httpx
import pytest

from agent.control_plane import ControlPlane
from agent.site import MIB, parse_site
from tests.integration.control_plane.api_client import Api
from tests.integration.served_api import served_api
from vqpu_service.bootstrap import build_store
from vqpu_service.config import Settings


class ThroughTestClient(httpx.AsyncBaseTransport):
    """The agent's async HTTP client, answered by the control plane's app through FastAPI's TestClient."""

    def __init__(self, api: Api) -> None:
        self.api = api

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}

        def send() -> httpx.Response:
            return self.api.client.request(request.method, request.url.path, headers=headers, content=body)

        answer = await anyio.to_thread.run_sync(send)
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with served_api(tmp_path) as served:
        yield served


def test_a_claim_carries_the_sites_slot_capacity_and_the_control_plane_records_it(api: Api, tmp_path: Path) -> None:
    site = parse_site(
        {
            "site": "capacity",
            "slots": 1,
            "run_root": str(tmp_path / "runs"),
            "resources": {"memory_mb": 3072, "max_runtime_s": 120},
            "scheduler": {"kind": "local"},
        }
    )
    assert api.submit().status_code == 201

    async def claim() -> list[str]:
        transport = ThroughTestClient(api)
        capacity = site.slot_capacity()
        async with ControlPlane(
            "http://cp", api.keys["agent"], "capacity-1", transport=transport, capacity=capacity
        ) as cp:
            return [t.task.id for t in await cp.claim(1, 0)]

    assert len(anyio.run(claim)) == 1
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'vqpu.db'}", keys_file=tmp_path / "keys.json")
    assert [c.memory_bytes for c in build_store(settings).slot_capacities("line-16")] == [3072 * MIB]
