"""The Prefect worker type `vqpu` (registered through the `prefect.collections` entry point).

It runs the agent's engine beside Prefect's own loops and starts nothing from Prefect's pool poll:
the only flow runs it executes are the ones it created for tasks it claimed. Start it with
`vqpu-agent start --site F` or `prefect worker start --pool vqpu --type vqpu` (then the site file
comes from VQPU_SITE). SIGTERM or Ctrl-C stops claiming and drains (engine.py); a second one
stops at once.
"""

from __future__ import annotations

import logging
import signal
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.abc
from prefect.client.schemas.objects import FlowRun
from prefect.workers.base import BaseJobConfiguration, BaseVariables, BaseWorker, BaseWorkerResult

from agent.bootstrap import AgentConfig, agent_config, running_engine
from agent.engine import Engine

log = logging.getLogger("agent")


class VQPUWorkerResult(BaseWorkerResult):
    pass


class VQPUWorker(BaseWorker[BaseJobConfiguration, BaseVariables, VQPUWorkerResult]):
    type = "vqpu"
    job_configuration = BaseJobConfiguration
    job_configuration_variables = BaseVariables
    _description = (
        "HPC-vQPU agent: claims tasks from a vQPU control plane and runs each as a flow run whose runner step "
        "executes on the site's Dask/Slurm cluster. It never runs flow runs it did not create."
    )
    _documentation_url = "https://github.com/hpc-vqpu/hpc-vqpu/blob/main/docs/operations.md"

    def __init__(self, *args: Any, agent_config: AgentConfig | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._agent_config = agent_config
        self.engine: Engine | None = None
        self._prefect_away = False

    async def sync_with_backend(self) -> None:
        """Prefect's worker heartbeat to its work pool. Prefect's loop gives up after a few failures in a row,
        and the worker stops with it: here Prefect being away stops nothing (the control plane is the truth and
        the work goes on; agent.view says when Prefect's view falls behind and when it catches up)."""
        try:
            await super().sync_with_backend()
        except Exception as exc:
            if not self._prefect_away:
                log.warning(
                    "Prefect's work-pool heartbeat failed (%s: %s); claiming and running go on", type(exc).__name__, exc
                )
            self._prefect_away = True
        else:
            if self._prefect_away:
                log.info("Prefect's work-pool heartbeat answered again")
            self._prefect_away = False

    async def setup(self) -> None:
        await super().setup()
        config = self._agent_config or agent_config(None, work_pool=self._work_pool_name)
        assert self._runs_task_group is not None
        self.engine = await self._exit_stack.enter_async_context(
            running_engine(config, self.client, self.get_default_base_job_template())
        )
        self._runs_task_group.start_soon(self.engine.run)
        log.info("agent %s serving %s with %d slot(s)", config.agent_id, config.url, config.site.slots)

    async def teardown(self, *exc_info: Any) -> None:
        # Shielded: a cancelled worker must still drain (running_engine shields releasing the cluster).
        if self.engine is not None:
            with anyio.CancelScope(shield=True):
                self.engine.stop()
                await self.engine.stopped.wait()
        await super().teardown(*exc_info)

    async def start(self, run_once: bool = False, with_healthcheck: bool = False, printer: Any = print) -> None:
        # dask-jobqueue sets a SIGINT handler when it is first imported (and only the main thread may):
        # import it now, before the agent installs its own handlers, so that it cannot replace them.
        import dask_jobqueue  # noqa: F401

        async with anyio.create_task_group() as tg:
            tg.start_soon(self._stop_on_signal, tg.cancel_scope)
            await super().start(run_once=run_once, with_healthcheck=with_healthcheck, printer=printer)
            tg.cancel_scope.cancel()

    async def _stop_on_signal(self, scope: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            draining = False
            async with anyio.create_task_group() as tg:
                async for signum in signals:
                    if self.engine is None or draining:
                        break  # not serving yet, or a second signal: stop at once
                    draining = True
                    log.info("%s: draining (send it again to stop at once)", signal.Signals(signum).name)
                    self.engine.stop()
                    tg.start_soon(self._cancel_when_drained, scope)
                tg.cancel_scope.cancel()
        scope.cancel()

    async def _cancel_when_drained(self, scope: anyio.CancelScope) -> None:
        assert self.engine is not None
        await self.engine.stopped.wait()
        scope.cancel()

    async def get_and_submit_flow_runs(self) -> list[FlowRun]:
        """Prefect's pool poll: this worker starts nothing from it (it runs only what it claimed)."""
        self._last_polled_time = datetime.now(UTC)
        return []

    async def run(
        self,
        flow_run: FlowRun,
        configuration: BaseJobConfiguration,
        task_status: anyio.abc.TaskStatus[int] | None = None,
    ) -> VQPUWorkerResult:
        raise RuntimeError("the vqpu worker runs only the flow runs of tasks it claimed from the control plane")
