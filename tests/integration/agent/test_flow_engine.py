"""The agent's flow engine (agent.flow_engine) on a real Prefect server: a deployment-backed flow run
executed in the agent's process ends in its flow's state without Prefect's suspension watch, which
starts a thread and an events websocket per run and blocks the caller's event loop while it does."""

from __future__ import annotations

import asyncio
import sys
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, State
from prefect.flow_engine import run_flow
from prefect.states import Pending

from agent.flow_engine import run_flow_here

pytestmark = pytest.mark.timeout(240)

SUSPENSION_MODULE = "prefect._flow_run_suspension"


async def add(a: int, b: int) -> int:
    await asyncio.sleep(0.05)
    return a + b


add_flow = flow(name="vqpu-engine-probe", persist_result=False, validate_parameters=False)(add)


@contextmanager
def threads_started() -> Iterator[list[str]]:
    """The modules of the functions that threads started in this block run: the first function each new
    thread calls outside `threading` (threading.settrace sees every thread as it starts)."""
    seen: list[str] = []

    def tracer(frame: FrameType, event: str, arg: Any) -> None:
        module = str(frame.f_globals.get("__name__"))
        if module != "threading":
            seen.append(module)
            sys.settrace(None)

    threading.settrace(tracer)  # type: ignore[arg-type]
    try:
        yield seen
    finally:
        threading.settrace(None)  # type: ignore[arg-type]


async def deployment_run(client: Any, deployment_id: uuid.UUID) -> FlowRun:
    run: FlowRun = await client.create_flow_run_from_deployment(
        deployment_id, parameters={"a": 2, "b": 3}, state=Pending(), idempotency_key=uuid.uuid4().hex
    )
    return run


def test_a_deployment_backed_run_completes_without_the_suspension_watch_that_prefects_engine_starts(
    prefect_env: str, tmp_path: Path
) -> None:
    # As the agent does: a result storage named, so neither engine asks the server for its default one.
    probe = add_flow.with_options(result_storage=tmp_path)

    async def scenario() -> dict[str, Any]:
        async with get_client() as client:
            flow_id = await client.create_flow_from_name("vqpu-engine-probe")
            deployment_id = await client.create_deployment(
                flow_id=flow_id, name=f"probe-{uuid.uuid4().hex[:8]}", entrypoint="tests:probe"
            )
            engines: dict[str, Callable[[FlowRun], Awaitable[State[Any]]]] = {
                "agent": lambda run: run_flow_here(probe, run),
                "prefect": lambda run: run_flow(probe, flow_run=run, return_type="state"),  # type: ignore[arg-type,return-value]
            }
            out: dict[str, Any] = {}
            for name, engine in engines.items():
                run = await deployment_run(client, deployment_id)
                with threads_started() as modules:
                    state = await engine(run)
                final = await client.read_flow_run(run.id)
                out[name] = (state, final, modules)
            return out

    runs = asyncio.run(scenario())
    for name, (_, _, modules) in runs.items():
        print(f"\n{name} engine: threads started in {modules}")

    state, final, modules = runs["agent"]
    assert state.is_completed() and asyncio.run(state.aresult()) == 5
    assert final.state is not None and final.state.is_completed()
    assert SUSPENSION_MODULE not in modules

    # Prefect's own engine, on the same kind of run, does start the watch: the probe above can see it.
    state, final, modules = runs["prefect"]
    assert state.is_completed() and final.state is not None and final.state.is_completed()
    assert SUSPENSION_MODULE in modules
