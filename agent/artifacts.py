"""The artifacts a completed task's flow run carries: its counts, and what it ran against."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact

from vqpu_protocol.rundir import Provenance, ResultDocument

if TYPE_CHECKING:
    from agent.execution import Execution

MAX_TABLE_ROWS = 64


def artifact_key(task_id: str, what: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    safe = "".join(c if c.isalnum() else "-" for c in task_id.lower())
    return f"vqpu-{safe}-{what}"[:100]


async def publish_artifacts(execution: Execution, result: ResultDocument) -> None:
    task_id = execution.task_id
    rows = sorted(result.counts.items(), key=lambda kv: (-kv[1], kv[0]))
    table = [
        {"bitstring": bits, "count": n, "probability": round(n / result.shots, 6)} for bits, n in rows[:MAX_TABLE_ROWS]
    ]
    shown = "" if len(rows) <= MAX_TABLE_ROWS else f" (the {MAX_TABLE_ROWS} most frequent of {len(rows)})"
    await acreate_table_artifact(
        table=table, key=artifact_key(task_id, "counts"), description=f"counts of task {task_id}{shown}"
    )
    p = result.provenance
    lines = [
        f"### vQPU task [{task_id}]({execution.control_plane.task_url(task_id)})",
        "",
        "| | |",
        "|---|---|",
        f"| device | `{p.device_id}` |",
        f"| epoch | {p.epoch} |",
        f"| snapshot sha256 | `{p.snapshot_sha256}` |",
        f"| noise model | {noise_summary(p)} |",
        f"| attempt | {p.attempt} |",
        f"| shots | {result.shots} |",
        f"| seed | {p.seed} ({p.seed_source}) |",
        f"| method | {p.method} on {p.device} |",
        f"| node | {p.hostname} |",
        f"| scheduler job | {p.scheduler_job_id or '-'} |",
        f"| runner time | {result.timings.total_s:.3f} s |",
    ]
    await acreate_markdown_artifact(
        markdown="\n".join(lines), key=artifact_key(task_id, "snapshot"), description="what the task ran against"
    )


def noise_summary(p: Provenance) -> str:
    """The noise model, what the task's noise options changed, and whether any noise was left."""
    changes = [f"{kind} scaled {factor:g}" for kind, factor in sorted(p.noise.scale.items())]
    changes += [f"{kind} off" for kind in p.noise.disable]
    said = str(p.noise_model) + (f" ({', '.join(changes)})" if changes else "")
    if p.noise_empty:
        return said + ": no noise applied, the run was ideal"
    return said + ("" if p.noise_channels is None else f": {p.noise_channels} error channels")
