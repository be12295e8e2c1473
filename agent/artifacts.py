"""The artifacts a completed task's flow run carries in Prefect, the site operators' view: a summary of what
ran, where and how long (no results), and the counts only where the site opts in.

Counts are a tenant's results. Everyone who holds the site's Prefect credential reads every artifact, so
by default they stay on the control plane, where only the task's owner (and its admins) can read them;
a site whose Prefect operators may see results sets `prefect.artifacts_include_counts: true`.
"""

from __future__ import annotations

from agent.execution import ran
from vqpu_protocol.pubs import EstimatorPubResults
from vqpu_protocol.rundir import Provenance, ResultDocument

MAX_TABLE_ROWS = 64
COUNTS_WITHHELD = "on the control plane only (this site publishes no counts to Prefect)"


def artifact_key(task_id: str, what: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    safe = "".join(c if c.isalnum() else "-" for c in task_id.lower())
    return f"vqpu-{safe}-{what}"[:100]


def summary_markdown(task_id: str, task_url: str, result: ResultDocument, *, counts: bool) -> str:
    """What an operator needs to see of a completed task: no counts, no memory, nothing of the circuit."""
    p = result.provenance
    lines = [
        f"### vQPU task [{task_id}]({task_url})",
        "",
        "| | |",
        "|---|---|",
        "| state | COMPLETED |",
        f"| device | `{p.device_id}` |",
        f"| epoch | {p.epoch} |",
        f"| snapshot sha256 | `{p.snapshot_sha256}` |",
        f"| noise model | {noise_summary(p)} |",
        f"| attempt | {p.attempt} |",
        f"| shots | {result.shots} |",
        *([f"| PUBs | {ran(result)} |"] if result.pubs is not None else []),
        f"| seed | {p.seed} ({p.seed_source}) |",
        f"| method | {p.method} on {p.device} |",
        f"| node | {p.hostname} |",
        f"| scheduler job | {p.scheduler_job_id or '-'} |",
        f"| runner time | {result.timings.total_s:.3f} s |",
        f"| counts | {'the counts artifact' if counts else COUNTS_WITHHELD} |",
    ]
    return "\n".join(lines)


def counts_table(result: ResultDocument) -> list[dict[str, object]]:
    """The most frequent outcomes; of a PUB task, per PUB and binding (an estimator's values per PUB)."""
    if isinstance(result.pubs, EstimatorPubResults):
        values: list[dict[str, object]] = [
            {"pub": i, "index": j, "ev": ev, "std": std}
            for i, pub in enumerate(result.pubs.pubs)
            for j, (ev, std) in enumerate(zip(pub.evs, pub.stds, strict=True))
        ]
        return values[:MAX_TABLE_ROWS]
    tallies = (
        [(None, None, result.shots, result.counts)]
        if result.pubs is None
        else [
            (i, j, pub.shots, counts) for i, pub in enumerate(result.pubs.pubs) for j, counts in enumerate(pub.counts)
        ]
    )
    rows = sorted(
        ((i, j, shots, bits, n) for i, j, shots, counts in tallies for bits, n in counts.items()),
        key=lambda r: (-r[4], r[0] or 0, r[1] or 0, r[3]),
    )
    return [
        ({} if i is None else {"pub": i, "binding": j})
        | {"bitstring": bits, "count": n, "probability": round(n / shots, 6)}
        for i, j, shots, bits, n in rows[:MAX_TABLE_ROWS]
    ]


def counts_description(result: ResultDocument) -> str:
    if result.pubs is not None:
        return f"{ran(result)} of task {result.provenance.task_id} (at most {MAX_TABLE_ROWS} rows)"
    shown = (
        "" if len(result.counts) <= MAX_TABLE_ROWS else f" (the {MAX_TABLE_ROWS} most frequent of {len(result.counts)})"
    )
    return f"counts of task {result.provenance.task_id}{shown}"


def noise_summary(p: Provenance) -> str:
    """The noise model, what the task's noise options changed, and whether any noise was left."""
    changes = [f"{kind} scaled {factor:g}" for kind, factor in sorted(p.noise.scale.items())]
    changes += [f"{kind} off" for kind in p.noise.disable]
    said = str(p.noise_model) + (f" ({', '.join(changes)})" if changes else "")
    if p.noise_empty:
        return said + ": no noise applied, the run was ideal"
    return said + ("" if p.noise_channels is None else f": {p.noise_channels} error channels")
