"""Fixtures for the agent's integration tests: one real Prefect server per session, on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.postgres import scratch_postgres_database
from harness.prefect_server import PrefectServerProcess, prefect_api
from tests.requirements import require_postgres


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServerProcess]:
    """A `prefect server start` on a scratch PostgreSQL database (SQLite locks up with several flow runs
    in flight), stopped, and its database dropped, at the end of the session."""
    require_postgres()
    with scratch_postgres_database() as url:
        # Prefect's server runs on asyncio: same database, its async driver (asyncpg comes with prefect).
        async_url = url.replace("postgresql+psycopg://", "postgresql+asyncpg://", 1)
        server = PrefectServerProcess(tmp_path_factory.mktemp("prefect-server"), database_url=async_url)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def prefect_env(prefect_server: PrefectServerProcess) -> Iterator[str]:
    """PREFECT_API_URL pointing at the session's server, for this test's Prefect client and the
    processes it starts; yields the URL. Without it, a Prefect client would start a temporary server
    of its own."""
    with prefect_api(prefect_server.api_url) as url:
        yield url
