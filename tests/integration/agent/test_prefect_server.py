"""A real Prefect server (harness.prefect_server): healthy on PostgreSQL, serves the client API, and
stops leaving no process behind."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path

import httpx
import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.states import Pending

from harness.prefect_server import PrefectServerProcess

pytestmark = pytest.mark.timeout(240)


@flow(name="vqpu-server-probe")
def probe() -> None:
    """Never run: the test only creates a flow run of it."""


def test_server_on_postgres_keeps_a_flow_run(prefect_server: PrefectServerProcess, prefect_env: str) -> None:
    print(f"\nprefect server start on a fresh PostgreSQL database: healthy after {prefect_server.startup_s:.1f} s")
    assert prefect_server.database_url.startswith("postgresql+asyncpg://")

    health = httpx.get(f"{prefect_env}/health", timeout=5)
    assert health.status_code == 200 and health.json() is True

    name = f"probe-{uuid.uuid4().hex[:8]}"

    async def create_and_read() -> tuple[FlowRun, FlowRun]:
        async with get_client() as client:
            created = await client.create_flow_run(probe, name=name, state=Pending(), tags=["vqpu-test"])
            return created, await client.read_flow_run(created.id)

    created, read = asyncio.run(create_and_read())
    assert read.id == created.id
    assert read.name == name
    assert read.state is not None and read.state.is_pending()
    assert "vqpu-test" in read.tags


def test_stop_leaves_no_process(tmp_path: Path) -> None:
    """On its default SQLite database: SIGTERM ends the server (uvicorn re-raises it after a clean
    shutdown) and no process of its group is left."""
    server = PrefectServerProcess(tmp_path / "prefect", log_level="INFO").start()
    print(f"\nprefect server start on a fresh SQLite database: healthy after {server.startup_s:.1f} s")
    pid = server.pid
    assert pid is not None and server.pid_file.read_text() == str(pid)
    assert httpx.get(f"{server.api_url}/health", timeout=5).status_code == 200

    assert server.stop() in (0, -signal.SIGTERM)

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    assert not server.pid_file.exists()
    assert "Application shutdown complete" in server.log_file.read_text()
