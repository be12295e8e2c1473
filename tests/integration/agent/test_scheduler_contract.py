"""The scheduler contract: every adapter behind `agent.scheduler.base.Scheduler` runs real runner
processes on real run directories and reports the same evidence.

A job that must stay running for a while gets a run dir whose task.json is a FIFO: the runner blocks
opening it until the test writes the task in (`release`), so "running" lasts exactly as long as the
test wants, on any machine, and then the run completes normally.

To add an adapter, add one async factory to ADAPTERS.
"""

from __future__ import annotations

import errno
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio
import pytest

from agent.scheduler.base import JobHandle, JobState, Placement, Resources, Scheduler, SchedulerError, TerminalEvidence
from agent.scheduler.dask import DaskAdapter
from agent.scheduler.memory import MemoryScheduler
from agent.scheduler.sbatch import SbatchAdapter
from agent.site import SbatchScheduler, parse_site
from device_registry import Snapshot
from harness.circuits import BELL
from harness.runner_process import ROOT
from tests.conftest import MakeRunDir
from tests.requirements import require_slurm
from vqpu_protocol.codes import ErrorCode
from vqpu_protocol.errors import ErrorDocument
from vqpu_protocol.rundir import ERROR_FILE, TASK_FILE, ResultDocument, read_outcome

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

START_TIMEOUT_S = 30.0
END_TIMEOUT_S = 60.0
CANCEL_WITHIN_S = 2.0


async def memory_scheduler(request: pytest.FixtureRequest) -> Scheduler:
    return MemoryScheduler(cwd=ROOT)


async def sbatch_scheduler(request: pytest.FixtureRequest) -> Scheduler:
    require_slurm()
    settings = SbatchScheduler(kind="sbatch", walltime="00:10:00", poll_s=0.02)
    # A fresh agent id per test: observe_active must see this test's jobs and no one else's.
    return SbatchAdapter(settings, agent_id=f"contract-{uuid.uuid4().hex[:8]}", cwd=ROOT)


async def dask_scheduler(request: pytest.FixtureRequest) -> Scheduler:
    # No Prefect: the runner step is a plain function on the workers (its task run is the agent's to record).
    run_root: Path = request.getfixturevalue("tmp_path") / "runs"
    run_root.mkdir(mode=0o700)
    site = parse_site({"site": "contract", "slots": 2, "run_root": str(run_root), "scheduler": {"kind": "local"}})
    return DaskAdapter(site, cwd=ROOT)


ADAPTERS: dict[str, Callable[[pytest.FixtureRequest], Awaitable[Scheduler]]] = {
    "memory": memory_scheduler,
    "sbatch": sbatch_scheduler,
    "dask": dask_scheduler,
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=sorted(ADAPTERS))
async def scheduler(request: pytest.FixtureRequest) -> AsyncIterator[Scheduler]:
    adapter = await ADAPTERS[request.param](request)
    await adapter.start()
    try:
        yield adapter
    finally:
        await adapter.close()
    assert await adapter.observe_active() == set(), "close() left jobs running"


# --- helpers ----------------------------------------------------------------------------------


def held_run_dir(make_run_dir: MakeRunDir, snapshot: Snapshot) -> tuple[Path, bytes]:
    """A Bell run dir whose runner blocks until `release`; and the task.json it will then read."""
    run_dir = make_run_dir(BELL, snapshot, dialect="qasm3")
    task = (run_dir / TASK_FILE).read_bytes()
    (run_dir / TASK_FILE).unlink()
    os.mkfifo(run_dir / TASK_FILE)
    return run_dir, task


async def release(run_dir: Path, task: bytes) -> None:
    """Hand the task to the runner blocked on the FIFO (waiting until it opens it, if need be)."""
    with anyio.fail_after(START_TIMEOUT_S):
        while True:
            try:
                # Non-blocking: a blocking open would hang the test if the runner never opens it.
                fd = os.open(run_dir / TASK_FILE, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                    raise
                await anyio.sleep(0.02)
                continue
            try:
                os.write(fd, task)  # a few hundred bytes: well within the pipe buffer
            finally:
                os.close(fd)
            return


async def started(scheduler: Scheduler, handle: JobHandle) -> Placement:
    with anyio.fail_after(START_TIMEOUT_S):
        while (placement := await scheduler.placement(handle)) is None:
            await anyio.sleep(0.02)
    return placement


async def ended(scheduler: Scheduler, handle: JobHandle) -> TerminalEvidence:
    with anyio.fail_after(END_TIMEOUT_S):
        return await scheduler.wait(handle)


# --- the contract -----------------------------------------------------------------------------


async def test_a_bell_run_completes_with_exit_0_and_a_valid_result(
    scheduler: Scheduler, make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    run_dir = make_run_dir(BELL, fez, dialect="qasm3", shots=1000)
    handle = await scheduler.submit(run_dir, Resources())

    evidence = await ended(scheduler, handle)

    assert (evidence.state, evidence.exit_code) == (JobState.COMPLETED, 0), evidence
    assert evidence.job_id == handle.job_id
    outcome = read_outcome(run_dir)
    assert isinstance(outcome, ResultDocument), outcome
    assert sum(outcome.counts.values()) == 1000
    assert outcome.provenance.scheduler_job_id in (None, handle.job_id)


async def test_a_running_job_is_active_until_it_ends_and_then_no_longer(
    scheduler: Scheduler, make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    run_dir, task = held_run_dir(make_run_dir, fez)
    handle = await scheduler.submit(run_dir, Resources())
    await started(scheduler, handle)

    assert handle in await scheduler.observe_active()
    await release(run_dir, task)
    evidence = await ended(scheduler, handle)

    assert (evidence.state, evidence.exit_code) == (JobState.COMPLETED, 0), evidence
    assert handle not in await scheduler.observe_active()


async def test_a_running_job_has_no_terminal_evidence_yet(
    scheduler: Scheduler, make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    run_dir, task = held_run_dir(make_run_dir, fez)
    handle = await scheduler.submit(run_dir, Resources())
    await started(scheduler, handle)

    assert await scheduler.query_terminal(handle) is None
    await release(run_dir, task)
    assert (await ended(scheduler, handle)).state == JobState.COMPLETED


async def test_cancel_ends_a_running_job_as_cancelled_within_2_s(
    scheduler: Scheduler, make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    run_dir, _ = held_run_dir(make_run_dir, fez)
    handle = await scheduler.submit(run_dir, Resources())
    await started(scheduler, handle)

    began = time.monotonic()
    await scheduler.cancel(handle)
    evidence = await scheduler.query_terminal(handle)
    took = time.monotonic() - began

    assert evidence is not None and evidence.state == JobState.CANCELLED, evidence
    assert took < CANCEL_WITHIN_S, f"cancel took {took:.2f} s"
    assert handle not in await scheduler.observe_active()
    assert read_outcome(run_dir) is None  # the runner never got to write


async def test_an_invalid_payload_ends_with_exit_code_2_and_an_error_document(
    scheduler: Scheduler, make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    run_dir = make_run_dir(BELL, fez, dialect="qasm3")
    (run_dir / TASK_FILE).write_text("{not json", encoding="utf-8")
    handle = await scheduler.submit(run_dir, Resources())

    evidence = await ended(scheduler, handle)

    assert (evidence.state, evidence.exit_code) == (JobState.COMPLETED, 2), evidence
    assert (run_dir / ERROR_FILE).is_file()
    outcome = read_outcome(run_dir)
    assert isinstance(outcome, ErrorDocument) and outcome.code == ErrorCode.INVALID_JSON, outcome


async def test_two_jobs_run_at_the_same_time(scheduler: Scheduler, make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    held = [held_run_dir(make_run_dir, fez) for _ in range(2)]
    handles = [await scheduler.submit(run_dir, Resources()) for run_dir, _ in held]
    for handle in handles:
        await started(scheduler, handle)

    assert set(handles) <= await scheduler.observe_active()
    for run_dir, task in held:
        await release(run_dir, task)
    for handle in handles:
        evidence = await ended(scheduler, handle)
        assert (evidence.state, evidence.exit_code) == (JobState.COMPLETED, 0), evidence


async def test_placement_names_the_node_the_runner_runs_on_and_the_job_id(
    scheduler: Scheduler, make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    run_dir, task = held_run_dir(make_run_dir, fez)
    handle = await scheduler.submit(run_dir, Resources())

    placement = await started(scheduler, handle)
    await release(run_dir, task)
    await ended(scheduler, handle)

    assert placement.job_id == handle.job_id
    outcome = read_outcome(run_dir)
    assert isinstance(outcome, ResultDocument), outcome
    assert placement.node == outcome.provenance.hostname


# --- sbatch only ------------------------------------------------------------------------------


async def test_sbatch_refusing_a_job_is_a_scheduler_error_with_its_reason(
    make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    require_slurm()
    settings = SbatchScheduler(kind="sbatch", partition="no-such-partition")
    adapter = SbatchAdapter(settings, agent_id=f"contract-{uuid.uuid4().hex[:8]}")

    with pytest.raises(SchedulerError, match="invalid partition"):
        await adapter.submit(make_run_dir(BELL, fez, dialect="qasm3"), Resources())
    await adapter.close()
