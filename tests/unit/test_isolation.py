"""The unit tier's guard: a unit test that reaches for the network, a subprocess or a database fails."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable

import pytest

from harness.postgres import postgres_unreachable

REFUSED = pytest.fail.Exception


def _async_subprocess() -> None:
    async def spawn() -> None:
        await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")

    asyncio.run(spawn())


@pytest.mark.parametrize(
    "spawn",
    [
        lambda: subprocess.run([sys.executable, "-c", "pass"], check=False),
        lambda: os.system("true"),
        lambda: os.posix_spawn(sys.executable, [sys.executable, "-c", "pass"], {}),
        _async_subprocess,
    ],
    ids=["subprocess.run", "os.system", "os.posix_spawn", "asyncio subprocess"],
)
def test_a_unit_test_that_starts_a_subprocess_fails_saying_it_must_not(spawn: Callable[[], object]) -> None:
    with pytest.raises(REFUSED, match="unit tests must not start a subprocess"):
        spawn()


def test_a_unit_test_that_connects_a_socket_fails_saying_it_must_not() -> None:
    with socket.socket() as sock, pytest.raises(REFUSED, match="unit tests must not open a network connection"):
        sock.connect(("127.0.0.1", 5432))
    with pytest.raises(REFUSED, match="unit tests must not open a network connection"):
        socket.create_connection(("127.0.0.1", 5432), timeout=1)


def test_a_check_that_catches_every_exception_still_fails_a_unit_test() -> None:
    # postgres_unreachable() turns any Exception into "not reachable"; the guard's failure is no Exception.
    with pytest.raises(REFUSED, match="unit tests must not open a database"):
        postgres_unreachable()


def test_a_unit_test_that_opens_a_sqlite_database_fails_saying_it_must_not() -> None:
    with pytest.raises(REFUSED, match="unit tests must not open a database"):
        sqlite3.connect(":memory:")
