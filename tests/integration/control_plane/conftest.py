"""One store per test, over SQLite (a file) and PostgreSQL (a scratch database per session)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from device_registry import catalog
from harness.postgres import scratch_postgres_database
from tests.integration.control_plane.api_client import Api
from tests.integration.control_plane.claiming import ClaimingStore
from tests.requirements import require_postgres
from vqpu_service.adapters.auth import create_key
from vqpu_service.adapters.sql.engine import make_engine
from vqpu_service.bootstrap import app_for, build_store
from vqpu_service.config import Settings
from vqpu_service.domain.model import Role
from vqpu_service.ports import Store

TABLES = ("event", "task", "device_epoch", "device", "agent")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    require_postgres()
    with scratch_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'vqpu.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(database_url: str) -> Iterator[ClaimingStore]:
    with sql_store(database_url) as s:
        yield s


@contextlib.contextmanager
def sql_store(database_url: str) -> Iterator[ClaimingStore]:
    """An empty database (PostgreSQL: the session's, truncated) with the devices the tests use."""
    s = ClaimingStore(make_engine(database_url))
    s.create_schema()
    if not s.tx.sqlite:
        with s.tx.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    register_devices(s)
    try:
        yield s
    finally:
        s.close()


def register_devices(store: Store) -> None:
    for name in ("line-16", "ibm-fez"):
        store.register_device(catalog.load(name), _now())


def _now():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.now(UTC)


KEYS = (("alice", Role.USER), ("bob", Role.USER), ("agent", Role.AGENT), ("root", Role.ADMIN))


@contextmanager
def served(settings: Settings) -> Iterator[Api]:
    """The real app over `settings`' database, emptied first on PostgreSQL, with one key per name in KEYS."""
    if settings.database_url.startswith("postgresql"):
        store = build_store(settings)
        with store.tx.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        store.close()
    keys = {name: create_key(settings.keys_file, name, role) for name, role in KEYS}
    with TestClient(app_for(settings), raise_server_exceptions=False) as client:
        yield Api(client, keys)


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    settings = Settings(
        database_url=database_url,
        keys_file=tmp_path / "keys.json",
        max_body_bytes=256 * 1024,
        max_circuit_bytes=64 * 1024,
        sweep_interval_s=0.2,
        event_poll_s=0.2,
    )
    with served(settings) as api:
        yield api
