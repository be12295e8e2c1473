"""What the agent asks of Prefect, and nothing else: its work pool and the `vqpu-execute` deployment, one flow
run per claimed attempt (found again by its idempotency key), that run's states, the runner step's task run
and the artifacts, and the runs an operator set Cancelling or otherwise moved in the UI.

Every call may fail while Prefect is away; agent.view decides when to call and what to do about a failure.
Prefect is the site operators' view: a flow run's name, tags and parameters hold the task id, attempt,
device, run directory and agent id, never the circuit, the owner or a user's tags. Who cancels from Prefect
is an operator (anyone who holds the site's Prefect credential), and is reported to the control plane as one.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any
from uuid import UUID

import httpx
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import ArtifactCreate, WorkPoolCreate
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterIdempotencyKey,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun, State, StateType, TaskRun
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

from agent.artifacts import artifact_key, counts_description, counts_table, summary_markdown
from agent.flow import ENTRYPOINT, FLOW_NAME, runner_step
from vqpu_protocol.api.agent import MAX_ACTOR_CHARS
from vqpu_protocol.rundir import ResultDocument

log = logging.getLogger("agent.prefect")

WORKER_TYPE = "vqpu"
NOT_FINAL = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED, StateType.CANCELLING]
TASK_RUN_IDS = uuid.UUID("5d1c6a0e-2f57-4a43-9e0b-6f2b1a3c9d41")
"""The namespace of the runner step's task-run ids: one id per attempt, so that creating it again after a
restart finds the same task run."""


class PrefectCredentialRefused(RuntimeError):
    """The Prefect server requires a credential the agent does not have (PREFECT_API_AUTH_STRING)."""


async def check_credential(client: PrefectClient) -> None:
    """Fail early, and plainly, when the Prefect server refuses this process's credential: Prefect's worker
    would otherwise end in a traceback from inside its setup. A server that does not answer is no reason not
    to start (the work does not wait for its view): that is logged, and the view catches up later."""
    try:
        await client.hello()
    except PrefectHTTPStatusError as exc:
        if exc.response.status_code == 401:
            raise _refused(client) from None
        if not unavailable(exc):
            raise
        log.warning("Prefect at %s answers %s; starting anyway", client.api_url, exc.response.status_code)
    except Exception as exc:
        if not unavailable(exc):
            raise
        log.warning(
            "Prefect at %s does not answer (%s); starting anyway: its view catches up later", client.api_url, exc
        )


def away(exc: BaseException) -> bool:
    """Prefect could not be reached at all (no connection, no answer)."""
    return isinstance(exc, httpx.TransportError | OSError | TimeoutError)


def unavailable(exc: BaseException) -> bool:
    """Prefect is away or overloaded (as opposed to refusing what was asked)."""
    if away(exc):
        return True
    return isinstance(exc, PrefectHTTPStatusError) and exc.response.status_code in (408, 429, 500, 502, 503, 504)


def _refused(client: PrefectClient) -> PrefectCredentialRefused:
    return PrefectCredentialRefused(
        f"the Prefect server at {client.api_url} refused the agent's credential (401): set "
        "PREFECT_API_AUTH_STRING to the server's PREFECT_SERVER_API_AUTH_STRING (docs/agent.md, Prefect)"
    )


def idempotency_key(task_id: str, attempt: int) -> str:
    return f"vqpu-task:{task_id}:{attempt}"


def flow_run_name(task_id: str) -> str:
    return f"vqpu-{task_id}"


def agent_tag(agent_id: str) -> str:
    return f"agent:{agent_id}"


def task_run_id(task_id: str, attempt: int) -> UUID:
    return uuid.uuid5(TASK_RUN_IDS, idempotency_key(task_id, attempt))


def attempt_of(run: FlowRun) -> tuple[str, int] | None:
    """The task and attempt a `vqpu-execute` flow run mirrors, from its idempotency key; None for a run the
    agent did not create (one started by hand from the deployment)."""
    key = run.idempotency_key or ""
    prefix, _, rest = key.partition(":")
    task_id, _, attempt = rest.rpartition(":")
    if prefix != "vqpu-task" or not task_id or not attempt.isdigit():
        return None
    return task_id, int(attempt)


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
        self, client: PrefectClient, work_pool: str, deployment: str, agent_id: str, *, include_counts: bool = False
    ) -> None:
        self.client = client
        self.work_pool = work_pool
        self.deployment_name = deployment
        self.agent_id = agent_id
        self.include_counts = include_counts
        self.deployment_id: UUID | None = None
        self.base_job_template: dict[str, Any] = {}

    async def ensure_deployment(self, base_job_template: dict[str, Any] | None = None) -> UUID:
        """The work pool (type `vqpu`) and the `vqpu-execute` deployment in it, created if missing."""
        if base_job_template is not None:
            self.base_job_template = base_job_template
        try:
            pool = await self.client.read_work_pool(self.work_pool)
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code != 401:
                raise
            raise _refused(self.client) from None
        except ObjectNotFound:
            pool = await self.client.create_work_pool(
                WorkPoolCreate(name=self.work_pool, type=WORKER_TYPE, base_job_template=self.base_job_template)
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
            description="One claimed vQPU task, as the agent that claimed it ran it. The agent creates these runs and "
            "brings them to the task's state on the control plane; starting one by hand does nothing.",
            enforce_parameter_schema=False,
            paused=False,
        )
        return self.deployment_id

    async def create_run(self, task_id: str, attempt: int, device: str, run_dir: str, state: State[Any]) -> FlowRun:
        """The attempt's flow run, created in `state` (Running, or the attempt's final state: never Scheduled, so
        no pool poll picks it up). The same key gives the same run, in whatever state it has."""
        assert self.deployment_id is not None, "ensure_deployment() first"
        return await self.client.create_flow_run_from_deployment(
            self.deployment_id,
            parameters={"task_id": task_id, "attempt": attempt, "device": device, "run_dir": run_dir},
            name=flow_run_name(task_id),
            tags=["vqpu", f"device:{device}", agent_tag(self.agent_id)],
            idempotency_key=idempotency_key(task_id, attempt),
            state=state,
        )

    async def read_run(self, run_id: UUID) -> FlowRun:
        return await self.client.read_flow_run(run_id)

    async def set_run_state(self, run_id: UUID, state: State[Any]) -> None:
        """Forced: the control plane decided; Prefect's orchestration rules have no say in it."""
        await self.client.set_flow_run_state(run_id, state, force=True)

    async def create_step(self, flow_run_id: UUID, task_id: str, attempt: int, state: State[Any]) -> TaskRun:
        """The runner step's task run in the attempt's flow run (the same id again after a restart)."""
        return await self.client.create_task_run(
            runner_step,
            flow_run_id=flow_run_id,
            dynamic_key=str(attempt),
            id=task_run_id(task_id, attempt),
            name=f"runner-{task_id}",
            state=state,
        )

    async def set_step_state(self, step_id: UUID, state: State[Any]) -> None:
        await self.client.set_task_run_state(step_id, state, force=True)

    async def publish_artifacts(
        self, flow_run_id: UUID, step_id: UUID | None, task_id: str, task_url: str, result: ResultDocument
    ) -> None:
        """The summary (key `vqpu-<task>-snapshot`), and the counts table (`vqpu-<task>-counts`) with
        `include_counts`."""
        if self.include_counts:
            await self.client.create_artifact(
                ArtifactCreate(
                    key=artifact_key(task_id, "counts"),
                    type="table",
                    data=json.dumps(counts_table(result)),
                    description=counts_description(result),
                    flow_run_id=flow_run_id,
                    task_run_id=step_id,
                )
            )
        await self.client.create_artifact(
            ArtifactCreate(
                key=artifact_key(task_id, "snapshot"),
                type="markdown",
                data=summary_markdown(task_id, task_url, result, counts=self.include_counts),
                description="what the task ran against, where, and how long it took",
                flow_run_id=flow_run_id,
                task_run_id=step_id,
            )
        )

    async def cancelling(self, flow_run_ids: list[UUID]) -> dict[UUID, str]:
        """Which of these flow runs an operator set Cancelling (in the UI, with `prefect flow-run cancel`, an
        automation or the API), each with its actor (`cancel_actor`)."""
        if not flow_run_ids:
            return {}
        runs = await self.client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=flow_run_ids),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.CANCELLING])),
            )
        )
        return {r.id: cancel_actor(r) for r in runs}

    async def unsettled_runs(self, limit: int = 200) -> list[FlowRun]:
        """This agent's `vqpu-execute` flow runs that are not in a final state (Running, Pending, Scheduled after
        a Retry, Paused, Cancelling), oldest first."""
        return list(
            await self.client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    tags=FlowRunFilterTags(all_=[agent_tag(self.agent_id)]),
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=NOT_FINAL)),
                ),
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[self.deployment_name])),
                limit=limit,
            )
        )

    async def runs_of(self, task_id: str, attempt: int) -> list[FlowRun]:
        return list(
            await self.client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    idempotency_key=FlowRunFilterIdempotencyKey(any_=[idempotency_key(task_id, attempt)])
                )
            )
        )
