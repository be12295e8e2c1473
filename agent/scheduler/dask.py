"""The `dask` adapter: the runner step on the agent's own Dask cluster, through prefect-dask.

The agent starts one cluster for its lifetime (LocalCluster, or dask-jobqueue's SLURMCluster /
PBSCluster whose batch jobs each run Dask workers) and one `DaskTaskRunner(address=...)` on it; each
task's runner step is submitted through that task runner's client the moment the task is claimed. On
the worker the runner runs in a killable child of a warm, pre-imported process (agent.warm); cancel
kills that child wherever it runs. Nothing on the worker talks to Prefect: the step's task run is
recorded by the agent (agent.view), beside the work rather than in front of it.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import shutil
import socket
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import distributed
from distributed.security import Security
from prefect_dask.task_runners import DaskTaskRunner

from agent.cluster import PRIVATE_DIR_PREFIX, start_cluster
from agent.dask_security import private_directory
from agent.deadline import TIMEOUT
from agent.scheduler.base import (
    JobHandle,
    JobState,
    Placement,
    Resources,
    Scheduler,
    SchedulerError,
    TerminalEvidence,
)
from agent.site import SiteConfig
from agent.warm import WarmRunnerPlugin, kill_runner, run_runner

log = logging.getLogger("agent.scheduler.dask")

CANCEL_SETTLE_S = 5.0


class DaskAdapter(Scheduler):
    name = "dask"

    def __init__(self, site: SiteConfig, *, cwd: Path | None = None) -> None:
        self.site = site
        self.cwd = cwd or Path.cwd()
        self._cluster: Any = None
        self._private_dir: Path | None = None
        self._runner: DaskTaskRunner | None = None
        self._futures: dict[JobHandle, distributed.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._hosts: dict[str, tuple[str | None, Any]] = {}  # worker address -> (hostname, Dask worker name)

    @property
    def address(self) -> str:
        if self._cluster is None:
            raise SchedulerError("the Dask cluster is not started")
        address: str = self._cluster.scheduler_address
        return address

    @property
    def security(self) -> Security:
        """What a client of this cluster must present (the cluster refuses any other connection)."""
        if self._cluster is None:
            raise SchedulerError("the Dask cluster is not started")
        security: Security = self._cluster.security
        return security

    async def start(self) -> None:
        # Credentials and job scripts of a batch cluster; on the run root, which the compute nodes share.
        private_dir = self._private_dir = private_directory(self.site.run_root, PRIVATE_DIR_PREFIX)
        try:
            self._cluster = await anyio.to_thread.run_sync(lambda: start_cluster(self.site, private_dir=private_dir))
        except BaseException:
            self._remove_private_dir()
            raise
        runner = DaskTaskRunner(address=self.address, client_kwargs={"security": self.security})
        runner.__enter__()
        self._runner = runner
        plugin = WarmRunnerPlugin(self.site.runner.mode, cwd=str(self.cwd), threads=self.site.resources.cpus)
        await anyio.to_thread.run_sync(lambda: runner.client.register_plugin(plugin))
        log.info("Dask cluster %s at %s (runner mode %s)", type(self._cluster).__name__, self.address, plugin)

    async def close(self) -> None:
        for handle in [h for h, f in self._futures.items() if not f.done()]:
            await self.cancel(handle)
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await anyio.to_thread.run_sync(lambda: runner.__exit__(None, None, None))
        if self._cluster is not None:
            cluster, self._cluster = self._cluster, None
            await anyio.to_thread.run_sync(cluster.close)
        self._remove_private_dir()

    def _remove_private_dir(self) -> None:
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)
            self._private_dir = None

    async def submit(self, run_dir: Path, resources: Resources) -> JobHandle:
        if self._runner is None:
            raise SchedulerError("the dask adapter is not started")
        client = self._runner.client
        extra: dict[str, Any] = {"resources": {"GPU": resources.gpus}} if resources.gpus else {}
        # agent.warm's function, not one of this module's: a worker imports the module of the function it runs,
        # and this one imports prefect-dask, and with it Prefect, which nothing on a worker needs.
        future = client.submit(
            run_runner,
            str(run_dir),
            resources.max_runtime_s,
            key=f"vqpu-runner-{run_dir.name}-{next(self._ids)}",
            pure=False,
            **extra,
        )
        handle = JobHandle(adapter=self.name, job_id=str(future.key), run_dir=run_dir)
        self._futures[handle] = future
        return handle

    async def observe_active(self) -> set[JobHandle]:
        return {h for h, f in self._futures.items() if not f.done()}

    async def query_terminal(self, handle: JobHandle) -> TerminalEvidence | None:
        future = self._futures.get(handle)
        if future is None:
            return TerminalEvidence(state=JobState.LOST, job_id=handle.job_id, reason="not a job of this agent")
        if not future.done():
            return None
        if future.cancelled():
            return TerminalEvidence(state=JobState.CANCELLED, job_id=handle.job_id, scheduler_state="cancelled")
        try:
            ran: dict[str, Any] = await anyio.to_thread.run_sync(future.result)
        except Exception as exc:  # the step never ran: the worker died, or the task could not be shipped
            return TerminalEvidence(
                state=JobState.FAILED, job_id=handle.job_id, scheduler_state="erred", reason=f"{exc!r}"[:1000]
            )
        if ran.get("timed_out"):  # the worker's kill timer stopped a child its own watchdog did not
            return TerminalEvidence(
                state=JobState.FAILED,
                exit_code=ran.get("exit_code"),
                scheduler_state=TIMEOUT,
                node=ran.get("node"),
                worker=ran.get("worker"),
                job_id=ran.get("job_id") or handle.job_id,
                reason=f"killed past its wall-time limit of {ran.get('limit_s')} s",
                used_s=ran.get("used_s"),
            )
        killed = bool(ran.get("killed"))
        return TerminalEvidence(
            state=JobState.CANCELLED if killed else JobState.COMPLETED,
            exit_code=ran.get("exit_code"),
            scheduler_state="killed" if killed else "finished",
            node=ran.get("node"),
            worker=ran.get("worker"),
            job_id=ran.get("job_id") or handle.job_id,
            reason=f"signal {ran['signal']}" if ran.get("signal") else None,
        )

    async def wait(self, handle: JobHandle, poll_s: float = 0.02, max_poll_s: float = 0.5) -> TerminalEvidence:
        """Woken by the future itself (Dask calls back when the step ends), not by a poll: a step that ends just
        after a look would otherwise wait for the next one (the base class's backoff, up to 0.5 s)."""
        future = self._futures.get(handle)
        if future is not None and not future.done():
            ended = anyio.Event()
            token = anyio.lowlevel.current_token()

            def wake(_: Any) -> None:  # on Dask's callback thread
                with contextlib.suppress(RuntimeError):  # the agent's event loop is gone: nobody waits any more
                    anyio.from_thread.run_sync(ended.set, token=token)

            future.add_done_callback(wake)
            await ended.wait()
        return await super().wait(handle, poll_s, max_poll_s)  # the step has ended: the first look finds it

    async def cancel(self, handle: JobHandle) -> None:
        future = self._futures.get(handle)
        if future is None or future.done() or self._runner is None:
            return
        client = self._runner.client
        run_dir = str(handle.run_dir)
        # Dask cannot stop a step already on a worker (its thread runs on), so the runner child is killed
        # wherever it runs; a worker whose step has not started yet remembers the kill and starts nothing.
        killed = await anyio.to_thread.run_sync(lambda: client.run(kill_runner, run_dir))
        if not any(killed.values()):  # still waiting for a worker, or on its way to one: drop it
            await anyio.to_thread.run_sync(lambda: client.cancel(future, force=True))
        # The killed step returns on its worker a moment later: wait for it, so that the job has ended (its
        # terminal evidence is there) when cancel returns, as the scheduler boundary promises.
        with anyio.move_on_after(CANCEL_SETTLE_S):
            while not future.done():
                await anyio.sleep(0.01)

    async def placement(self, handle: JobHandle) -> Placement | None:
        future = self._futures.get(handle)
        if future is None or self._runner is None:
            return None
        if future.done():
            return Placement(job_id=handle.job_id)
        key = future.key
        client = self._runner.client

        def where(dask_scheduler: Any) -> str | None:
            ts = dask_scheduler.tasks.get(key)
            return ts.processing_on.address if ts is not None and ts.processing_on is not None else None

        worker = await anyio.to_thread.run_sync(lambda: client.run_on_scheduler(where))
        if worker is None:
            return None
        if worker not in self._hosts:  # the node's own name, as the runner will record it
            workers = await anyio.to_thread.run_sync(lambda: client.scheduler_info(n_workers=-1).get("workers", {}))
            names = await anyio.to_thread.run_sync(lambda: client.run(socket.gethostname, workers=[worker]))
            self._hosts[worker] = (names.get(worker), workers.get(worker, {}).get("name"))
        node, name = self._hosts[worker]
        return Placement(job_id=self._batch_job_of(name) or handle.job_id, node=node, worker=worker)

    def _batch_job_of(self, worker_name: Any) -> str | None:
        """The batch job (Slurm/PBS id) a dask-jobqueue worker runs in; None on a LocalCluster."""
        jobs = getattr(self._cluster, "workers", {})
        for name, job in jobs.items():
            if worker_name is not None and str(worker_name).startswith(str(name)):
                job_id = getattr(job, "job_id", None)
                return str(job_id) if job_id else None
        return None
