"""What the agent asks of Prefect: its work pool and the `vqpu-execute` deployment, one Pending flow
run per claimed attempt (found again by its idempotency key), running it in this process, and the
runs an operator set Cancelling in the UI.

Prefect is the site operators' view: a flow run's name, tags and parameters hold the task id, attempt,
device and run directory, never the circuit, the owner or a user's tags. Who cancels from Prefect is an
operator (anyone who holds the site's Prefect credential), and is reported to the control plane as one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterIdempotencyKey,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.states import Cancelled, Completed, Failed, Pending

from agent.flow_engine import run_flow_here
from flows.execute import EXECUTION, FLOW_NAME, vqpu_execute
from vqpu_protocol.api.agent import MAX_ACTOR_CHARS

log = logging.getLogger("agent.prefect")

WORKER_TYPE = "vqpu"
ENTRYPOINT = "flows/execute.py:vqpu_execute"


class PrefectCredentialRefused(RuntimeError):
    """The Prefect server requires a credential the agent does not have (PREFECT_API_AUTH_STRING)."""


async def check_credential(client: PrefectClient) -> None:
    """Fail early, and plainly, when the Prefect server refuses this process's credential: Prefect's worker
    would otherwise end in a traceback from inside its setup."""
    try:
        await client.hello()
    except PrefectHTTPStatusError as exc:
        if exc.response.status_code != 401:
            raise
        raise _refused(client) from None


def _refused(client: PrefectClient) -> PrefectCredentialRefused:
    return PrefectCredentialRefused(
        f"the Prefect server at {client.api_url} refused the agent's credential (401): set "
        "PREFECT_API_AUTH_STRING to the server's PREFECT_SERVER_API_AUTH_STRING (docs/agent.md, Prefect)"
    )


def idempotency_key(task_id: str, attempt: int) -> str:
    return f"vqpu-task:{task_id}:{attempt}"


def flow_run_name(task_id: str) -> str:
    return f"vqpu-{task_id}"


def cancel_actor(run: FlowRun) -> str:
    """Who set this flow run Cancelling, as truthfully as Prefect can say: `prefect:flow-run/<id>`, then the
    Cancelling state's message in quotes when it has one. Prefect's server (basic auth) knows no person: every
    client sends the one site credential, and the server records no caller with a state. The UI and
    `prefect flow-run cancel` set no message; an automation sets `Cancelled by Automation <id>`; an API
    client sets whatever it likes. So the actor says which run was cancelled in Prefect and what its
    canceller wrote, never a user."""
    actor = f"prefect:flow-run/{run.id}"
    message = run.state.message if run.state is not None else None
    if message:
        printable = "".join(c if c.isprintable() else " " for c in message).strip()
        room = MAX_ACTOR_CHARS - len(actor) - 3
        if printable:
            actor += f' "{printable[:room]}"' if len(printable) <= room else f' "{printable[: room - 1]}…"'
    return actor


class PrefectBridge:
    """`include_counts`: each completed task's counts are published as an artifact (agent.artifacts); from the
    site's `prefect.artifacts_include_counts`, off by default."""

    def __init__(
        self, client: PrefectClient, work_pool: str, deployment: str, results_dir: Path, *, include_counts: bool = False
    ) -> None:
        self.client = client
        self.work_pool = work_pool
        self.deployment_name = deployment
        self.include_counts = include_counts
        self.deployment_id: UUID | None = None
        # The flow persists no result; naming where results would go keeps Prefect's engine from asking the
        # server for its default result storage on every run (a blocking request from inside the agent's event
        # loop, on a client it never closes).
        self.flow = vqpu_execute.with_options(result_storage=results_dir)

    async def ensure_deployment(self, base_job_template: dict[str, Any]) -> UUID:
        """The work pool (type `vqpu`) and the `vqpu-execute` deployment in it, created if missing."""
        try:
            pool = await self.client.read_work_pool(self.work_pool)
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code != 401:
                raise
            raise _refused(self.client) from None
        except ObjectNotFound:
            pool = await self.client.create_work_pool(
                WorkPoolCreate(name=self.work_pool, type=WORKER_TYPE, base_job_template=base_job_template)
            )
        if pool.type != WORKER_TYPE:
            raise RuntimeError(f"Prefect work pool {self.work_pool!r} has type {pool.type!r}, not {WORKER_TYPE!r}")
        flow_id = await self.client.create_flow_from_name(FLOW_NAME)
        self.deployment_id = await self.client.create_deployment(
            flow_id=flow_id,
            name=self.deployment_name,
            work_pool_name=self.work_pool,
            entrypoint=ENTRYPOINT,
            tags=["vqpu"],
            description="One claimed vQPU task. Runs are created and executed by the vqpu agent that claimed "
            "the task; starting one by hand does nothing.",
            enforce_parameter_schema=False,
            paused=False,
        )
        return self.deployment_id

    async def create_run(self, task_id: str, attempt: int, device: str, run_dir: str) -> FlowRun:
        """The attempt's flow run: Pending, so no pool poll picks it up. The same key gives the same run:
        a restarted agent finds the run of an attempt it had started and runs it again from Pending."""
        run = await self._create(task_id, attempt, device, run_dir)
        if run.state is not None and run.state.type is not StateType.PENDING:
            await self.client.set_flow_run_state(run.id, Pending(message="resumed by a restarted agent"), force=True)
            run = await self.client.read_flow_run(run.id)
        return run

    async def mirror_ended(self, task_id: str, attempt: int, state_name: str) -> None:
        """An attempt whose terminal report the control plane took while the agent died: its flow run (if it got
        one and it is not final) ends in the task's state, saying it was set after the agent restarted."""
        kinds: dict[str, Any] = {"COMPLETED": Completed, "FAILED": Failed, "CANCELLED": Cancelled}
        message = f"the task ended {state_name} on the control plane; set after the agent restarted"
        for run in await self._runs_of(task_id, attempt):
            if run.state is not None and not run.state.is_final():
                await self.client.set_flow_run_state(run.id, kinds[state_name](message=message), force=True)

    async def _runs_of(self, task_id: str, attempt: int) -> list[FlowRun]:
        return list(
            await self.client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    idempotency_key=FlowRunFilterIdempotencyKey(any_=[idempotency_key(task_id, attempt)])
                )
            )
        )

    async def mirror_fenced(self, task_id: str, attempt: int) -> None:
        """An attempt handed to another agent: its flow run (if it got one) ends Cancelled, as on the control plane
        the attempt did."""
        for run in await self._runs_of(task_id, attempt):
            if run.state is not None and not run.state.is_final():
                state: State[Any] = Cancelled(
                    message="the task was handed to another attempt while this agent was away"
                )
                await self.client.set_flow_run_state(run.id, state, force=True)

    async def _create(self, task_id: str, attempt: int, device: str, run_dir: str) -> FlowRun:
        assert self.deployment_id is not None, "ensure_deployment() first"
        return await self.client.create_flow_run_from_deployment(
            self.deployment_id,
            parameters={"task_id": task_id, "attempt": attempt, "device": device, "run_dir": run_dir},
            name=flow_run_name(task_id),
            tags=["vqpu", f"device:{device}"],
            idempotency_key=idempotency_key(task_id, attempt),
            state=Pending(),
        )

    async def execute(self, flow_run: FlowRun, execution: Any) -> State[Any]:
        """Run the flow run here and now, with the execution it drives in reach of the flow."""
        execution.include_counts = self.include_counts
        token = EXECUTION.set(execution)
        try:
            state = await run_flow_here(self.flow, flow_run)
        finally:
            EXECUTION.reset(token)
        return state

    async def cancelling(self, flow_run_ids: list[str]) -> dict[str, str]:
        """Which of these flow runs an operator set Cancelling (in the UI, with `prefect flow-run cancel`, an
        automation or the API), each with its actor (`cancel_actor`)."""
        if not flow_run_ids:
            return {}
        runs = await self.client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[UUID(i) for i in flow_run_ids]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.CANCELLING])),
            )
        )
        return {str(r.id): cancel_actor(r) for r in runs}
