"""`vqpu replay TASK`: rerun a COMPLETED task exactly — its circuit, on the epoch it was bound to, with the
seed its result records, the same shots and options — and say whether the counts are identical."""

from __future__ import annotations

from typing import Any

from vqpu_client.cli.context import Context
from vqpu_client.cli.exits import CliCode, CliError, Exit, usage
from vqpu_client.cli.render import short, table
from vqpu_protocol.rundir import ResultDocument


def replay(ctx: Context) -> int:
    client = ctx.client
    original = client.task(ctx.args.task)
    if original.state != "COMPLETED":
        raise usage(
            f"only a COMPLETED task can be replayed; {original.id} is {original.state}",
            {"task_id": original.id, "state": original.state},
        )
    source = client.task_circuit(original.id)
    first = client.result(original.id)
    task = client.submit(
        original.device,
        source.circuit,
        dialect=source.dialect,
        shots=original.shots,
        seed=first.provenance.seed,
        epoch=first.provenance.epoch,
        tags=[f"replay-of:{original.id}"],
        options=original.options,
    )
    final = ctx.wait(task.id, ctx.args.timeout)
    second = client.result_of(final)
    report = compare(first, second)
    if ctx.out.as_json:
        ctx.out.document({"original": original.id, "replay": final, **report})
    else:
        ctx.out.lines(report_lines(first, second, report))
    if not report["identical"]:
        raise CliError(
            Exit.TASK_FAILED,
            CliCode.REPLAY_MISMATCH,
            f"the replay {final.id} of {original.id} did not reproduce its counts",
            {"original": original.id, "replay": final.id, "differences": report["differences"]},
        )
    return Exit.OK


def compare(first: ResultDocument, second: ResultDocument) -> dict[str, Any]:
    """Identical means the same counts (and the same per-shot memory when both kept it)."""
    outcomes = sorted(first.counts.keys() | second.counts.keys())
    differences = [
        {"outcome": o, "original": first.counts.get(o, 0), "replay": second.counts.get(o, 0)}
        for o in outcomes
        if first.counts.get(o, 0) != second.counts.get(o, 0)
    ]
    memory_same = None if first.memory is None or second.memory is None else first.memory == second.memory
    return {
        "identical": not differences and memory_same is not False,
        "same_snapshot": first.provenance.snapshot_sha256 == second.provenance.snapshot_sha256,
        "epoch": second.provenance.epoch,
        "seed": second.provenance.seed,
        "differences": differences,
        "memory_identical": memory_same,
    }


def report_lines(first: ResultDocument, second: ResultDocument, report: dict[str, Any]) -> list[str]:
    p, q = first.provenance, second.provenance
    lines = [
        f"replay {q.task_id} of {p.task_id}: {second.shots} shots on {q.device_id} epoch {q.epoch} "
        f"(sha256 {short(q.snapshot_sha256)}{'' if report['same_snapshot'] else ', NOT the original snapshot'}), "
        f"seed {q.seed}",
    ]
    if report["identical"]:
        lines.append(f"identical: the same counts over {len(second.counts)} outcomes")
        return lines
    rows = [(d["outcome"], d["original"], d["replay"]) for d in report["differences"]]
    if not rows:
        return [*lines, "DIFFERENT: the counts agree but the per-shot memory does not"]
    lines.append(f"DIFFERENT: {len(rows)} outcomes differ")
    lines += table(("outcome", "original", "replay"), rows, right=(1, 2))
    if report["memory_identical"] is False:
        lines.append("the per-shot memory differs too")
    return lines
