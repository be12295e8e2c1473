"""The slurm-local site's Dask cluster on the real single-node Slurm: adapt starts a worker as a Slurm
job when work arrives, work round-trips through it, and closing the cluster cancels its jobs."""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from distributed import Client

from agent.cluster import start_cluster
from agent.dask_security import private_directory
from agent.site import parse_site
from tests.requirements import require_slurm

pytestmark = pytest.mark.timeout(180)

SITE_FILE = Path(__file__).resolve().parents[3] / "deployments" / "sites" / "slurm-local.yaml"
FIRST_WORKER_TIMEOUT_S = 90.0
JOBS_GONE_TIMEOUT_S = 20.0


def queued(job_name: str) -> list[str]:
    """This test's jobs that Slurm still lists (pending, running or completing)."""
    proc = subprocess.run(
        ["squeue", "-h", "--name", job_name, "-o", "%i %T"], capture_output=True, text=True, timeout=10
    )
    assert proc.returncode == 0, f"squeue failed: {proc.stderr.strip()}"
    return proc.stdout.split("\n")[:-1]


def test_adapt_starts_a_slurm_worker_and_close_cancels_it(tmp_path: Path) -> None:
    require_slurm()
    raw: dict[str, Any] = yaml.safe_load(SITE_FILE.read_text())
    # A site name of its own: the job name (vqpu-SITE) tells this test's jobs from any other test's.
    raw["site"] = f"cluster-test-{uuid.uuid4().hex[:8]}"
    raw["run_root"] = str(tmp_path / "runs")
    raw["scheduler"]["log_directory"] = str(tmp_path / "slurm-logs")
    site = parse_site(raw, source=str(SITE_FILE))
    job_name = f"vqpu-{site.site}"

    site.run_root.mkdir(mode=0o700)
    began = time.monotonic()
    cluster = start_cluster(site, private_dir=private_directory(site.run_root, ".dask-"))
    try:
        with Client(cluster) as client:
            # adapt keeps no job while idle (minimum_jobs 0): the work itself makes it start one.
            assert len(cluster.workers) == 0
            host = client.submit(socket.gethostname, pure=False)
            client.wait_for_workers(1, timeout=FIRST_WORKER_TIMEOUT_S)
            first_worker_s = time.monotonic() - began
            assert host.result(timeout=30) == socket.gethostname()  # the single node is this machine
            round_trip_s = time.monotonic() - began

            job_ids = client.run(lambda: os.environ.get("SLURM_JOB_ID"))
            assert job_ids, "no worker answered"
            assert all(job_id is not None and job_id.isdigit() for job_id in job_ids.values()), job_ids
            # The job prologue turned the nanny's daemonic worker off, so a fork server can run there.
            assert set(client.run(lambda: multiprocessing.current_process().daemon).values()) == {False}
            listed = " ".join(queued(job_name))
            assert all(job_id in listed for job_id in job_ids.values()), (job_ids, listed)
        print(
            f"\nSLURMCluster: first worker {first_worker_s:.2f} s after start_cluster, "
            f"first result {round_trip_s:.2f} s; Slurm jobs {sorted(set(job_ids.values()))}"
        )
    finally:
        cluster.close()

    # scancel returns before Slurm has finished a job (COMPLETING): give it a bounded moment.
    deadline = time.monotonic() + JOBS_GONE_TIMEOUT_S
    while (left := queued(job_name)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == [], f"cluster.close() left Slurm jobs: {left}"
    assert list((tmp_path / "slurm-logs").glob(f"{job_name}-*.out")), "the job wrote no log where the site says"
