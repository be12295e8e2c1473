"""REPORT.md from results.json: each measured series beside its baseline, in milliseconds."""

from __future__ import annotations

from typing import Any

COLUMNS = ("p50", "p90", "p99", "max")


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


def _row(label: str, s: dict[str, float], extra: str = "") -> str:
    return f"| {label} | {int(s['n'])} | " + " | ".join(_ms(s[c]) for c in COLUMNS) + f" | {extra} |"


def _header(first: str, extra: str) -> list[str]:
    return [
        f"| {first} | n | p50 ms | p90 ms | p99 ms | max ms | {extra} |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]


def render(r: dict[str, Any]) -> str:
    ref, cfg, m = r["reference"], r["config"], r["machine"]
    adm, dis = ref["admission"], ref["dispatch"]
    lines = [
        "# Control plane: admission, dispatch and lifecycle throughput",
        "",
        f"Measured {r['created']} on {m['cpus_usable']} usable CPUs ({m['cpu_model']}), {m['python']}, "
        f"commit {str(m['git_commit'])[:10]}{' (dirty)' if m['git_dirty'] else ''}. "
        "A real `vqpu-server serve` (uvicorn, log level warning, default settings but a per-owner QUEUED cap "
        "of 10⁶) on loopback, on a "
        "fresh database each; the benchmark's clients share the CPUs with it. Each series drops its "
        f"first {cfg['warmup']} samples (dispatch: {cfg['dispatch_warmup']}). "
        "Regenerate: `.venv/bin/python -m benchmarks.control_plane.run` (about 7 minutes here).",
        "",
        f"Workload: a {cfg['circuit']['gates']}-gate native circuit on {cfg['circuit']['device']} "
        f"({cfg['circuit']['bytes']} bytes of OpenQASM 3 over its first {cfg['circuit'].get('qubits', 154)} qubits); "
        "dispatch and lifecycle use a "
        f"Bell pair on {cfg['small_device']}.",
        "",
        "## Admission (`POST /v1/tasks`, 1,000-gate circuit on Fez)",
        "",
        f"Paper: ≈{adm['paper_s']} s. Aim: p50 ≤ {_ms(adm['aim_p50_s'])} ms, p99 ≤ {_ms(adm['aim_p99_s'])} ms.",
        "",
        *_header("series", "what it is"),
        _row("check in-process", r["in_process_check_s"], "`admissibility.check`, no HTTP (all databases)"),
    ]
    for db, d in r["databases"].items():
        lines += [
            _row(f"{db}: HTTP floor", d["http_floor_s"], "`GET /v1/health`: loopback + uvicorn + middleware"),
            _row(f"{db}: viability", d["viability_s"], "the check over HTTP, auth, nothing stored"),
            _row(f"{db}: **admission**", d["admission_s"], "check + insert task and event, 201"),
            _row(
                f"{db}: admission, {cfg['stalled_subscribers']} stalled SSE",
                d["admission_with_stalled_sse_s"],
                f"subscribers never read; {d['stalled_subscribers_evicted']} evicted by the end",
            ),
        ]
    lines += ["", *_scaling(r["check_scaling"])]
    lines += [
        "",
        "## Dispatch (submit leaves the client → the agent holds the claim reply)",
        "",
        f"Paper: {dis['paper_s'][0]:g}-{dis['paper_s'][1]:g} s with {dis['paper_poll_s']:g} s polling. "
        f"Aim: p99 ≤ {_ms(dis['aim_p99_s'])} ms with an agent already waiting.",
        "",
        *_header("agent", "claim requests per task"),
    ]
    for db, d in r["databases"].items():
        for s in d["dispatch"].values():
            name = "**long-poll** (woken on submit)" if s["poll_s"] is None else f"short-poll every {s['poll_s']:g} s"
            lines.append(_row(f"{db}: {name}", s["latency_s"], f"{s['claim_requests_per_task']:.2f}"))
    lines += [
        "",
        "## Lifecycle throughput (submit → claim → complete, no simulation)",
        "",
        "| database | path | tasks | agents | tasks/s | submit→complete p50 ms | p99 ms | claims per task |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for db, d in r["databases"].items():
        for path, key in (
            ("HTTP, long-poll agents", "lifecycle_http"),
            ("Store in-process (baseline)", "lifecycle_store"),
        ):
            t = d[key]
            s = t["submit_to_complete_s"]
            lines.append(
                f"| {db} | {path} | {t['tasks']} | {t['agents']} | {t['tasks_per_s']:.0f} | "
                f"{_ms(s['p50'])} | {_ms(s['p99'])} | {t['claim_requests_per_task']:.2f} |"
            )
    lines += ["", *_verdict(r), ""]
    if "baseline" in r:
        lines += [*_beside(r, r["baseline"]), ""]
    return "\n".join(lines)


def _beside(r: dict[str, Any], base: dict[str, Any]) -> list[str]:
    """This run's medians and tails beside a baseline run's (other code, the same machine, just before)."""
    bm = base["machine"]
    lines = [
        f"## Beside the baseline (commit {str(bm['git_commit'])[:10]}, measured {base['created']}, same workload)",
        "",
        "| series | baseline p50 ms | this p50 ms | baseline p99 ms | this p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]

    def row(label: str, old: dict[str, float], new: dict[str, float]) -> str:
        return f"| {label} | {_ms(old['p50'])} | {_ms(new['p50'])} | {_ms(old['p99'])} | {_ms(new['p99'])} |"

    lines.append(row("check in-process", base["in_process_check_s"], r["in_process_check_s"]))
    for db, d in r["databases"].items():
        old = base["databases"].get(db)
        if old is None:
            continue
        lines.append(row(f"{db}: viability", old["viability_s"], d["viability_s"]))
        lines.append(row(f"{db}: **admission**", old["admission_s"], d["admission_s"]))
        lines.append(
            row(
                f"{db}: dispatch, long-poll",
                old["dispatch"]["long_poll"]["latency_s"],
                d["dispatch"]["long_poll"]["latency_s"],
            )
        )
    lines += ["", "| database | path | baseline tasks/s | this tasks/s |", "|---|---|---:|---:|"]
    for db, d in r["databases"].items():
        old = base["databases"].get(db)
        for path, key in (("HTTP", "lifecycle_http"), ("Store in-process", "lifecycle_store")):
            if old is not None and key in old:
                lines.append(f"| {db} | {path} | {old[key]['tasks_per_s']:.0f} | {d[key]['tasks_per_s']:.0f} |")
    return lines


def _scaling(scaling: dict[str, dict[str, Any]]) -> list[str]:
    sizes = list(next(iter(scaling.values()))["seconds"])
    names = {"16384": "16 KB", "131072": "128 KB", "1048576": "1 MiB"}
    head = " | ".join(f"{names.get(s, s)} ms" for s in sizes)
    per_kb = " | ".join(f"{names.get(s, s)} µs/KB" for s in sizes)
    lines = [
        "## The admission check on hostile circuits (in-process, median of the repetitions)",
        "",
        "Shapes that once made the check quadratic (32 KB without a `;` froze a server for 6-10 s, 1 MiB for over "
        "ten minutes), and a valid native program, on line-16. Linear means the µs/KB columns stay flat.",
        "",
        f"| circuit | {head} | {per_kb} |",
        "|---|" + "---:|" * (2 * len(sizes)),
    ]
    for shape, row in scaling.items():
        ms = " | ".join(_ms(row["seconds"][s]) for s in sizes)
        us = " | ".join(f"{row['us_per_kb'][s]:.1f}" for s in sizes)
        lines.append(f"| {shape} | {ms} | {us} |")
    return lines


def _verdict(r: dict[str, Any]) -> list[str]:
    adm, dis = r["reference"]["admission"], r["reference"]["dispatch"]
    out = ["## Against the aims", ""]
    for db, d in r["databases"].items():
        a, lp = d["admission_s"], d["dispatch"]["long_poll"]["latency_s"]
        out.append(
            f"- {db}: admission p50 {_against(a['p50'], adm['aim_p50_s'])}, "
            f"p99 {_against(a['p99'], adm['aim_p99_s'])}; dispatch p99 {_against(lp['p99'], dis['aim_p99_s'])}."
        )
    out += ["", "Where a submit's median goes (differences of medians, so approximate):", ""]
    check = r["in_process_check_s"]["p50"]
    for db, d in r["databases"].items():
        floor, viab, submit = d["http_floor_s"]["p50"], d["viability_s"]["p50"], d["admission_s"]["p50"]
        out.append(
            f"- {db}: HTTP round trip {_ms(floor)} ms + admission check {_ms(check)} ms + auth, 16 KB body "
            f"and thread hand-off {_ms(viab - floor - check)} ms + storing the task and its event "
            f"{_ms(submit - viab)} ms = {_ms(submit)} ms."
        )
    out += [
        "",
        "The clients (up to 8 agent threads and 2 submitters) and the server share the machine's CPUs, "
        "so every server-side number here includes waiting for a CPU; the Store baseline's agents "
        "retry an empty claim after 1 ms (there is no long-poll without the server), hence its "
        "claims per task.",
    ]
    return out


def _against(value: float, aim: float) -> str:
    return f"{_ms(value)} ms ({'meets' if value <= aim else 'misses'} the aim of {_ms(aim)} ms)"
