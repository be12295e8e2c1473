"""Scratch PostgreSQL databases on the server at VQPU_TEST_POSTGRES, and whether one answers there."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

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


@contextmanager
def scratch_postgres_database() -> Iterator[str]:
    """A new, empty database, dropped afterwards; yields its URL. Check `postgres_unreachable()` first."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"vqpu_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
