"""A task past its wall-time limit, end to end: the real control plane, Prefect server and agent process, a
site whose ceiling is 3 s, and a circuit that simulates for much longer. The user sees the task FAILED with
TIME_LIMIT_EXCEEDED naming the limit, within the limit plus 5 s of the run starting, on a Dask LocalCluster's
warm runner, on a SLURMCluster worker's and on one sbatch job per task."""

from __future__ import annotations

import time

import pytest

from harness.circuits import qasm2
from tests.e2e.sites import Site
from tests.requirements import require_slurm

LIMIT_S = 3
LONG = qasm2("sx q;\n" * 50 + "measure q -> c;", qubits=20)
"""Noisy on Fez, trajectories: 0.4-6 s a shot (0.4 s measured with the runner's shot branching off under a
memory limit, on an idle machine), so 200 shots run far past the limit however fast the machine is."""


@pytest.mark.slow
@pytest.mark.parametrize("base", ["local", "slurm-local", "sbatch-local"])
def test_a_task_past_the_sites_wall_time_limit_fails_time_limit_exceeded(
    site: Site, prefect_env: str, base: str
) -> None:
    if base != "local":
        require_slurm()
    site.agent(base, resources={"max_runtime_s": LIMIT_S})
    task_id = site.submit(LONG, dialect="qasm2", shots=200, seed=3)

    site.wait_running(task_id)
    began = time.monotonic()
    task = site.wait(task_id, timeout_s=60)
    took = time.monotonic() - began

    assert task["state"] == "FAILED", task
    assert task["error"]["code"] == "TIME_LIMIT_EXCEEDED", task["error"]
    assert task["error"]["detail"]["limit_s"] == LIMIT_S
    assert took < LIMIT_S + 5, f"the task ended {took:.1f} s after it started running"
