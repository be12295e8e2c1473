"""How the agent runs a flow run in its own process: Prefect's async flow engine, less the two parts it
has for a process that runs a single flow run (which is what Prefect's own workers start).

prefect is pinned (==3.8.8). If an upgrade undoes either adjustment, a test fails: a SIGTERM during a run
must drain it (tests/e2e/test_agent.py), and a run must start no suspension watch
(tests/integration/agent/test_flow_engine.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from typing import Any

import prefect.flow_engine
from prefect import Flow
from prefect._flow_run_suspension import FlowRunSuspensionRequest, register_flow_run_suspension_request
from prefect.client.schemas.objects import FlowRun, State
from prefect.flow_engine import AsyncFlowRunEngine


def keep_sigterm_for_the_agent() -> None:
    """Prefect's engine swaps in a process-wide SIGTERM handler for the length of every flow run (it raises
    inside whatever the event loop is doing) so that its runner can cancel a run in a child process. The
    agent runs many flow runs in its own process and owns SIGTERM itself: it stops claiming and drains."""
    prefect.flow_engine.capture_sigterm = contextlib.nullcontext  # type: ignore[attr-defined,assignment]


class AgentFlowRunEngine(AsyncFlowRunEngine[Any, Any]):
    """For a deployment-backed run, Prefect's engine starts a thread with an event loop of its own, opens an
    events websocket in it to watch for a Suspending state, and blocks the calling event loop until it is
    subscribed; at the end it blocks again joining that thread (up to 0.2 s). In the agent that blocks every
    claim, heartbeat and other flow run of the process, twice per task. A vqpu-execute run cannot be
    suspended (the control plane owns the task; cancel is the only operator action, watched by the
    agent's engine), so the watch is left out and only the in-process request Prefect keeps is registered."""

    @contextlib.contextmanager
    def setup_flow_run_suspension_request(self) -> Generator[FlowRunSuspensionRequest, None, None]:
        if not self.flow_run:
            raise ValueError("Flow run not set")
        request = self._get_flow_run_suspension_request()
        with register_flow_run_suspension_request(self.flow_run.id, request):
            request.raise_if_requested()
            yield request


async def run_flow_here(flow: Flow[Any, Any], flow_run: FlowRun) -> State[Any]:
    """`prefect.flow_engine.run_flow_async` for an async flow and a run that carries its parameters, on the
    agent's engine; returns the final state."""
    engine = AgentFlowRunEngine(flow=flow, parameters=dict(flow_run.parameters), flow_run=flow_run)
    async with engine.start():
        while engine.is_running():
            async with engine.run_context():
                await engine.call_flow_fn()  # type: ignore[unused-coroutine]  # typed as returning a coroutine; it returns the result
    state: State[Any] = engine.state
    return state
