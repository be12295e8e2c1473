"""Real PostgreSQL for the tests: reachable, or a clear skip (a failure where CI requires it)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

POSTGRES_ADMIN_URL = os.environ.get("VQPU_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def postgres_unreachable() -> str | None:
    """Why no PostgreSQL answers at POSTGRES_ADMIN_URL, or None when one does."""
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(POSTGRES_ADMIN_URL)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any driver or network error means the same: no server to talk to
        return f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL} ({type(exc).__name__}: {exc})"
    return None


def require_postgres() -> None:
    """Skip when no PostgreSQL answers, unless VQPU_REQUIRE_POSTGRES=1 makes its absence a failure."""
    message = postgres_unreachable()
    if message is not None:
        if os.environ.get("VQPU_REQUIRE_POSTGRES") == "1":
            pytest.fail(message + "; VQPU_REQUIRE_POSTGRES=1 requires it")
        pytest.skip(message + "; set VQPU_TEST_POSTGRES to a server URL to run these tests")


@contextmanager
def scratch_postgres_database() -> Iterator[str]:
    """A new, empty database for this test session, dropped afterwards; yields its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    require_postgres()
    name = f"vqpu_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
