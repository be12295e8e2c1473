"""`vqpu devices list | show | epochs | diff`."""

from __future__ import annotations

from typing import Any

from vqpu_client.cli.context import Context
from vqpu_client.cli.exits import Exit
from vqpu_client.cli.render import change, number, short, table
from vqpu_client.cli.snapshots import Change, diff, summarize
from vqpu_protocol.api.inspect import QueuedViolations, RefusedTask


def list_devices(ctx: Context) -> int:
    found = ctx.client.devices()
    if ctx.out.as_json:
        ctx.out.document({"devices": found})
        return Exit.OK
    rows = [
        (
            d.device_id,
            d.epoch,
            d.num_qubits,
            d.offline_qubits,
            d.unavailable_edges,
            " ".join(d.native_gates),
            short(d.sha256),
        )
        for d in found
    ]
    headers = ("device", "epoch", "qubits", "offline", "unavailable couplers", "native gates", "sha256")
    ctx.out.lines(table(headers, rows, right=(1, 2, 3, 4)))
    return Exit.OK


def show(ctx: Context) -> int:
    summary = summarize(ctx.client.snapshot(ctx.args.device, ctx.args.epoch))
    if ctx.out.as_json:
        ctx.out.document(summary)
    else:
        ctx.out.lines(show_lines(summary))
    return Exit.OK


def show_lines(s: dict[str, Any]) -> list[str]:
    source = s["source"] or {}
    origin = " ".join(str(v) for v in (source.get("kind"), source.get("name")) if v)
    offline, out = s["offline_qubits"], s["unavailable_couplers"]
    m = s["medians"]
    return [
        f"{s['device_id']}  epoch {s['epoch']}  sha256 {s['sha256']}",
        f"source        {origin or '-'}" + (f", captured {s['captured_at']}" if s["captured_at"] else ""),
        f"qubits        {s['num_qubits']}, offline: {_listing(offline)}",
        f"couplers      {s['num_edges']}{' (directed)' if s['directed'] else ''}, unavailable: "
        + _listing([f"{a}-{b}" for a, b in out]),
        f"native gates  {' '.join(s['native_gates'])}",
        "medians       "
        + "  ".join(
            f"{label} {number(m[name])}{unit if m[name] is not None else ''}"
            for label, name, unit in (
                ("T1", "t1", " s"),
                ("T2", "t2", " s"),
                ("1q error", "error_1q", ""),
                ("2q error", "error_2q", ""),
                ("readout error", "readout_error", ""),
            )
        ),
    ]


def _listing(items: list[Any]) -> str:
    return f"{len(items)} ({', '.join(str(i) for i in items)})" if items else "none"


def epochs(ctx: Context) -> int:
    found = ctx.client.epochs(ctx.args.device)
    if ctx.out.as_json:
        ctx.out.document({"device_id": ctx.args.device, "epochs": found})
    else:
        ctx.out.lines(
            table(("epoch", "sha256", "created"), [(e.epoch, e.sha256, e.created_at) for e in found], right=(0,))
        )
    return Exit.OK


def diff_epochs(ctx: Context) -> int:
    a, b, device = ctx.args.a, ctx.args.b, ctx.args.device
    client = ctx.client
    old, new = client.snapshot(device, a), client.snapshot(device, b)
    changes = diff(old, new)
    refused_b = client.queued_violations(device, b)
    refused_a = client.queued_violations(device, a)
    newly = newly_refused(refused_a, refused_b)
    doc = {
        "device_id": device,
        "a": {"epoch": old.epoch, "sha256": old.sha256()},
        "b": {"epoch": new.epoch, "sha256": new.sha256()},
        "changes": [c.to_dict() for c in changes],
        "no_longer_admitted": newly,
        "queued_checked": refused_b.checked,
        "queued_truncated": refused_a.truncated or refused_b.truncated,
    }
    if ctx.out.as_json:
        ctx.out.document(doc)
    else:
        ctx.out.lines(diff_lines(doc, changes, newly))
    return Exit.OK


def newly_refused(a: QueuedViolations, b: QueuedViolations) -> list[RefusedTask]:
    """The tasks B refuses that A did not (those A refused already fail on A: B changes nothing for them)."""
    before = {t.task_id for t in a.tasks}
    return [t for t in b.tasks if t.task_id not in before]


def diff_lines(doc: dict[str, Any], changes: list[Change], newly: list[RefusedTask]) -> list[str]:
    a, b = doc["a"], doc["b"]
    lines = [
        f"{doc['device_id']}: epoch {a['epoch']} ({short(a['sha256'])}) -> epoch {b['epoch']} ({short(b['sha256'])})"
    ]
    if not changes:
        lines.append("no changes: the two epochs hold the same device")
    status = [c for c in changes if c.is_status or c.where == "device"]
    calibration = [c for c in changes if c not in status]
    if status:
        lines += ["", "status and structure:"]
        lines += [f"  {_where(c)}  {c.field}: {c.a} -> {c.b}" for c in status]
    if calibration:
        qubits = len({c.key for c in calibration if c.where == "qubit"})
        edges = len({c.key for c in calibration if c.where == "edge"})
        lines += ["", f"calibration ({_count(qubits, 'qubit')}, {_count(edges, 'coupler')} changed):"]
        lines += [f"  {_where(c)}  {c.field}: {_values(c)}" for c in calibration]
    lines += [
        "",
        f"queued tasks epoch {b['epoch']} would no longer admit (of {doc['queued_checked']} queued, unpinned):",
    ]
    if doc["queued_truncated"]:
        lines.append("  (only the oldest were checked: more are queued than the server checks at once)")
    if not newly:
        lines.append("  none")
    for t in newly:
        first = t.violations[0]
        more = f" (+{len(t.violations) - 1} more)" if len(t.violations) > 1 else ""
        lines.append(f"  {t.task_id}  {first.code} line {first.line}: {first.message}{more}")
    return lines


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _where(c: Change) -> str:
    return "device" if c.where == "device" else f"{'qubit' if c.where == 'qubit' else 'coupler'} {c.key}"


def _values(c: Change) -> str:
    numeric = all((isinstance(v, int | float) and not isinstance(v, bool)) or v is None for v in (c.a, c.b))
    return change(c.a, c.b) if numeric else f"{c.a} -> {c.b}"
