"""Engines for the two supported databases, each configured for how the store uses it.

SQLite: WAL, a busy timeout, and transactions the store opens explicitly, so that a write
transaction can start with `BEGIN IMMEDIATE` (it takes the write lock up front: two claimers never
both read the same QUEUED row and then race to update it). PostgreSQL: psycopg 3 with a pool.

The SQLite file holds every tenant's circuits and results: a new one is created 0600 before SQLite
opens it (SQLite gives its -wal and -shm files the database file's mode), in a directory created
0700. An existing file other accounts can read or write, or that another account owns, is used as it
is, with a warning naming it: the server does not change the mode of a file it did not create.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import ConnectionPoolEntry

from vqpu_service.domain.errors import InvalidRequest

log = logging.getLogger(__name__)
IMMEDIATE = "vqpu_sqlite_immediate"
"""Execution option: begin this connection's transaction with BEGIN IMMEDIATE (SQLite only)."""


def make_engine(url: str, *, pool_size: int = 20) -> Engine:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite(url, parsed.database)
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
    raise InvalidRequest(
        f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}: "
        "use sqlite:///PATH or postgresql://..."
    )


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _sqlite(url: str, database: str | None) -> Engine:
    if not database or database == ":memory:":
        raise InvalidRequest("an in-memory SQLite database cannot be shared between connections; give a file path")
    private_database_file(Path(database))
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=20, max_overflow=20)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000", "foreign_keys=ON"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def private_database_file(path: Path) -> None:
    """Create the database file 0600 (O_EXCL: from the first byte, never through a planted link); for a
    file that exists, warn if it, or its -wal or -shm, is open to other accounts."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            problem = _exposed(file)
            if problem is not None:
                log.warning("%s", problem)
    else:
        os.close(fd)  # an empty file is an empty SQLite database


def _exposed(path: Path) -> str | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    me = os.geteuid()
    if st.st_uid not in (me, 0):
        return f"database file {path} belongs to uid {st.st_uid}, not to this server's account (uid {me})"
    if st.st_mode & 0o077:
        return (
            f"database file {path} is open to other accounts (mode {stat.filemode(st.st_mode)}): it holds every "
            f"tenant's circuits and results; `chmod 600 {path}*` (the server leaves its mode as it found it)"
        )
    return None
