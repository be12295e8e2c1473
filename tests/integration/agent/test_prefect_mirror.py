"""What an agent back from a crash writes into Prefect for its claims (issue 20), on a real Prefect server:
a flow run whose task its own attempt ended gets the control plane's terminal state, saying it was set after
the restart; a run already at rest is left as it is."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.states import Completed, Pending, Running

from agent.prefect_bridge import PrefectBridge, idempotency_key

pytestmark = pytest.mark.timeout(240)


def test_an_ended_tasks_flow_run_gets_the_control_planes_state_and_a_run_at_rest_is_left(
    prefect_env: str, tmp_path: Path
) -> None:
    async def scenario() -> dict[str, Any]:
        async with get_client() as client:
            flow_id = await client.create_flow_from_name("vqpu-execute")
            deployment = await client.create_deployment(flow_id=flow_id, name=f"mirror-{uuid.uuid4().hex[:8]}")
            runs = {}
            for task_id in ("t-running", "t-failed", "t-at-rest"):
                run = await client.create_flow_run_from_deployment(
                    deployment, state=Pending(), idempotency_key=idempotency_key(task_id, 1)
                )
                await client.set_flow_run_state(run.id, Running(), force=True)
                runs[task_id] = run.id
            await client.set_flow_run_state(runs["t-at-rest"], Completed(message="ran"), force=True)
            bridge = PrefectBridge(client, "pool", "vqpu-execute", tmp_path)
            await bridge.mirror_ended("t-running", 1, "COMPLETED")
            await bridge.mirror_ended("t-failed", 1, "FAILED")
            await bridge.mirror_ended("t-at-rest", 1, "CANCELLED")
            return {task_id: (await client.read_flow_run(run_id)).state for task_id, run_id in runs.items()}

    states = asyncio.run(scenario())
    assert states["t-running"].type is StateType.COMPLETED
    assert states["t-failed"].type is StateType.FAILED
    assert "after the agent restarted" in (states["t-running"].message or "")
    assert states["t-at-rest"].type is StateType.COMPLETED and states["t-at-rest"].message == "ran"
