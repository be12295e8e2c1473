"""The agent's end-to-end site: a control plane process (SQLite), the session's Prefect server, agents."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.intruder import Intruder, intruder_unavailable
from harness.prefect_server import PrefectServerProcess
from harness.servers import ServerProcess, make_keys
from tests.e2e.sites import Site
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
