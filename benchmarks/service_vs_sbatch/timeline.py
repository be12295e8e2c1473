"""One service task's time line, read from the three places that record it, and split into spans.

- the control plane: the task's timestamps and events (TASK_SUBMITTED, TASK_CLAIMED, TASK_SCHEDULED for the
  RUNNING report, TASK_COMPLETED), each stamped when the control plane stored it;
- the run directory: `task.json` (written by the agent once the claim reached it) and `result.json` (its
  mtime, less the runner's own `timings.total_s`, is when the runner started);
- Prefect, the operators' view (agent.view): the flow run `vqpu-<task>` with its states and the runner step's
  task run, each stamped when Prefect received it. Since the agent stopped running tasks through Prefect's
  engine (commit 211b962) these lie beside the work, not on its path: the view's lag is its own row.

All clocks are this machine's: the stack runs here.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.prefect_server import PrefectServerProcess, prefect_api
from vqpu_protocol.rundir import RESULT_FILE, TASK_FILE

VIEW_FILE = "view.json"
"""agent.view writes it into a run directory once Prefect shows the attempt's end (not imported: agent.view
imports Prefect)."""

SEGMENTS = {
    "submit_http": "submit: client -> task stored (POST /v1/tasks)",
    "dispatch": "dispatch: stored -> claimed (the agent's CLAIM long-poll answered)",
    "claim_to_run_dir": "claim reaches the agent -> run directory written (task.json)",
    "run_dir_to_runner_start": "runner step: submitted to Dask -> runner child starts (Dask dispatch + fork)",
    "runner_total": "**runner** (its own `timings.total_s`)",
    "result_to_completed_report": "result.json written -> COMPLETED report stored (the agent notices, reports)",
    "completed_to_in_hand": "client notices COMPLETED and has the result (GET .../result)",
}
"""On the user's path, in order: they add up to the end-to-end time."""

DETAILS = {
    "claim_to_running_report": "claim -> RUNNING report stored (beside the runner)",
    "claim_to_completed": "claim -> COMPLETED report stored (the agent's whole part, runner included)",
    "view_claim_to_flow_run_created": "view: claim -> flow run created in Prefect",
    "view_claim_to_flow_run_running": "view: claim -> flow run Running (- when none: written after its end)",
    "view_lag": "**view's lag**: COMPLETED report -> flow run Completed in Prefect",
}
"""Beside the path (the view), or parts of it."""


def ts(value: Any) -> float | None:
    """Seconds since the epoch of an ISO time string or a datetime (None stays None)."""
    if value is None or isinstance(value, float):
        return value
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    stamp: float = value.timestamp()
    return stamp


def span(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


async def _read_flow_runs(names: list[str]) -> dict[str, dict[str, Any]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterName

    out: dict[str, dict[str, Any]] = {}
    async with get_client() as client:
        for i in range(0, len(names), 100):
            chunk = names[i : i + 100]
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=chunk)), limit=len(chunk)
            )
            for run in runs:
                states = await client.read_flow_run_states(run.id)
                steps = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
                out[run.name] = {
                    "id": str(run.id),
                    "state": run.state_type.value if run.state_type else None,
                    "created": ts(run.created),
                    "states": [
                        {"type": s.type.value, "name": s.name, "time": ts(s.timestamp)}
                        for s in sorted(states, key=lambda s: s.timestamp)
                    ],
                    "task_runs": [
                        {"name": t.name, "created": ts(t.created), "start": ts(t.start_time), "end": ts(t.end_time)}
                        for t in steps
                    ],
                }
    return out


def read_flow_runs(server: PrefectServerProcess, task_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The flow runs `vqpu-<task>` of these tasks, by task id (a task the view never showed is absent)."""
    with prefect_api(server):
        runs = asyncio.run(_read_flow_runs([f"vqpu-{t}" for t in task_ids]))
    return {name.removeprefix("vqpu-"): run for name, run in runs.items()}


def wait_view_settled(run_root: Path, task_ids: list[str], timeout_s: float = 120.0) -> float | None:
    """Wait until the view has shown every one of these tasks' ends (its `view.json` in each run directory, attempt
    1); how long that took, or None if some were still not shown after `timeout_s`."""
    began = time.monotonic()
    pending = set(task_ids)
    while pending:
        pending = {t for t in pending if not (run_root / f"{t}.1" / VIEW_FILE).exists()}
        if not pending:
            break
        if time.monotonic() - began > timeout_s:
            return None
        time.sleep(0.05)
    return time.monotonic() - began


def _state_time(flow: dict[str, Any], kind: str) -> float | None:
    return next((s["time"] for s in flow.get("states", []) if s["type"] == kind), None)


def timeline(
    task: dict[str, Any],
    events: list[dict[str, Any]],
    run_dir: Path,
    flow: dict[str, Any] | None,
    *,
    submit_wall: float,
    in_hand_wall: float,
) -> dict[str, Any]:
    """The task's marks (wall times), its spans on the user's path (`segments`) and beside it (`details`)."""
    first: dict[str, float] = {}
    for e in events:
        first.setdefault(e["type"], ts(e["time"]) or 0.0)
    marks: dict[str, float | None] = {
        "submit": submit_wall,
        "stored": first.get("TASK_SUBMITTED", ts(task["created_at"])),
        "claimed": first.get("TASK_CLAIMED", ts(task["claimed_at"])),
        "running_reported": first.get("TASK_SCHEDULED"),
        "completed": first.get("TASK_COMPLETED", ts(task["finished_at"])),
        "in_hand": in_hand_wall,
    }
    runner_total, timings = None, None
    if (run_dir / TASK_FILE).exists():
        marks["run_dir_written"] = (run_dir / TASK_FILE).stat().st_mtime
    if (run_dir / RESULT_FILE).exists():
        timings = json.loads((run_dir / RESULT_FILE).read_text())["timings"]
        runner_total = timings["total_s"]
        marks["result_written"] = (run_dir / RESULT_FILE).stat().st_mtime
        marks["runner_start"] = marks["result_written"] - runner_total
    flow = flow or {}
    marks["flow_run_created"] = flow.get("created")
    marks["flow_run_running"] = _state_time(flow, "RUNNING")
    marks["flow_run_final"] = _state_time(flow, "COMPLETED") or _state_time(flow, "FAILED")
    m = marks.get
    segments = {
        "submit_http": span(m("submit"), m("stored")),
        "dispatch": span(m("stored"), m("claimed")),
        "claim_to_run_dir": span(m("claimed"), m("run_dir_written")),
        "run_dir_to_runner_start": span(m("run_dir_written"), m("runner_start")),
        "runner_total": runner_total,
        "result_to_completed_report": span(m("result_written"), m("completed")),
        "completed_to_in_hand": span(m("completed"), m("in_hand")),
    }
    details = {
        "claim_to_running_report": span(m("claimed"), m("running_reported")),
        "claim_to_completed": span(m("claimed"), m("completed")),
        "view_claim_to_flow_run_created": span(m("claimed"), m("flow_run_created")),
        "view_claim_to_flow_run_running": span(m("claimed"), m("flow_run_running")),
        "view_lag": span(m("completed"), m("flow_run_final")),
    }
    claim_to_completed = details["claim_to_completed"]
    return {
        "marks": marks,
        "segments": segments,
        "details": details,
        "agent_overhead_s": None
        if claim_to_completed is None or runner_total is None
        else claim_to_completed - runner_total,
        "flow_run_state": flow.get("state"),
        "runner_timings": timings,
    }
