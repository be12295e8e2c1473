"""The operators' view (agent.view) on a real Prefect server: what it shows of an attempt, how it waits while
Prefect is away and catches up, what an agent back from a crash settles, and what the reconciler does with
the actions Prefect's UI offers that the control plane owns (Retry on a finished run, Pause on a running one)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import StateType
from prefect.states import Paused, Scheduled

from agent.claims import Claim
from agent.control_plane import ControlPlane
from agent.execution import Ending, Execution, Phase
from agent.prefect_bridge import PrefectBridge
from agent.scheduler.base import Resources
from agent.scheduler.memory import MemoryScheduler
from agent.view import HOLD_S, VIEW_FILE, PrefectView
from harness.documents import TIMINGS, provenance
from vqpu_protocol.api.tasks import SchedulerEvidence
from vqpu_protocol.rundir import RESULT_FILE, ResultDocument, atomic_write

pytestmark = pytest.mark.timeout(240)


def result(task_id: str) -> ResultDocument:
    return ResultDocument.model_validate(
        {"counts": {"00": 7, "11": 3}, "shots": 10, "timings": TIMINGS, "provenance": provenance(task_id)}
    )


def attempt(run_root: Path, task_id: str, agent_id: str) -> Execution:
    run_dir = run_root / f"{task_id}.1"
    run_dir.mkdir(mode=0o700)
    claim = Claim(task_id, 1, f"tok-{task_id}", "line-16", agent_id)
    claim.save(run_dir)
    return Execution(claim, run_dir, ControlPlane("http://cp", "k", agent_id), MemoryScheduler(), Resources())


async def view_of(client: PrefectClient, run_root: Path) -> PrefectView:
    agent_id = f"it-{uuid.uuid4().hex[:8]}"
    bridge = PrefectBridge(client, f"pool-{agent_id}", "vqpu-execute", agent_id)
    await bridge.ensure_deployment({})
    return PrefectView(bridge, run_root, lambda t: f"http://cp/v1/tasks/{t}")


async def placed_attempt(
    client: PrefectClient, tg: anyio.abc.TaskGroup, run_root: Path, task_id: str, where: SchedulerEvidence
) -> tuple[PrefectView, Execution]:
    """A view whose loops run in `tg`, told of one attempt claimed and then placed `where`."""
    view = await view_of(client, run_root)
    ex = attempt(run_root, task_id, view.bridge.agent_id)
    view.claimed(ex)
    tg.start_soon(view.run)
    view.running(ex, where, datetime.now(UTC))
    return view, ex


async def until(check: Any, timeout_s: float = 30.0) -> None:
    with anyio.fail_after(timeout_s):
        while not await check():
            await anyio.sleep(0.05)


async def settled(view: PrefectView) -> bool:
    return view.status().behind == 0 and not view.mirrors


def test_an_attempt_shows_as_a_flow_run_with_its_runner_step_artifacts_and_the_control_planes_end(
    prefect_env: str, tmp_path: Path
) -> None:
    async def scenario() -> dict[str, Any]:
        async with get_client() as client, anyio.create_task_group() as tg:
            where = SchedulerEvidence(adapter="dask", job_id="17", node="node-3", state="RUNNING")
            view, ex = await placed_attempt(client, tg, tmp_path, "t-shown", where)
            await until(lambda: _has_step(client, view, ex))
            running = await client.read_flow_run(view.mirrors[("t-shown", 1)].flow_run_id)  # type: ignore[arg-type]
            ex.submitted_at = 1.0
            view.ended(
                ex, Ending(Phase.ENDED, "COMPLETED", "10 shots in 0.000 s", datetime.now(UTC), result("t-shown"))
            )
            await until(lambda: settled(view))
            run = await client.read_flow_run(running.id)
            steps = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
            )
            tg.cancel_scope.cancel()
        return {"running": running, "run": run, "steps": steps, "artifacts": artifacts}

    seen = asyncio.run(scenario())
    assert seen["running"].state_type is StateType.RUNNING
    run = seen["run"]
    assert run.state_type is StateType.COMPLETED and run.name == "vqpu-t-shown"
    assert run.idempotency_key == "vqpu-task:t-shown:1" and {"vqpu", "device:line-16"} <= set(run.tags)
    [step] = seen["steps"]
    assert step.state_type is StateType.COMPLETED and step.name == "runner-t-shown"
    assert step.task_key.startswith("run_runner")
    assert [a.key for a in seen["artifacts"]] == ["vqpu-t-shown-snapshot"]
    assert "node" in str(seen["artifacts"][0].data) and "11" not in str(seen["artifacts"][0].data).split("counts")[-1]
    assert json.loads((tmp_path / "t-shown.1" / VIEW_FILE).read_text())["state"] == "COMPLETED"


def test_a_task_that_ends_within_its_first_second_is_written_after_its_end_with_its_final_state_last(
    prefect_env: str, tmp_path: Path
) -> None:
    """A short task is first written at its end: its step's task run in its final state only, and the flow run's
    final state after the artifact, so whoever sees the run Completed finds the artifact there already."""

    async def scenario() -> dict[str, Any]:
        async with get_client() as client, anyio.create_task_group() as tg:
            where = SchedulerEvidence(adapter="dask", job_id="3", state="RUNNING")
            view, ex = await placed_attempt(client, tg, tmp_path, "t-short", where)
            await anyio.sleep(HOLD_S / 2)
            unwritten = view.mirrors[("t-short", 1)].flow_run_id is None
            ex.submitted_at = 1.0
            ended = datetime.now(UTC)
            view.ended(ex, Ending(Phase.ENDED, "COMPLETED", "10 shots in 0.000 s", ended, result("t-short")))
            await until(lambda: settled(view), timeout_s=10)
            shown_after_s = (datetime.now(UTC) - ended).total_seconds()
            record = json.loads((tmp_path / "t-short.1" / VIEW_FILE).read_text())
            run_id = uuid.UUID(record["flow_run_id"])
            states = await client.read_flow_run_states(run_id)
            [step] = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
            step_states = await client.read_task_run_states(step.id)
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
            )
            tg.cancel_scope.cancel()
        return locals()

    seen = asyncio.run(scenario())
    assert seen["unwritten"], "written to Prefect before the hold was over"
    assert [s.type for s in seen["states"]] == [StateType.RUNNING, StateType.COMPLETED]
    assert [s.type for s in seen["step_states"]] == [StateType.COMPLETED]
    [artifact] = seen["artifacts"]
    assert artifact.key == "vqpu-t-short-snapshot"
    assert artifact.created is not None and artifact.created <= seen["states"][-1].timestamp
    assert seen["shown_after_s"] < 5


async def _has_step(client: PrefectClient, view: PrefectView, ex: Execution) -> bool:
    mirror = view.mirrors.get((ex.task_id, ex.attempt))
    if mirror is None or mirror.flow_run_id is None:
        return False
    steps = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[mirror.flow_run_id])))
    return bool(steps)


def test_while_prefect_does_not_answer_the_view_falls_behind_and_says_how_far_then_catches_up(
    prefect_env: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="agent.view")

    async def scenario() -> dict[str, Any]:
        async with get_client() as client, anyio.create_task_group() as tg:
            view = await view_of(client, tmp_path)
            away = get_client(httpx_settings={"base_url": "http://127.0.0.1:9/api"})
            view.bridge.client = away  # a port nothing listens on: connection refused
            tg.start_soon(view.run)
            executions = [attempt(tmp_path, f"t-away-{i}", view.bridge.agent_id) for i in range(3)]
            for ex in executions:
                view.claimed(ex)
                view.ended(ex, Ending(Phase.ENDED, "FAILED", "RUNNER_CRASH: no result", datetime.now(UTC)))
            await anyio.sleep(2.5)
            behind = view.status()
            view.bridge.client = client  # Prefect is back
            await until(lambda: settled(view))
            states = [
                (await client.read_flow_runs(flow_run_filter=FlowRunFilter(name={"any_": [f"vqpu-{e.task_id}"]})))[0]
                for e in executions
            ]
            tg.cancel_scope.cancel()
        return {"behind": behind, "runs": states}

    seen = asyncio.run(scenario())
    assert seen["behind"].behind == 3 and seen["behind"].oldest_s >= 2.0 and not seen["behind"].reachable
    assert all(r.state_type is StateType.FAILED for r in seen["runs"])
    assert all("late: it happened at" in (r.state.message or "") for r in seen["runs"])  # backfilled, and says so
    said = [r.getMessage() for r in caplog.records if r.name == "agent.view"]
    assert sum("Prefect does not answer" in s for s in said) == 1  # once, not per request
    assert sum("view: caught up" in s for s in said) == 1


def test_an_agent_back_from_a_crash_settles_the_flow_run_of_an_attempt_it_had_reported(
    prefect_env: str, tmp_path: Path
) -> None:
    """Killed right after its COMPLETED report was taken: the note says so, the flow run never got its end."""

    async def scenario() -> Any:
        async with get_client() as client, anyio.create_task_group() as tg:
            view = await view_of(client, tmp_path)
            ex = attempt(tmp_path, "t-crash", view.bridge.agent_id)
            atomic_write(ex.run_dir / RESULT_FILE, result("t-crash").model_dump_json(by_alias=True).encode())
            ex.claim.save(ex.run_dir, ended="reported", state="COMPLETED")
            tg.start_soon(view.run)  # a fresh agent's view: it finds the note
            await until(lambda: _view_noted(ex.run_dir))
            [run] = await client.read_flow_runs(flow_run_filter=FlowRunFilter(name={"any_": ["vqpu-t-crash"]}))
            tg.cancel_scope.cancel()
            return run

    run = asyncio.run(scenario())
    assert run.state_type is StateType.COMPLETED and "while the agent was away" in (run.state.message or "")


async def _view_noted(run_dir: Path) -> bool:
    return (run_dir / VIEW_FILE).exists()


def test_retry_on_a_completed_run_and_pause_on_a_running_one_are_put_back_by_the_reconciler(
    prefect_env: str, tmp_path: Path
) -> None:
    async def scenario() -> dict[str, Any]:
        async with get_client() as client, anyio.create_task_group() as tg:
            view = await view_of(client, tmp_path)
            tg.start_soon(view._sync_loop)
            done = attempt(tmp_path, "t-done", view.bridge.agent_id)
            view.claimed(done)
            done.claim.save(done.run_dir, ended="reported", state="COMPLETED")
            view.ended(done, Ending(Phase.ENDED, "COMPLETED", "10 shots", datetime.now(UTC), result("t-done")))
            live = attempt(tmp_path, "t-live", view.bridge.agent_id)
            view.claimed(live)
            await until(lambda: _shown(view, live))
            await until(lambda: _view_noted(done.run_dir))
            [done_run] = await client.read_flow_runs(flow_run_filter=FlowRunFilter(name={"any_": ["vqpu-t-done"]}))
            live_id = view.mirrors[("t-live", 1)].flow_run_id
            assert live_id is not None
            # What the UI's buttons send: Retry sets AwaitingRetry (a Scheduled state), Pause a Paused one.
            await client.set_flow_run_state(
                done_run.id, Scheduled(name="AwaitingRetry", message="Retry from the UI"), force=True
            )
            await client.set_flow_run_state(live_id, Paused(timeout_seconds=3600), force=True)
            seen = {
                "repaired": await view.reconcile(),
                "done": await client.read_flow_run(done_run.id),
                "live": await client.read_flow_run(live_id),
            }
            tg.cancel_scope.cancel()
        return seen

    seen = asyncio.run(scenario())
    assert seen["repaired"] == 2
    assert seen["done"].state_type is StateType.COMPLETED and "cannot be retried" in seen["done"].state.message
    assert seen["live"].state_type is StateType.RUNNING and "cannot be paused" in seen["live"].state.message


async def _shown(view: PrefectView, ex: Execution) -> bool:
    mirror = view.mirrors.get((ex.task_id, ex.attempt))
    return mirror is not None and mirror.in_step


def test_an_old_ended_attempt_is_not_mirrored_again_at_start(prefect_env: str, tmp_path: Path) -> None:
    """A restart after an upgrade must not rewrite weeks of flow runs: only recent unsettled endings are adopted."""
    import os

    async def scenario() -> PrefectView:
        async with get_client() as client:
            view = await view_of(client, tmp_path)
            ex = attempt(tmp_path, "t-old", view.bridge.agent_id)
            ex.claim.save(ex.run_dir, ended="reported", state="FAILED")
            old = (datetime.now(UTC) - timedelta(days=3)).timestamp()
            os.utime(ex.run_dir / "claim.json", (old, old))
            await anyio.to_thread.run_sync(view._adopt_unsettled)
            return view

    assert asyncio.run(scenario()).mirrors == {}
