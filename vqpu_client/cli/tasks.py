"""`vqpu submit | status | watch | result | cancel`: one task's life from the command line."""

from __future__ import annotations

import json
import math
from typing import Any

from vqpu_client.calls import TERMINAL_EVENTS
from vqpu_client.cli import events
from vqpu_client.cli.arguments import run_options
from vqpu_client.cli.context import Context
from vqpu_client.cli.exits import Exit, usage
from vqpu_client.cli.render import number, short, table
from vqpu_protocol.api.tasks import TaskView
from vqpu_protocol.pubs import EstimatorPubResults, SamplerPubResults
from vqpu_protocol.rundir import ResultDocument


def submit(ctx: Context) -> int:
    a = ctx.args
    options = run_options(a)  # refused before the file is read or anything is sent
    if (a.file is None) == (a.pubs is None):
        raise usage(
            "give a circuit FILE or --pubs FILE" if a.file is None else "give a circuit FILE or --pubs FILE, not both"
        )
    common: dict[str, Any] = {
        "seed": a.seed,
        "epoch": a.epoch,
        "tags": a.tag,
        "options": options,
        "idempotency_key": a.idempotency_key,
    }
    if a.pubs is not None:
        pubs = read_pubs(ctx, a.pubs)  # read before the client is made: a bad file never reaches the server
        task = ctx.client.submit(a.device, pubs=pubs, shots=a.shots, **common)
    else:
        if a.shots is None:
            raise usage("a circuit needs --shots")
        circuit = ctx.read_circuit(a.file)
        task = ctx.client.submit(a.device, circuit, shots=a.shots, **common)
    if not a.wait:
        if ctx.out.as_json:
            ctx.out.document(task)
        else:
            pinned = f", pinned to epoch {task.epoch}" if task.epoch is not None else ""
            ctx.out.line(f"{task.id}  {task.state}  on {task.device} (admitted on epoch {task.admitted_epoch}{pinned})")
        return Exit.OK
    return finish(ctx, ctx.wait(task.id, a.timeout))


def read_pubs(ctx: Context, path: str) -> dict[str, Any]:
    """The `pubs` document of a PUB task from a JSON file (`-`: stdin): `{"kind": "sampler" | "estimator",
    "pubs": [...]}` as `vqpu_protocol.pubs` defines it (the client validates it before sending)."""
    text = ctx.read_circuit(path)
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise usage(f"{path} is not JSON: {exc}", {"path": path}) from None
    if not isinstance(document, dict):
        raise usage(f'{path} must hold a JSON object: {{"kind": ..., "pubs": [...]}}', {"path": path})
    return document


def finish(ctx: Context, task: TaskView) -> int:
    """Print a finished task's result (with --json: `{task, result}`); a failed or cancelled one raises."""
    result = ctx.client.result(task.id) if task.state == "COMPLETED" else None
    if ctx.out.as_json:
        ctx.out.document({"task": task, "result": result})
    elif result is not None:
        ctx.out.lines(result_lines(result))
    if result is None:
        ctx.client.result_of(task)  # raises its TaskFailedError / TaskCancelledError
    return Exit.OK


def status(ctx: Context) -> int:
    task = ctx.client.task(ctx.args.task)
    if ctx.out.as_json:
        ctx.out.document(task)
    else:
        ctx.out.lines(status_lines(task))
    return Exit.OK


def status_lines(t: TaskView) -> list[str]:
    flags = [f for f, on in (("stale", t.stale), ("cancel requested", t.cancel_requested)) if on]
    rows: list[tuple[str, Any]] = [
        ("task", t.id),
        ("state", t.state + (f" ({', '.join(flags)})" if flags else "")),
        ("device", t.device),
        ("kind", t.kind if t.pubs is None else f"{t.kind}, {t.pubs} PUB{'s' if t.pubs != 1 else ''}"),
        ("shots", t.shots),
        ("seed", t.seed),
        ("options", _options(t)),
        ("estimate", _estimate(t)),
        ("tags", ", ".join(t.tags) or None),
        ("epoch", f"pinned {t.epoch}" if t.epoch is not None else "bound at claim"),
        ("admitted", f"epoch {t.admitted_epoch}"),
        ("bound", None if t.bound_epoch is None else f"epoch {t.bound_epoch} (sha256 {short(t.bound_sha256)})"),
        ("attempt", t.attempt),
        ("agent", t.agent_id),
        ("scheduler", None if t.scheduler is None else t.scheduler.model_dump_json(exclude_none=True)),
        ("created", t.created_at),
        ("claimed", t.claimed_at),
        ("finished", t.finished_at),
        ("error", None if t.error is None else f"{t.error.code}: {t.error.message}"),
    ]
    return [f"{k:<10} {'-' if v is None else v}" for k, v in rows]


def _estimate(t: TaskView) -> str | None:
    p = t.estimate
    if p is None:
        return None
    return (
        f"{p.estimated_runtime_s:.3g} s, {_size(p.memory_bytes)}; {p.method} ({p.precision}) on {p.active_qubits} "
        f"qubits, {p.expanded_ops} operations{', noisy' if p.noisy else ''}"
    )


def _size(n: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} B"


def _options(t: TaskView) -> str:
    given = t.options.model_dump(mode="json", exclude_defaults=True)
    return ", ".join(f"{k}={v}" for k, v in given.items()) or "defaults"


def watch(ctx: Context) -> int:
    a = ctx.args
    since = a.since
    if since is None:
        since = 0 if a.task else ctx.client.health().last_event_id
    for event in ctx.client.events(task=a.task, device=a.device, last_event_id=since):
        if ctx.out.as_json:
            ctx.out.json_line(event)
        else:
            ctx.out.line(events.line(event))
        if a.task and event.type in TERMINAL_EVENTS:
            break
    return Exit.OK


def result(ctx: Context) -> int:
    a = ctx.args
    if a.wait:
        return finish(ctx, ctx.wait(a.task, a.timeout))
    doc = ctx.client.result(a.task)
    if ctx.out.as_json:
        ctx.out.document(doc)
    else:
        ctx.out.lines(result_lines(doc))
    return Exit.OK


def sorted_counts(counts: dict[str, int]) -> list[tuple[str, int]]:
    """Most frequent first; ties by outcome, so the order is the same on every run."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def result_lines(doc: ResultDocument) -> list[str]:
    p = doc.provenance
    where = f"on {p.device_id} epoch {p.epoch} (sha256 {short(p.snapshot_sha256)})"
    if doc.pubs is not None:
        count = len(doc.pubs.pubs)
        lines = [f"{p.task_id}  {doc.pubs.kind} task of {count} PUB{'s' if count != 1 else ''} {where}"]
        lines += pub_lines(doc.pubs)
    else:
        lines = [f"{p.task_id}  {doc.shots} shots {where}", ""]
        rows = [(outcome, n, f"{n / doc.shots:.4f}") for outcome, n in sorted_counts(doc.counts)]
        lines += table(("outcome", "count", "probability"), rows, right=(1, 2))
    lines += [
        "",
        f"epoch      {p.epoch}",
        f"sha256     {p.snapshot_sha256}",
        f"seed       {p.seed} (from the {p.seed_source})",
        f"method     {p.method} on {p.device} ({p.method_reason})",
        f"noise      {noise_summary(doc)}",
        f"time       {number(doc.timings.total_s)} s (simulate {number(doc.timings.simulate_s)} s)",
    ]
    if doc.memory is not None:
        lines.append(f"memory     {len(doc.memory)} shots (vqpu result --json shows them)")
    return lines


SHOWN_OUTCOMES = 8
"""Outcomes shown per binding of a sampler PUB (the most frequent); `--json` gives them all."""


def pub_lines(pubs: SamplerPubResults | EstimatorPubResults) -> list[str]:
    """Per PUB: a sampler's counts per binding (most frequent first), an estimator's evs +- stds per element;
    each binding or element by its index in the PUB's shape."""
    lines: list[str] = []
    if isinstance(pubs, SamplerPubResults):
        for i, s in enumerate(pubs.pubs):
            registers = ", ".join(f"{r.name}[{r.num_bits}]" for r in s.registers) or "none"
            lines += ["", f"PUB {i}: {_bindings(s.shape)}, {s.shots} shots each; registers {registers}"]
            for b, counts in enumerate(s.counts):
                ranked = sorted_counts(counts)
                shown = "  ".join(f"{o}: {n} ({n / s.shots:.4f})" for o, n in ranked[:SHOWN_OUTCOMES])
                more = f"  (+{len(ranked) - SHOWN_OUTCOMES} more)" if len(ranked) > SHOWN_OUTCOMES else ""
                lines.append(f"  {_index(s.shape, b)}  {shown}{more}")
        return lines
    for i, e in enumerate(pubs.pubs):
        lines += ["", f"PUB {i}: {_bindings(e.shape, 'value')}, precision {e.precision:g}"]
        rows = [
            (_index(e.shape, k), f"{ev:.6g}", f"{sd:.3g}") for k, (ev, sd) in enumerate(zip(e.evs, e.stds, strict=True))
        ]
        lines += ["  " + line for line in table(("index", "ev", "std"), rows, right=(1, 2))]
    return lines


def _bindings(shape: list[int], noun: str = "binding") -> str:
    n = math.prod(shape)
    return f"{n} {noun}{'s' if n != 1 else ''} of shape {list(shape)}"


def _index(shape: list[int], flat: int) -> str:
    """The C-order index of element `flat` of an array of `shape`: `[1, 2]`; `[]` for a scalar."""
    index = []
    for n in reversed(shape):
        flat, i = divmod(flat, n) if n else (flat, 0)
        index.append(i)
    return "[" + ", ".join(map(str, reversed(index))) + "]"


def noise_summary(doc: ResultDocument) -> str:
    p = doc.provenance
    if p.noise_empty:
        text = f"{p.noise_model}: none applied (ideal)"
    else:
        channels = "" if p.noise_channels is None else f", {p.noise_channels} channels"
        text = f"{p.noise_model}{channels}"
    asked = [f"{kind} x{factor:g}" for kind, factor in sorted(p.noise.scale.items())]
    asked += [f"{kind} off" for kind in p.noise.disable]
    return text + (f"; {', '.join(asked)}" if asked else "")


def cancel(ctx: Context) -> int:
    task = ctx.client.cancel(ctx.args.task)
    if ctx.out.as_json:
        ctx.out.document(task)
    elif task.state == "RUNNING":
        ctx.out.line(f"{task.id}  RUNNING, cancel requested: it ends CANCELLED once {task.agent_id} has stopped it")
    else:
        ctx.out.line(f"{task.id}  {task.state}")
    return Exit.OK
