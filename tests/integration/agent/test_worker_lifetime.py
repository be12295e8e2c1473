"""The lifetime rule: a Dask worker retires at its `--lifetime` (dask-jobqueue sites retire workers before their
batch job's walltime), and Dask does not wait for a task in flight when it does; so a run starts only on a
worker that will live at least the run's limit plus the kill grace longer. A worker that would not retires
at once and the step goes to another worker (here: the one its nanny restarts), which runs it to the end.

Real processes: a LocalCluster whose one worker has a 20 s lifetime and is restarted by its nanny when it
retires, with the warm runner plugin, as dask-jobqueue's workers have."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from distributed import Client, LocalCluster

from agent.deadline import kill_after_s
from agent.warm import WarmRunnerPlugin, run_on_worker
from agent.warm.plugin import lifetime_left_s
from device_registry import Snapshot
from harness.circuits import BELL
from harness.runner_process import ROOT
from tests.conftest import MakeRunDir
from vqpu_protocol.rundir import ResultDocument, read_outcome

LIFETIME_S = 20


@pytest.fixture
def retiring() -> Iterator[Client]:
    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            lifetime=f"{LIFETIME_S}s",
            lifetime_restart=True,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(WarmRunnerPlugin("process", cwd=str(ROOT)))
        yield client


def _left(client: Client) -> tuple[str, float]:
    (address, left), *_ = client.run(lambda dask_worker: lifetime_left_s(dask_worker)).items()
    assert left is not None
    return address, left


@pytest.mark.slow
def test_a_run_that_would_outlive_its_worker_goes_to_a_fresh_worker_and_completes(
    retiring: Client, make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    old, left = _left(retiring)
    limit_s = 10.0
    while left >= kill_after_s(limit_s):  # until the worker has less left than the run could take
        time.sleep(0.2)
        old, left = _left(retiring)
    run_dir = make_run_dir(BELL, fez, dialect="qasm3", limits={"max_runtime_s": limit_s})

    outcome: dict[str, Any] = retiring.submit(run_on_worker, str(run_dir), limit_s, pure=False).result(timeout=60)

    assert outcome["exit_code"] == 0 and outcome["worker"] != old, outcome
    assert isinstance(read_outcome(run_dir), ResultDocument)
    assert (run_dir / "runner.log").read_text().count(" task ") == 1  # it ran once, on the fresh worker
    assert old not in retiring.scheduler_info()["workers"]


def test_a_run_that_fits_stays_on_its_worker(retiring: Client, make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    old, left = _left(retiring)
    assert left > kill_after_s(2.0) + 5
    run_dir = make_run_dir(BELL, fez, dialect="qasm3", limits={"max_runtime_s": 2.0})

    outcome: dict[str, Any] = retiring.submit(run_on_worker, str(run_dir), 2.0, pure=False).result(timeout=60)

    assert outcome["exit_code"] == 0 and outcome["worker"] == old, outcome
