"""What some tests need from the machine: a PostgreSQL, or a clear skip (a failure where CI requires it)."""

from __future__ import annotations

import os

import pytest

from harness.postgres import postgres_unreachable


def require_postgres() -> None:
    """Skip when no PostgreSQL answers, unless VQPU_REQUIRE_POSTGRES=1 makes its absence a failure."""
    message = postgres_unreachable()
    if message is not None:
        if os.environ.get("VQPU_REQUIRE_POSTGRES") == "1":
            pytest.fail(message + "; VQPU_REQUIRE_POSTGRES=1 requires it")
        pytest.skip(message + "; set VQPU_TEST_POSTGRES to a server URL to run these tests")
