"""`vqpu replay TASK`: rerun a COMPLETED task exactly — its circuit, on the epoch it was bound to, with the
seed its result records, the same shots and options — and say whether the counts are identical.

A PUB task is replayed the same way from its PUBs as the service stored them (`GET /v1/tasks/{id}/circuit`
gives them, resolved: every PUB's shots or precision). Identical then means the same counts for every binding
of every PUB, or the same expectation values and standard errors."""

from __future__ import annotations

from typing import Any

from vqpu_client.cli.context import Context
from vqpu_client.cli.exits import CliCode, CliError, Exit, usage
from vqpu_client.cli.render import short, table
from vqpu_protocol.pubs import EstimatorPub, EstimatorPubResults, EstimatorPubs, SamplerPubResults, SamplerPubs
from vqpu_protocol.rundir import ResultDocument


def replay(ctx: Context) -> int:
    client = ctx.client
    original = client.task(ctx.args.task)
    if original.state != "COMPLETED":
        raise usage(
            f"only a COMPLETED task can be replayed; {original.id} is {original.state}",
            {"task_id": original.id, "state": original.state},
        )
    first = client.result(original.id)
    common: dict[str, Any] = {
        "seed": first.provenance.seed,
        "epoch": first.provenance.epoch,
        "tags": [f"replay-of:{original.id}"],
        "options": original.options,
    }
    source = client.task_circuit(original.id)
    if first.pubs is not None:
        pubs = pinned_pubs(original.id, first.pubs, source.pubs)
        task = client.submit(original.device, pubs=pubs, dialect=source.dialect, **common)
    else:
        if source.circuit is None:
            raise usage(f"the service gave no circuit for {original.id}", {"task_id": original.id})
        task = client.submit(original.device, source.circuit, dialect=source.dialect, shots=original.shots, **common)
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


def pinned_pubs(
    task_id: str, ran: SamplerPubResults | EstimatorPubResults, given: SamplerPubs | EstimatorPubs | None
) -> SamplerPubs | EstimatorPubs:
    """The task's PUBs as the service gives them back, each PUB's shots (sampler) or precision (estimator) set
    to what its result records; refused (usage) when the service gives none (an older server) or PUBs that
    cannot be the ones that ran: another kind, another number of PUBs or another shape."""
    if given is None:
        raise usage(
            f"{task_id} is a {ran.kind} PUB task and the service did not give its PUBs back "
            f"(GET /v1/tasks/{task_id}/circuit); it cannot be replayed",
            {"task_id": task_id},
        )
    shapes = [p.result_shape if isinstance(p, EstimatorPub) else p.bindings_shape for p in given.pubs]
    if given.kind != ran.kind or shapes != [list(r.shape) for r in ran.pubs]:
        ran_shapes = [list(r.shape) for r in ran.pubs]
        raise usage(
            f"the PUBs given are not {task_id}'s: it ran {len(ran.pubs)} {ran.kind} PUBs of shapes {ran_shapes}; "
            f"the file holds {len(given.pubs)} {given.kind} PUBs of shapes {shapes}",
            {"task_id": task_id},
        )
    if isinstance(ran, SamplerPubResults) and isinstance(given, SamplerPubs):
        return SamplerPubs(
            pubs=[p.model_copy(update={"shots": r.shots}) for p, r in zip(given.pubs, ran.pubs, strict=True)]
        )
    assert isinstance(ran, EstimatorPubResults) and isinstance(given, EstimatorPubs)
    return EstimatorPubs(
        pubs=[p.model_copy(update={"precision": r.precision}) for p, r in zip(given.pubs, ran.pubs, strict=True)]
    )


def compare(first: ResultDocument, second: ResultDocument) -> dict[str, Any]:
    """Identical means the same counts (and the same per-shot memory when both kept it); for a PUB task, the
    same counts for every binding of every PUB, or the same expectation values and standard errors."""
    if first.pubs is not None or second.pubs is not None:
        return {**_same_run(first, second), **compare_pubs(first, second)}
    outcomes = sorted(first.counts.keys() | second.counts.keys())
    differences = [
        {"outcome": o, "original": first.counts.get(o, 0), "replay": second.counts.get(o, 0)}
        for o in outcomes
        if first.counts.get(o, 0) != second.counts.get(o, 0)
    ]
    memory_same = None if first.memory is None or second.memory is None else first.memory == second.memory
    return {
        "identical": not differences and memory_same is not False,
        **_same_run(first, second),
        "differences": differences,
        "memory_identical": memory_same,
    }


def _same_run(first: ResultDocument, second: ResultDocument) -> dict[str, Any]:
    return {
        "same_snapshot": first.provenance.snapshot_sha256 == second.provenance.snapshot_sha256,
        "epoch": second.provenance.epoch,
        "seed": second.provenance.seed,
    }


def compare_pubs(first: ResultDocument, second: ResultDocument) -> dict[str, Any]:
    """Per PUB and binding: each outcome whose count differs (sampler), each value that differs (estimator)."""
    a, b = first.pubs, second.pubs
    differences: list[dict[str, Any]] = []
    if a is None or b is None or a.kind != b.kind or len(a.pubs) != len(b.pubs):
        differences.append({"pub": None, "original": _kind(a), "replay": _kind(b)})
    elif isinstance(a, SamplerPubResults) and isinstance(b, SamplerPubResults):
        for i, (x, y) in enumerate(zip(a.pubs, b.pubs, strict=True)):
            if len(x.counts) != len(y.counts):
                differences.append({"pub": i, "original": f"{len(x.counts)} bindings", "replay": f"{len(y.counts)}"})
                continue
            for binding, (cx, cy) in enumerate(zip(x.counts, y.counts, strict=True)):
                differences += [
                    {"pub": i, "binding": binding, "outcome": o, "original": cx.get(o, 0), "replay": cy.get(o, 0)}
                    for o in sorted(cx.keys() | cy.keys())
                    if cx.get(o, 0) != cy.get(o, 0)
                ]
    elif isinstance(a, EstimatorPubResults) and isinstance(b, EstimatorPubResults):
        for i, (ex, ey) in enumerate(zip(a.pubs, b.pubs, strict=True)):
            if (ex.evs, ex.stds) != (ey.evs, ey.stds):
                differences += [
                    {"pub": i, "index": k, "original": [ev, sd], "replay": [ev2, sd2]}
                    for k, (ev, sd, ev2, sd2) in enumerate(zip(ex.evs, ex.stds, ey.evs, ey.stds, strict=False))
                    if (ev, sd) != (ev2, sd2)
                ] or [{"pub": i, "original": f"{len(ex.evs)} values", "replay": f"{len(ey.evs)} values"}]
    return {"identical": not differences, "differences": differences, "memory_identical": None}


def _kind(pubs: SamplerPubResults | EstimatorPubResults | None) -> str:
    return "a circuit's counts" if pubs is None else f"{len(pubs.pubs)} {pubs.kind} PUBs"


def report_lines(first: ResultDocument, second: ResultDocument, report: dict[str, Any]) -> list[str]:
    p, q = first.provenance, second.provenance
    lines = [
        f"replay {q.task_id} of {p.task_id}: {second.shots} shots on {q.device_id} epoch {q.epoch} "
        f"(sha256 {short(q.snapshot_sha256)}{'' if report['same_snapshot'] else ', NOT the original snapshot'}), "
        f"seed {q.seed}",
    ]
    if second.pubs is not None and first.pubs is not None:
        return lines + _pub_report(second.pubs, report)
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


def _pub_report(pubs: SamplerPubResults | EstimatorPubResults, report: dict[str, Any]) -> list[str]:
    what = "counts of every binding" if isinstance(pubs, SamplerPubResults) else "expectation values"
    if report["identical"]:
        count = len(pubs.pubs)
        return [f"identical: the same {what} of {count} {pubs.kind} PUB{'s' if count != 1 else ''}"]
    rows = [
        (d["pub"], d.get("binding", d.get("index")), d.get("outcome"), d["original"], d["replay"])
        for d in report["differences"]
    ]
    return [
        f"DIFFERENT: {len(rows)} {what.split(' of ')[0]} differ",
        *table(("pub", "at", "outcome", "original", "replay"), rows, right=(3, 4)),
    ]
