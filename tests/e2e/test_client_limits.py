"""What a user's client sees of admission's prices and the per-owner queue cap, against a real
`vqpu-server` process: typed errors carrying the limit, the estimate and Retry-After, the price of a
task in its record and in viability, and paging through a bounded queued-violations answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.circuits import BELL, qasm2
from harness.servers import ServerProcess, make_keys
from vqpu_client import Client, errors
from vqpu_service.domain.model import Role

pytestmark = pytest.mark.slow
LONG = qasm2("sx q;\n" * 50 + "measure q -> c;", qubits=20)
"""20 noisy Fez qubits, 50 layers: about 1.5 s a shot."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    workdir: Path = tmp_path_factory.mktemp("limits-server")
    keys = make_keys(workdir / "keys.json", alice=Role.USER, bob=Role.USER, root=Role.ADMIN)
    env = {"VQPU_MAX_QUEUED_PER_OWNER": "3", "VQPU_QUEUE_FULL_RETRY_AFTER_S": "7", "VQPU_QUEUED_CHECK_BYTES": "1"}
    with ServerProcess(workdir, f"sqlite:///{workdir / 'cp.db'}", workdir / "keys.json", env=env) as process:
        yield process.url, keys


def test_a_task_over_its_wall_time_limit_raises_limit_exceeded_with_the_estimate(
    server: tuple[str, dict[str, str]],
) -> None:
    url, keys = server
    with Client(url, keys["bob"]) as vqpu:
        with pytest.raises(errors.LimitExceededError) as refused:
            vqpu.submit("ibm-fez", LONG, shots=10_000_000)
        assert refused.value.code == "TOO_LONG" and refused.value.status == 422
        assert refused.value.limit == "max_runtime_s"
        assert refused.value.estimate is not None and refused.value.estimate["estimated_runtime_s"] > 3600
        verdict = vqpu.viability("ibm-fez", LONG, shots=4)
        assert verdict.admissible and verdict.price is not None
        task = vqpu.submit("ibm-fez", LONG, shots=4)
        assert task.estimate == verdict.price
        vqpu.cancel(task.id)


def test_a_submit_past_the_queue_cap_raises_queue_full_with_retry_after(server: tuple[str, dict[str, str]]) -> None:
    url, keys = server
    with Client(url, keys["alice"]) as vqpu:
        queued = [vqpu.submit("line-16", BELL, shots=10) for _ in range(3)]
        with pytest.raises(errors.QueueFullError) as full:
            vqpu.submit("line-16", BELL, shots=10)
        assert full.value.code == "QUEUE_FULL" and full.value.status == 429 and full.value.retry_after_s == 7
        with Client(url, keys["root"]) as admin:  # an epoch they were not admitted on: each must be re-checked
            epoch = admin.patch_device("line-16", {"qubits": [{"index": 9, "error_1q": 0.001}]}).epoch
        # one byte of budget: each answer re-checks one circuit, and says where to go on
        seen: list[int] = []
        answer = vqpu.queued_violations("line-16", epoch)
        while True:
            seen.append(answer.checked)
            if not answer.truncated:
                break
            answer = vqpu.queued_violations("line-16", epoch, after=answer.next_after)
        assert sum(seen) == 3 and all(n == 1 for n in seen)
        vqpu.cancel(queued[0].id)
        vqpu.submit("line-16", BELL, shots=10)  # a freed place in the queue is usable at once
