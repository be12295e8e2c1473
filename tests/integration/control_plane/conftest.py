"""One store per test, over SQLite (a file) and PostgreSQL (a scratch database per session)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from device_registry import catalog
from tests.services import scratch_postgres_database
from vqpu_service.adapters.sql.engine import make_engine
from vqpu_service.adapters.sql.store import SqlStore
from vqpu_service.bootstrap import wire_recheck
from vqpu_service.services.devices import DeviceService

TABLES = ("event", "task", "device_epoch", "device", "agent")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with scratch_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'vqpu.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(database_url: str) -> Iterator[SqlStore]:
    s = SqlStore(make_engine(database_url))
    wire_recheck(s, DeviceService(s, ttl_s=0))
    s.create_schema()
    if not s.tx.sqlite:
        with s.tx.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    for name in ("line-16", "ibm-fez"):
        s.register_device(catalog.load(name), _now())
    yield s
    s.close()


def _now():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.now(UTC)
