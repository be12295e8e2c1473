"""Unit tests use no database, network or subprocess: every attempt fails the test, saying so.

The guard raises pytest's own failure (a BaseException), so code that catches `Exception` around a
connection or a spawn cannot swallow it.
"""

from __future__ import annotations

import _posixsubprocess
import os
import socket
import sqlite3
import subprocess
from collections.abc import Callable
from typing import Any, NoReturn

import pytest

MOVE = "move the test to tests/integration (real databases) or tests/e2e (real processes)"


def _refuse(what: str) -> Callable[..., NoReturn]:
    def refused(*args: Any, **kwargs: Any) -> NoReturn:
        pytest.fail(f"unit tests must not {what}; {MOVE}", pytrace=True)

    return refused


@pytest.fixture(autouse=True)
def no_network_database_or_subprocess(monkeypatch: pytest.MonkeyPatch) -> None:
    network = _refuse("open a network connection")
    for name in ("connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, network)
    monkeypatch.setattr(socket, "create_connection", network)

    spawn = _refuse("start a subprocess")
    monkeypatch.setattr(subprocess.Popen, "__init__", spawn)
    # multiprocessing's spawn and forkserver start methods call fork_exec directly, not Popen.
    monkeypatch.setattr(_posixsubprocess, "fork_exec", spawn)
    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, spawn)

    database = _refuse("open a database")
    monkeypatch.setattr(sqlite3, "connect", database)
    try:
        import psycopg
    except ImportError:
        return
    monkeypatch.setattr(psycopg, "connect", database)
    monkeypatch.setattr(psycopg.Connection, "connect", database)
    monkeypatch.setattr(psycopg.AsyncConnection, "connect", database)
