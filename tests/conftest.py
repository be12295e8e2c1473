"""Fixtures shared by every test tier: bundled devices, run directories, and one real Prefect server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from device_registry import Snapshot, catalog
from harness.postgres import scratch_postgres_database
from harness.prefect_server import PrefectServerProcess, prefect_api
from vqpu_protocol.rundir import TaskDocument, write_inputs


@pytest.fixture(scope="session")
def fez() -> Snapshot:
    return catalog.load("ibm-fez")


@pytest.fixture(scope="session")
def fez_ideal() -> Snapshot:
    return catalog.load("ibm-fez-ideal")


MakeRunDir = Callable[..., Path]


@pytest.fixture
def make_run_dir(tmp_path: Path) -> MakeRunDir:
    counter = iter(range(1_000_000))

    def make(circuit: str, snapshot: Snapshot, **fields: Any) -> Path:
        run_dir = tmp_path / f"run-{next(counter)}"
        task = TaskDocument.model_validate(
            {
                "schema": "vqpu.task/1",
                "task_id": fields.pop("task_id", "task-1"),
                "circuit": circuit,
                "dialect": fields.pop("dialect", "qasm2"),
                "shots": fields.pop("shots", 1024),
                "seed": fields.pop("seed", 1234),
                "snapshot_sha256": snapshot.sha256(),
                **fields,
            }
        )
        write_inputs(run_dir, task, snapshot.canonical_json())
        return run_dir

    return make


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServerProcess]:
    """A `prefect server start` on a scratch PostgreSQL database (SQLite locks up with several flow runs
    in flight), stopped, and its database dropped, at the end of the session. It requires its credential
    (`prefect_server.auth_string`) on every request but its health check, as every server we start does."""
    from tests.requirements import require_postgres

    require_postgres()
    with scratch_postgres_database() as url:
        # Prefect's server runs on asyncio: same database, its async driver (asyncpg comes with prefect).
        async_url = url.replace("postgresql+psycopg://", "postgresql+asyncpg://", 1)
        server = PrefectServerProcess(tmp_path_factory.mktemp("prefect-server"), database_url=async_url)
        server.start(timeout_s=120)
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def prefect_env(prefect_server: PrefectServerProcess) -> Iterator[str]:
    """PREFECT_API_URL and PREFECT_API_AUTH_STRING for the session's server, for this test's Prefect client
    and the processes it starts (agents, workers); yields the URL. Without it, a Prefect client would start
    a temporary server of its own."""
    with prefect_api(prefect_server) as url:
        yield url
