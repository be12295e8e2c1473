"""The QAOA flow of the main job (flows.qaoa.qaoa_maxcut, as scripts/demo.sh runs it after the fidelity
experiment), timed on a running stack, with where its time goes: its vQPU tasks on the control plane, and the
flow's own time between and around them (Prefect's task runs of `run_pubs`, the client's wait, COBYLA, the
compile, the artifacts)."""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.service_vs_sbatch.timeline import ts
from benchmarks.small_tasks.user import User
from harness.stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "benchmarks" / "calibration_fidelity" / "results.json"
"""The main job's last committed run: its QAOA evaluations, to check this run made the same ones."""


def reference() -> dict[str, Any] | None:
    try:
        qaoa: dict[str, Any] | None = json.loads(REFERENCE.read_text()).get("qaoa")
    except (OSError, ValueError):
        return None
    return qaoa


def run_qaoa(stack: LocalStack, user: User, out: Path) -> dict[str, Any]:
    with stack.as_flow_user():
        from flows.qaoa import qaoa_maxcut

        began_wall, began = time.time(), time.perf_counter()
        result = qaoa_maxcut(results_dir=str(out))
        wall = time.perf_counter() - began
        ended_wall = time.time()
    tasks = []
    for task_id in result.task_ids:
        task = user.task(task_id)
        timings = user.result(task_id)["timings"]
        tasks.append(
            {
                "task_id": task_id,
                "created": ts(task["created_at"]),
                "claimed": ts(task["claimed_at"]),
                "finished": ts(task["finished_at"]),
                "runner_total_s": timings["total_s"],
                "shots": task["shots"],
            }
        )
    tasks.sort(key=lambda t: t["created"])
    on_control_plane = sum(t["finished"] - t["created"] for t in tasks)
    between = sum(b["created"] - a["finished"] for a, b in itertools.pairwise(tasks))
    ref = reference()
    summary = asdict(result)
    history = summary.pop("history")
    return {
        "wall_s": wall,
        "evaluations": result.evaluations,
        "tasks": len(tasks),
        "result": summary,
        "history": history,
        "reference": None
        if ref is None
        else {
            "evaluations": ref["evaluations"],
            "gammas": ref["gammas"],
            "betas": ref["betas"],
            "same_evaluations": ref["evaluations"] == result.evaluations,
            "same_optimum": ref["gammas"] == result.gammas and ref["betas"] == result.betas,
        },
        "split_s": {
            "before_first_task": tasks[0]["created"] - began_wall,
            "tasks_on_control_plane": on_control_plane,
            "of_which_queued": sum(t["claimed"] - t["created"] for t in tasks),
            "of_which_runner": sum(t["runner_total_s"] for t in tasks),
            "between_tasks": between,
            "after_last_task": ended_wall - tasks[-1]["finished"],
        },
        "task_records": tasks,
    }
