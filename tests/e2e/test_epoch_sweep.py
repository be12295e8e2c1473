"""Calibration epochs end to end, as a user runs them: five refreshes drift ibm-fez into five new
epochs, the deployments in deployments/prefect.yaml are registered with `prefect deploy`, and a real
process worker of the user pool runs the sweep deployment, whose tasks the local stack's agent runs
pinned to each epoch; the flow run's table and plot artifacts hold what a user reads."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import anyio
import pytest

from device_registry import admissibility, catalog
from device_registry.drift import DriftError
from flows.refresh import ADMIN_KEY_ENV, Refresh, calibration_refresh, drift_model
from flows.sweep import SweepError, benchmarks, ideal_distribution, sampling_floor, select_epochs, tv_distance
from harness.prefect_server import PrefectServerProcess, prefect_api
from harness.servers import log_tail
from harness.stack import LocalStack
from vqpu_client import Client

ROOT = Path(__file__).resolve().parents[2]
POOL = "vqpu-user-flows"
REFRESHES = 5
SHOTS = 256


# --- what the sweep is made of (no stack needed) ------------------------------------------------


def test_the_benchmarks_are_native_and_admissible_on_fez_with_their_known_ideal_outputs() -> None:
    fez = catalog.load("ibm-fez")
    for bench in benchmarks():
        assert admissibility.check(bench.circuit, "qasm2", fez) == [], bench.name
    ideal = {b.name: ideal_distribution(b.circuit) for b in benchmarks()}
    assert ideal["amplified-identity"] == {"00": pytest.approx(1.0)}
    assert ideal["ghz-4"] == {"0000": pytest.approx(0.5), "1111": pytest.approx(0.5)}
    qaoa = ideal["qaoa-maxcut-4"]
    cut = sum(p * sum(k[i] != k[i + 1] for i in range(3)) for k, p in qaoa.items())
    assert cut == pytest.approx(2.38, abs=0.01) and max(qaoa, key=qaoa.__getitem__) in ("0101", "1010")


def test_the_sampling_floor_is_what_sampling_the_ideal_output_alone_gives() -> None:
    import numpy as np

    ideal = ideal_distribution(benchmarks()[2].circuit)
    keys, probs = list(ideal), np.array(list(ideal.values()))
    rng = np.random.default_rng(5)
    tvs = [
        tv_distance(dict(zip(keys, rng.multinomial(2000, probs / probs.sum()) / 2000, strict=True)), ideal)
        for _ in range(300)
    ]
    assert float(np.mean(tvs)) == pytest.approx(sampling_floor(ideal, 2000), rel=0.1)


def test_epochs_are_chosen_as_asked_and_a_missing_one_is_an_error() -> None:
    assert select_epochs([0, 1, 2, 3], None, None) == [0, 1, 2, 3]
    assert select_epochs([0, 1, 2, 3], [3, 1], None) == [1, 3]
    assert select_epochs([0, 1, 2, 3], None, 2) == [2, 3]
    with pytest.raises(SweepError, match=r"no epoch \[7\]"):
        select_epochs([0, 1, 2, 3], [1, 7], None)
    with pytest.raises(SweepError, match="not both"):
        select_epochs([0, 1], [0], 1)
    with pytest.raises(SweepError, match="last must be"):
        select_epochs([0, 1], None, 0)


def test_a_refresh_with_an_unknown_drift_parameter_is_refused_by_name() -> None:
    assert drift_model({"t1_sigma": 0.3}).t1_sigma == 0.3
    with pytest.raises(DriftError, match="t1_sigmaa"):
        drift_model({"t1_sigmaa": 0.3})


# --- the stack ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack = LocalStack(tmp_path_factory.mktemp("sweep-stack")).start()
    try:
        yield stack
    finally:
        statuses = stack.stop()
    assert statuses == {"agent": 0, "prefect": 0, "control_plane": 0}


@pytest.fixture(scope="module")
def user(stack: LocalStack) -> Iterator[Client]:
    with Client(stack.url, stack.keys["user"]) as client:
        yield client


@pytest.fixture(scope="module")
def refreshes(stack: LocalStack) -> list[Refresh]:
    """The refresh flow, run five times in this process as a user would call it."""
    assert stack.prefect is not None
    with pytest.MonkeyPatch.context() as env, prefect_api(stack.prefect):
        env.setenv(ADMIN_KEY_ENV, stack.keys["admin"])
        return [calibration_refresh(device="ibm-fez", seed=100 + i, url=stack.url) for i in range(REFRESHES)]


def _prefect(stack: LocalStack, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert stack.prefect is not None
    env = {
        **os.environ,
        **stack.prefect.client_env(),  # PREFECT_API_URL and the stack's credential, PREFECT_API_AUTH_STRING
        "PREFECT_HOME": str(home),
        "DO_NOT_TRACK": "1",
        "PREFECT_CLI_PROMPT": "false",
    }
    return subprocess.run(
        [sys.executable, "-m", "prefect", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )


@pytest.fixture(scope="module")
def deployed(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The user's two commands: create the process pool, deploy everything in deployments/prefect.yaml."""
    home = tmp_path_factory.mktemp("user-prefect-home")
    for args in (
        ("work-pool", "create", POOL, "--type", "process"),
        ("--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml"),
    ):
        done = _prefect(stack, home, *args)
        assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return home


class ProcessWorker:
    """`prefect worker start --pool POOL --type process`, its own process group, stopped by PID with SIGTERM."""

    def __init__(self, stack: LocalStack, home: Path, log: Path) -> None:
        assert stack.prefect is not None
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "VQPU_"))}
        env.update(
            {
                **stack.prefect.client_env(),
                "PREFECT_HOME": str(home),
                "DO_NOT_TRACK": "1",
                "PREFECT_WORKER_QUERY_SECONDS": "1",
                # Each flow run starts in a scratch directory: the checkout's code, as pytest's pythonpath gives it.
                "PYTHONPATH": str(ROOT),
                # What the sweep's flow runs read: the credentials live in the worker's environment only.
                "VQPU_URL": stack.url,
                "VQPU_KEY": stack.keys["user"],
            }
        )
        command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--type", "process"]
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def stop(self, timeout_s: float = 30.0) -> int:
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError(f"the worker ignored SIGTERM for {timeout_s} s:\n{log_tail(self.log, 40)}") from None


async def _deployment(server: PrefectServerProcess, name: str) -> Any:
    from prefect.client.orchestration import get_client

    with prefect_api(server):
        async with get_client() as client:
            return await client.read_deployment_by_name(name)


@pytest.fixture(scope="module")
def sweep_run(
    stack: LocalStack, refreshes: list[Refresh], deployed: Path, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """The sweep deployment, triggered over the API and executed by a real worker of the user pool."""
    assert stack.prefect is not None
    worker = ProcessWorker(stack, deployed, tmp_path_factory.mktemp("worker") / "worker.log")
    try:
        run = anyio.run(_run_sweep_deployment, stack.prefect)
    finally:
        status = worker.stop()
    assert status in (0, -signal.SIGTERM), log_tail(worker.log, 40)
    assert run.state is not None and run.state.is_completed(), f"{run.state}:\n{log_tail(worker.log, 60)}"
    return run


async def _run_sweep_deployment(server: PrefectServerProcess) -> Any:
    """Trigger the sweep deployment and wait for its flow run, on a client this closes (arun_deployment's
    own would leave its connection open when the event loop ends)."""
    from prefect.client.orchestration import get_client
    from prefect.deployments.flow_runs import arun_deployment

    with prefect_api(server):
        async with get_client() as client:
            return await arun_deployment(
                "calibration-epoch-sweep/daily",
                client=client,
                parameters={"epochs": list(range(REFRESHES + 1)), "last": None, "shots": SHOTS},
                timeout=300,
            )


async def _artifacts(server: PrefectServerProcess, flow_run_id: Any) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with prefect_api(server):
        async with get_client() as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
            )
    return {a.key: a for a in found if a.key is not None}


@pytest.mark.slow
def test_five_refreshes_make_five_new_epochs_each_drifted_from_the_one_before(
    refreshes: list[Refresh], user: Client
) -> None:
    epochs = user.epochs("ibm-fez")
    assert [e.epoch for e in epochs] == list(range(REFRESHES + 1))
    assert [r.epoch for r in refreshes] == list(range(1, REFRESHES + 1))
    assert [r.parent_epoch for r in refreshes] == list(range(REFRESHES))
    assert [r.sha256 for r in refreshes] == [e.sha256 for e in epochs[1:]]
    assert len({e.sha256 for e in epochs}) == REFRESHES + 1
    first, last = user.snapshot("ibm-fez", 0), user.snapshot("ibm-fez")
    assert last.epoch == REFRESHES and last.source is not None and last.source.kind == "vqpu-drift"
    assert f"seed {100 + REFRESHES - 1}" in (last.source.name or "")
    moved = [b.t1 != a.t1 for a, b in zip(first.qubits, last.qubits, strict=True)]
    assert all(moved)
    assert all(r.median_t1_ratio is not None and 0.7 < r.median_t1_ratio < 1.4 for r in refreshes)


@pytest.mark.slow
def test_prefect_deploy_registers_both_deployments_on_the_user_pool_with_their_cron_schedules(
    stack: LocalStack, deployed: Path
) -> None:
    assert stack.prefect is not None
    sweep = anyio.run(_deployment, stack.prefect, "calibration-epoch-sweep/daily")
    refresh = anyio.run(_deployment, stack.prefect, "calibration-refresh/daily")
    for deployment, cron in ((sweep, "30 6 * * *"), (refresh, "0 6 * * *")):
        assert deployment.work_pool_name == POOL
        assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in deployment.schedules] == [(cron, "UTC", True)]
        stored = deployment.model_dump_json()
        credentials = [*stack.keys.values(), stack.prefect.auth_string]
        assert not any(c in stored for c in credentials), "a credential was stored in the deployment"
    assert sweep.entrypoint == "flows.sweep.calibration_epoch_sweep"
    assert sweep.parameters["last"] == 7 and sweep.parameters["device"] == "ibm-fez"


@pytest.mark.slow
def test_the_deployed_sweep_runs_every_benchmark_pinned_to_every_epoch_with_one_seed(
    stack: LocalStack, sweep_run: Any, user: Client
) -> None:
    assert stack.prefect is not None
    artifacts = anyio.run(_artifacts, stack.prefect, sweep_run.id)
    assert set(artifacts) == {"epoch-sweep-ibm-fez", "epoch-sweep-ibm-fez-plot"}
    rows = json.loads(artifacts["epoch-sweep-ibm-fez"].data)
    names = [b.name for b in benchmarks()]
    assert sorted((r["epoch"], r["benchmark"]) for r in rows) == sorted(
        (e, n) for e in range(REFRESHES + 1) for n in names
    )
    sha_of = {e.epoch: e.sha256 for e in user.epochs("ibm-fez")}
    done = [r for r in rows if r["status"] == "COMPLETED"]
    assert len(done) >= len(rows) - 2, rows  # a qubit a benchmark uses may be out at an epoch, rarely
    for r in rows:
        if r["status"] != "COMPLETED":
            assert r["status"] == "NOT_ADMISSIBLE" and r["task_id"] is None and r["detail"], r
    for r in done:
        task = user.task(r["task_id"])
        assert (task.epoch, task.bound_epoch, task.seed, task.shots) == (r["epoch"], r["epoch"], r["seed"], SHOTS)
        assert r["snapshot_sha256"] == sha_of[r["epoch"]] == task.bound_sha256
        assert r["tv_ideal"] > 0
    identity = [r for r in done if r["benchmark"] == "amplified-identity"]
    assert all(r["tv_ideal"] > 0.05 and r["sampling_floor"] == 0 for r in identity)  # the noise, not sampling
    assert len({r["seed"] for r in rows}) == 1


@pytest.mark.slow
def test_the_sweep_records_the_drift_between_consecutive_epochs_and_plots_it(stack: LocalStack, sweep_run: Any) -> None:
    assert stack.prefect is not None
    artifacts = anyio.run(_artifacts, stack.prefect, sweep_run.id)
    rows = json.loads(artifacts["epoch-sweep-ibm-fez"].data)
    for name in {r["benchmark"] for r in rows}:
        mine = sorted((r for r in rows if r["benchmark"] == name), key=lambda r: r["epoch"])
        assert mine[0]["tv_previous_epoch"] is None
        for before, after in pairwise(mine):
            if before["status"] == after["status"] == "COMPLETED":
                assert after["tv_previous_epoch"] is not None and after["tv_previous_epoch"] > 0, (name, after)
    markdown = artifacts["epoch-sweep-ibm-fez-plot"].data
    found = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert found is not None
    assert base64.b64decode(found.group(1)).startswith(b"\x89PNG\r\n\x1a\n")
