"""`vqpu-execute`: the agent-side flow of one claimed task.

The agent creates each run from the `vqpu-execute` deployment (Pending, so no pool poll starts it)
and runs it at once in its own process; the flow finds the agent's live execution of the task in a
context variable the agent sets. A run started anywhere else (a pool poll, `prefect deployment
run`) finds none and fails without touching the task: only the agent that claimed a task runs it.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.states import Failed

if TYPE_CHECKING:
    from agent.execution import Execution

FLOW_NAME = "vqpu-execute"
EXECUTION: ContextVar[Execution] = ContextVar("vqpu_execution")


async def execute_claimed_task(task_id: str, attempt: int, device: str, run_dir: str) -> State[Any]:
    """Run one claimed vQPU task: report RUNNING, run the runner step, report its one outcome."""
    execution = EXECUTION.get(None)
    if execution is None or (execution.task_id, execution.attempt) != (task_id, attempt):
        return Failed(
            message=f"task {task_id} attempt {attempt} is not claimed by an agent in this process: "
            "vqpu-execute runs only inside the agent that claimed the task"
        )
    return await execution.drive()


# Wrapped rather than decorated, so the function stays importable under its own name: prefect-dask
# ships the flow run's context (which holds the flow) to the Dask workers, and a function that
# pickles by reference does not drag this module's globals (the context variable) along.
vqpu_execute = flow(name=FLOW_NAME, persist_result=False, log_prints=False, validate_parameters=False)(
    execute_claimed_task
)
