"""The SQLite database holds every tenant's circuits and results: created 0600 from the first byte,
its -wal and -shm too, in a private directory; an existing one open to others is named in a warning
and left as it is (issue 17)."""

from __future__ import annotations

import logging
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from device_registry import catalog
from vqpu_service.adapters.sql.engine import make_engine
from vqpu_service.adapters.sql.store import SqlStore
from vqpu_service.services import epochs


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def open_store(path: Path) -> SqlStore:
    store = SqlStore(make_engine(f"sqlite:///{path}"))
    store.create_schema()
    epochs.register(store, catalog.load("line-16"), datetime.now(UTC))  # a write: the WAL exists now
    return store


def test_a_new_database_and_its_wal_and_shm_are_private_even_under_a_permissive_umask(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "vqpu.db"
    old = os.umask(0o000)  # the worst an operator's shell can hand the server
    try:
        store = open_store(path)
        try:
            files = [path, path.with_name("vqpu.db-wal"), path.with_name("vqpu.db-shm")]
            assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
            assert mode(path.parent) == 0o700
        finally:
            store.close()
    finally:
        os.umask(old)


def test_an_existing_database_open_to_others_is_named_in_a_warning_and_left_as_it_is(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "vqpu.db"
    open_store(path).close()
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="vqpu_service.adapters.sql.engine"):
        store = SqlStore(make_engine(f"sqlite:///{path}"))
    store.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(path) in w and "open to other accounts" in w and "chmod 600" in w for w in warnings), warnings
    assert mode(path) == 0o644


def test_an_existing_private_database_opens_without_a_word(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "vqpu.db"
    open_store(path).close()
    with caplog.at_level(logging.WARNING):
        store = SqlStore(make_engine(f"sqlite:///{path}"))
        store.create_schema()
        assert [d.device_id for d in store.devices()] == ["line-16"]
    store.close()
    assert [r for r in caplog.records if r.name.startswith("vqpu_service")] == []
