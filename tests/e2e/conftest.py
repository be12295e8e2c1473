"""The agent's end-to-end site: a control plane process (SQLite), the session's Prefect server, agents."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.intruder import Intruder, intruder_unavailable
from harness.prefect_server import PrefectServerProcess
from harness.servers import ServerProcess, make_keys
from harness.stack import LocalStack
from tests.e2e.sites import Site
from vqpu_client.qiskit import VQPUProvider
from vqpu_service.domain.model import Role

LIVENESS_WINDOW_S = 4.0
"""Short, so that a killed agent's tasks go stale within the test."""


@pytest.fixture
def site(tmp_path: Path, prefect_server: PrefectServerProcess) -> Iterator[Site]:
    keys = make_keys(tmp_path / "keys.json", user=Role.USER, agent=Role.AGENT, admin=Role.ADMIN)
    env = {"VQPU_LIVENESS_WINDOW_S": str(LIVENESS_WINDOW_S), "VQPU_SWEEP_INTERVAL_S": "0.5"}
    with ServerProcess(tmp_path, f"sqlite:///{tmp_path / 'control-plane.db'}", tmp_path / "keys.json", env=env) as cp:
        site = Site(tmp_path, cp, keys, prefect_server.api_url)
        try:
            yield site
        finally:
            site.close()


@pytest.fixture
def intruder() -> Iterator[Intruder]:
    """Another account on this machine (harness.intruder); a skip where this process cannot become one."""
    reason = intruder_unavailable()
    if reason is not None:
        pytest.skip(reason)
    attacker = Intruder()
    try:
        yield attacker
    finally:
        attacker.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The local stack (scripts/stack.sh's), one per test module that asks for it and does not define its own."""
    stack = LocalStack(tmp_path_factory.mktemp("stack")).start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def provider(stack: LocalStack) -> Iterator[VQPUProvider]:
    """The module's user, as a Qiskit provider of the stack's devices."""
    with VQPUProvider(stack.url, stack.keys["user"]) as provider:
        yield provider
