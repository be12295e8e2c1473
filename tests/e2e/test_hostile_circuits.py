"""A real server under a hostile 1 MiB circuit: answered in seconds, and /v1/health stays responsive.

Before the admission check was made linear, 32 KB without a `;` froze every endpoint for 6-10 s and a
1 MiB circuit kept the server at 100 % CPU for over ten minutes. The bounds below are loose on
purpose (a 2-core machine shared with the test itself): they separate "linear" from "quadratic",
they do not measure speed; benchmarks/control_plane does that.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from harness.circuits import hostile_circuits
from harness.servers import ServerProcess, make_keys
from vqpu_service.domain.model import Role

SIZE = 1024 * 1024 - 512  # within the default 1 MiB circuit limit, with room for the JSON around it
SUBMIT_WITHIN_S = 15.0
HEALTH_WITHIN_S = 2.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    tmp = tmp_path_factory.mktemp("hostile")
    keys = make_keys(tmp / "keys.json", alice=Role.USER)
    with ServerProcess(tmp, f"sqlite:///{tmp / 'vqpu.db'}", tmp / "keys.json") as running:
        yield running.url, keys["alice"]


@pytest.mark.parametrize("shape", list(hostile_circuits(1024)))
def test_a_hostile_megabyte_circuit_is_answered_while_health_stays_responsive(
    server: tuple[str, str], shape: str
) -> None:
    url, key = server
    circuit = hostile_circuits(SIZE)[shape]
    health: list[float] = []
    done = threading.Event()

    def probe() -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while not done.is_set():
                t0 = time.monotonic()
                assert client.get("/v1/health").status_code == 200
                health.append(time.monotonic() - t0)
                time.sleep(0.05)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        time.sleep(0.2)
        t0 = time.monotonic()
        r = httpx.post(
            f"{url}/v1/tasks",
            json={"device": "line-16", "circuit": circuit, "dialect": "qasm3", "shots": 10},
            headers={"Authorization": f"Bearer {key}"},
            timeout=600,
        )
        elapsed = time.monotonic() - t0
    finally:
        done.set()
        prober.join()
    expected = 201 if shape == "valid native program" else 422
    assert r.status_code == expected, r.text[:500]
    assert elapsed < SUBMIT_WITHIN_S, f"{shape}: answered after {elapsed:.1f} s"
    assert len(health) >= 3 and max(health) < HEALTH_WITHIN_S, f"{shape}: slowest health {max(health):.2f} s"
