"""A real Slurm (`scripts/slurm-local.sh start`): a job completes and writes its output, `scancel` ends
one, and two small jobs share the node. Jobs are watched with `scontrol show job -o` every 20 ms, not
`sbatch --wait` (which sleeps 2 s before its first look)."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator, Set
from pathlib import Path

import pytest

from agent.scheduler.sbatch import TERMINAL_STATES, parse_fields
from tests.requirements import require_slurm

pytestmark = pytest.mark.timeout(120)

POLL_S = 0.02


class Jobs:
    """Submits jobs with their output in a test's tmp_path, watches them, and cancels what is left at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.submitted: list[str] = []

    def submit(self, wrap: str, *options: str) -> str:
        name = f"vqpu-test-{uuid.uuid4().hex[:8]}"
        head = ["sbatch", "--parsable", f"--job-name={name}", f"--chdir={self.workdir}", "--output=%x-%j.out"]
        command = [*head, "--time=5", *options, "--wrap", wrap]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, f"sbatch failed: {proc.stderr.strip()}"
        job_id = proc.stdout.strip().split(";")[0]
        assert job_id.isdigit(), proc.stdout
        self.submitted.append(job_id)
        return job_id

    def output(self, job_id: str) -> Path:
        return next(self.workdir.glob(f"*-{job_id}.out"))

    def fields(self, job_id: str) -> dict[str, str]:
        proc = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=10)
        assert proc.returncode == 0, f"scontrol show job {job_id}: {proc.stderr.strip()}"
        return parse_fields(proc.stdout.strip())

    def state(self, job_id: str) -> str:
        return self.fields(job_id)["JobState"]

    def wait_for(self, job_id: str, states: Set[str], timeout_s: float) -> str:
        """Poll until the job is in one of `states` (or any terminal state); its state then."""
        deadline = time.monotonic() + timeout_s
        while True:
            state = self.state(job_id)
            if state in states or state in TERMINAL_STATES:
                return state
            if time.monotonic() > deadline:
                pytest.fail(f"job {job_id} still {state} after {timeout_s} s; wanted {sorted(states)}")
            time.sleep(POLL_S)

    def cancel_leftovers(self) -> None:
        """`scancel` every job this test submitted (a no-op for ended ones), then wait for them to end."""
        if not self.submitted:
            return
        subprocess.run(["scancel", *self.submitted], capture_output=True, timeout=30)
        for job_id in self.submitted:
            self.wait_for(job_id, TERMINAL_STATES, timeout_s=15)


@pytest.fixture
def jobs(tmp_path: Path) -> Iterator[Jobs]:
    require_slurm()
    jobs = Jobs(tmp_path)
    try:
        yield jobs
    finally:
        jobs.cancel_leftovers()


def test_a_trivial_job_completes_and_writes_its_output(jobs: Jobs) -> None:
    token = uuid.uuid4().hex
    started = time.monotonic()
    job_id = jobs.submit(f"echo {token}; echo on $(hostname) as job $SLURM_JOB_ID")
    state = jobs.wait_for(job_id, {"COMPLETED"}, timeout_s=30)
    latency = time.monotonic() - started
    fields = jobs.fields(job_id)
    assert state == "COMPLETED", fields
    assert fields["ExitCode"] == "0:0"
    text = jobs.output(job_id).read_text()
    assert token in text
    assert f"as job {job_id}" in text
    # Jobs mostly start on the 1 s backfill tick (bf_interval=1): 0-1 s after submission.
    assert latency < 10, f"submit -> COMPLETED took {latency:.2f} s"


def test_scancel_ends_a_running_job(jobs: Jobs) -> None:
    job_id = jobs.submit("sleep 300")
    assert jobs.wait_for(job_id, {"RUNNING"}, timeout_s=30) == "RUNNING"
    cancelled = time.monotonic()
    subprocess.run(["scancel", job_id], check=True, capture_output=True, timeout=30)
    assert jobs.wait_for(job_id, {"CANCELLED"}, timeout_s=10) == "CANCELLED"
    assert time.monotonic() - cancelled < 5


@pytest.mark.parametrize("options", [("--mem=100M", "-c1"), ("-c1",)], ids=["mem-100M", "default-mem"])
def test_two_small_jobs_run_at_the_same_time(jobs: Jobs, options: tuple[str, ...]) -> None:
    """One CPU each, side by side; without --mem only DefMemPerCPU keeps a job from taking all the node's memory."""
    cpus = _node_cpus()
    if cpus < 2:
        pytest.skip(f"the Slurm node has {cpus} CPU; two one-CPU jobs cannot run side by side")
    # Each job marks its start, then waits for the other's mark: both complete only if they overlap.
    rendezvous = (
        "touch {me}.started; for _ in $(seq 200); do [ -e {other}.started ] && exit 0; sleep 0.05; done; exit 1"
    )
    first = jobs.submit(rendezvous.format(me="a", other="b"), *options)
    second = jobs.submit(rendezvous.format(me="b", other="a"), *options)
    states = (jobs.wait_for(first, {"COMPLETED"}, timeout_s=30), jobs.wait_for(second, {"COMPLETED"}, timeout_s=30))
    assert states == ("COMPLETED", "COMPLETED"), f"the two jobs did not run at the same time: {states}"


def _node_cpus() -> int:
    proc = subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True, timeout=10, check=True)
    return max(int(line.rstrip("+")) for line in proc.stdout.split())
