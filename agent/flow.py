"""`vqpu-execute`: the flow whose runs are the operators' view of claimed tasks, and the runner step's task.

The agent creates one run of the `vqpu-execute` deployment per claimed attempt (Pending, so no pool poll
starts it) and brings it, from outside, to what the control plane and the runner say (agent.view): it
never executes the flow. A run started anywhere else (`prefect deployment run`, the UI) is never picked up
by a `vqpu` worker; if some other process executes it, it fails without touching any task.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.states import Failed

from agent.warm import run_runner

FLOW_NAME = "vqpu-execute"
ENTRYPOINT = "agent/flow.py:vqpu_execute"


async def execute_claimed_task(task_id: str, attempt: int, device: str, run_dir: str) -> State[Any]:
    """What a run of the deployment started by hand does: nothing but say so."""
    return Failed(
        message=f"task {task_id} attempt {attempt} is run by the agent that claimed it, which writes this flow "
        "run's states from outside; a vqpu-execute run started by hand does nothing"
    )


vqpu_execute = flow(name=FLOW_NAME, persist_result=False, log_prints=False, validate_parameters=False)(
    execute_claimed_task
)

runner_step = task(name="runner", persist_result=False, cache_policy=NO_CACHE, log_prints=False)(run_runner)
"""The runner step as Prefect names it: its task runs (one per attempt, agent.prefect_bridge.create_step) are
recorded by the agent from what the scheduler saw; the step itself runs on the scheduler, not in Prefect."""
