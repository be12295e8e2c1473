"""REPORT.md from a results document (`python -m benchmarks.service_vs_sbatch.run --report-only` redraws it)."""

from __future__ import annotations

import os
from typing import Any

from benchmarks.service_vs_sbatch.timeline import DETAILS, SEGMENTS
from benchmarks.service_vs_sbatch.workload import CHAIN, DEPTH, SHOTS, SIM_SEED_BASE

PAPER = {"service_s": 57.2, "direct_s": 10.1}
AIMS = {
    "service_over_direct_max": 0.3,
    "service_over_direct_max_earlier": 0.6,
    "flow_layer_overhead_median_s_max": 0.7,
}
"""Issue 20: the service at most 0.3x the direct path per circuit (the aim before it: 0.6x); the agent's part
(claim -> COMPLETED report, less the runner) at most 0.7 s median (the flow-run layer's aim before 211b962)."""

USER_STEPS = {
    "service": [
        "submit the circuit (POST /v1/tasks: device, circuit, shots, seed)",
        "wait for it (poll GET /v1/tasks/{id}, or follow the SSE stream)",
        "fetch the result (GET /v1/tasks/{id}/result)",
    ],
    "direct": [
        "fetch the device snapshot and compute its sha256 (and know which epoch is current)",
        "check the circuit against the device yourself (no admission check)",
        "write snapshot.json and task.json (schema, task id, seed, options, snapshot_sha256)",
        "write the job (sbatch options: partition, CPUs, memory, time, chdir, output; the runner's python)",
        "submit it (sbatch) and keep the job id",
        "poll the job (scontrol show job -o ID) until it ends",
        "check the job's state and exit code, then read result.json (or error.json)",
    ],
}


def _f(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


DIRECT_SEGMENT_TEXT = {
    "sbatch_call": "sbatch call",
    "submit_to_runner_start": "submit -> runner starts (Slurm scheduling, job launch, interpreter start)",
    "runner_total": "**runner** (`timings.total_s`: includes importing Qiskit/Aer)",
    "result_to_seen_completed": "result.json written -> scontrol says COMPLETED (job end + 20 ms poll)",
    "read_result": "read result.json",
}


def _dirty(env: dict[str, Any]) -> str:
    if not env.get("git_dirty"):
        return ""
    paths = env.get("dirty_paths")
    if paths is None:
        return " (dirty)"
    others = [p for p in paths if not p.startswith("benchmarks/")]
    if not others:
        return " (uncommitted: only this benchmark's own files under benchmarks/)"
    return f" (uncommitted changes in {len(others)} files outside benchmarks/: " + ", ".join(others) + ")"


def render_run(k: int, run: dict[str, Any]) -> str:
    s, d, r = run["summary"]["service"], run["summary"]["direct"], run["summary"]["ratio"]
    n = s["per_circuit_e2e_s"]["n"]
    lines = [
        f"| run {k} | service | direct sbatch | service / direct |",
        "|---|---:|---:|---:|",
        f"| per circuit, mean (s) | {_f(s['per_circuit_e2e_s']['mean'])} | {_f(d['per_circuit_e2e_s']['mean'])} "
        f"| {_f(r['per_circuit_mean'])} |",
        f"| per circuit, median (s) | {_f(s['per_circuit_e2e_s']['median'])} | "
        f"{_f(d['per_circuit_e2e_s']['median'])} | {_f(r['per_circuit_median'])} |",
        f"| per circuit, min-max (s) | {_f(s['per_circuit_e2e_s']['min'])}-{_f(s['per_circuit_e2e_s']['max'])} | "
        f"{_f(d['per_circuit_e2e_s']['min'])}-{_f(d['per_circuit_e2e_s']['max'])} | |",
        f"| batch of {n} submitted at once, wall (s) | {_f(s['batch_wall_s'])} | {_f(d['batch_wall_s'])} "
        f"| {_f(r['batch_wall'])} |",
        f"| batch, per task median (s) | {_f(s['batch_per_task_e2e_s']['median'])} | "
        f"{_f(d['batch_per_task_e2e_s']['median'])} | |",
        f"| first task (warm-up, not in the rows above) (s) | {_f(s['warmup_e2e_s'])} | {_f(d['warmup_e2e_s'])} | |",
        f"| runner's own time, median (s) | {_f(s['runner_total_s']['median'], 3)} | "
        f"{_f(d['runner_total_s']['median'], 3)} | |",
        f"| user-facing steps | {s['user_steps']} | {d['user_steps']} | |",
    ]
    return "\n".join(lines) + "\n"


def render(document: dict[str, Any]) -> str:
    runs = document["runs"]
    last = runs[-1]
    s, d, ratio = last["summary"]["service"], last["summary"]["direct"], last["summary"]["ratio"]
    env = document["environment"]
    n = document["circuits"]["count"]
    paper_ratio = PAPER["service_s"] / PAPER["direct_s"]
    out = [
        "# Service vs. hand-written sbatch (the paper's Table S4)\n",
        f"Measured {env['date']} on {env['cpus_usable']} usable CPUs ({env['cpu_model']}), {env['python']}, "
        f"{env['slurm']}, prefect {env['packages'].get('prefect')}, commit {str(env['git_commit'])[:10]}"
        f"{_dirty(env)}. Regenerate: `.venv/bin/python -m benchmarks.service_vs_sbatch.run`"
        f" ({len(runs)} clean runs in {len(runs) + len(document.get('discarded_runs', []))} attempts took "
        f"{document['elapsed_s'] / 60:.0f} minutes here"
        + (", mostly waiting for other work on the machine to finish" if document.get("discarded_runs") else "")
        + ").\n",
        f"Workload: {n} circuits, {len(CHAIN)} qubits on Fez's chain {'-'.join(map(str, CHAIN))}, depth {DEPTH} "
        f"(native sx/x/rz/cz, pseudo-random, fixed), {SHOTS} shots, seed {SIM_SEED_BASE}+i for circuit i in both "
        "paths, `ibm-fez` with the paper noise model (density-matrix). Both paths on the same single-node Slurm "
        "(2 CPUs, partition debug); one path at a time.\n",
        "- **service**: `POST /v1/tasks` to a `vqpu-server` (SQLite); one `vqpu-agent` (site `slurm-local`: "
        f"SLURMCluster, 1-CPU worker jobs, adapt {document['min_jobs_override'] or 0}-2 jobs, warm fork-mode runner, "
        f"{document['slots']} slots) claims it and submits the runner step to its cluster at once; Prefect (a "
        "server on a scratch PostgreSQL) shows each attempt as a deployment-backed flow run written beside the "
        "work by the agent's view; the client polls `GET /v1/tasks/{id}` every 20 ms, then `GET .../result`.\n"
        '- **direct**: write `task.json` + `snapshot.json` by hand, `sbatch --wrap "python -m runner RUN_DIR"` '
        "(1 CPU, 2 GB), poll `scontrol show job -o ID` every 20 ms (the batch: one `squeue` per 20 ms), read "
        "`result.json`.\n",
        "Per circuit: one circuit at a time, submit -> result in hand. Batch: all submitted at once, first submit "
        "-> last result in hand. Each path ran a warm-up circuit first (reported apart).\n",
        f"## Result (run {len(runs)} of {len(runs)})\n",
        render_run(len(runs), last),
    ]
    for k, run in enumerate(runs[:-1], start=1):
        out += [f"Run {k} of {len(runs)}:\n", render_run(k, run)]
    identical = all(r["summary"]["counts_identical"] for r in runs)
    out.append(
        f"Counts identical per circuit in both paths (same seed, same snapshot sha256): **{identical}** "
        f"(every run, sequential and batch: {sum(2 * n for _ in runs)} comparisons).\n"
    )
    out += [
        "## Against the paper and the aims\n",
        f"- Paper: service {PAPER['service_s']} s vs. direct {PAPER['direct_s']} s per circuit, the service "
        f"{paper_ratio:.1f}x slower. Here: {_f(s['per_circuit_e2e_s']['median'])} s vs. "
        f"{_f(d['per_circuit_e2e_s']['median'])} s (median), the service **{ratio['per_circuit_median']:.2f}x** "
        f"the direct path ({1 / ratio['per_circuit_median']:.1f}x faster).",
        f"- Aim (issue 20): service at most {AIMS['service_over_direct_max']}x the direct path per circuit: "
        f"**{'met' if last['summary']['aims_met']['service_over_direct_per_circuit'] else 'missed'}** "
        f"({ratio['per_circuit_median']:.2f}x median, {ratio['per_circuit_mean']:.2f}x mean; the aim before it, "
        f"{AIMS['service_over_direct_max_earlier']}x, "
        f"{'met' if last['summary']['aims_met']['service_over_direct_per_circuit_earlier_aim'] else 'missed'}).",
        f"- Aim: the agent's part (claim -> COMPLETED report, minus the runner's own time; until commit 211b962 "
        f"the flow-run layer's) at most {AIMS['flow_layer_overhead_median_s_max']} s median: "
        f"**{'met' if last['summary']['aims_met']['flow_layer_overhead_median'] else 'missed'}** "
        f"({_f(s['flow_layer_overhead_s']['median'], 3)} s median; the whole service overhead, end to end minus "
        f"the runner, {_f(s['service_overhead_s']['median'], 3)} s).",
        f"- Batch of {n}: service {_f(s['batch_wall_s'])} s vs. direct {_f(d['batch_wall_s'])} s "
        f"({ratio['batch_wall']:.2f}x).\n",
        "## What the numbers say\n",
        *findings(document),
        "",
        "## Where the service's time goes (median of the sequential circuits, last run)\n",
        "| segment | median s |",
        "|---|---:|",
    ]
    for key, text in SEGMENTS.items():
        out.append(f"| {text} | {_f(s['segments_median_s'].get(key), 3)} |")
    out.append(f"| end to end (median; the medians above need not add up to it) | "
               f"{_f(s['per_circuit_e2e_s']['median'], 3)} |")  # fmt: skip
    lag = s.get("view_lag_s") or {}
    out += ["", "Beside the path:\n", "| span | median s |", "|---|---:|"]
    for key, text in DETAILS.items():
        out.append(f"| {text} | {_f(s['details_median_s'].get(key), 3)} |")
    out.append(
        f"| view's lag over all {lag.get('n', 0)} tasks of the run (sequential and batch): median / max | "
        f"{_f(lag.get('median'), 3)} / {_f(lag.get('max'), 3)} |"
    )
    out += ["", "The direct path, for comparison:\n", "| segment | median s |", "|---|---:|"]
    for key, text in DIRECT_SEGMENT_TEXT.items():
        out.append(f"| {text} | {_f(d['segments_median_s'].get(key), 3)} |")
    out.append("")
    out += against_previous(document)
    out += auto_notes(document)
    out += [
        "",
        "## User-facing steps\n",
        "Service:",
        *[f"{i}. {step}" for i, step in enumerate(USER_STEPS["service"], 1)],
        "",
        "Direct:",
        *[f"{i}. {step}" for i, step in enumerate(USER_STEPS["direct"], 1)],
        "",
        "Raw numbers (every task's timestamps, events, flow-run states, Slurm job records) are in `results.json`.",
    ]
    return "\n".join(out) + "\n"


COMPARABLE_ROWS = {
    "per_circuit_median_s": "service per circuit, median (s)",
    "direct_per_circuit_median_s": "direct sbatch per circuit, median (s)",
    "service_over_direct": "**service / direct per circuit** (aim now <= 0.3)",
    "agent_overhead_median_s": "claim -> COMPLETED report, less the runner, median (s)",
    "submit_http_s": "submit (s)",
    "dispatch_s": "dispatch: stored -> claimed (s)",
    "claim_to_runner_start_s": "claim -> runner child starts (s)",
    "runner_total_s": "runner, its own time (s)",
    "result_to_completed_report_s": "result.json -> COMPLETED report stored (s)",
    "completed_to_in_hand_s": "COMPLETED -> result in the client's hand (s)",
    "completed_to_flow_run_completed_s": "COMPLETED report -> flow run Completed (s; before: the slot held meanwhile)",
    "cpu_s_per_task": "service CPU s per task (all its processes)",
    "batch_wall_s": "batch of 10, service wall (s)",
    "batch_per_task_median_s": "batch, per task median (s)",
}


def against_previous(document: dict[str, Any]) -> list[str]:
    """This run's numbers beside an earlier results.json's (kept under `previous`), where they mean the same."""
    prev = document.get("previous")
    if not prev:
        return []
    env, penv = document["environment"], prev["environment"]
    runs, pruns = document["runs"], prev["runs"]
    head = " | ".join(
        [f"before, run {k}" for k in range(1, len(pruns) + 1)] + [f"now, run {k}" for k in range(1, len(runs) + 1)]
    )
    out = [
        f"## Before and after (the previous report: prefect {penv['packages'].get('prefect')}, commit "
        f"{str(penv['git_commit'])[:10]}, measured {penv['date']} on a machine of this kind, perhaps not this "
        f"one; read from `{prev['file']}`)\n",
        "Until commit 211b962 each task ran as a Prefect flow run in the agent (the flow engine took the Pending run "
        "to Running, then the runner step went through prefect-dask and Prefect's task engine on the worker); now "
        "the agent submits the runner step at claim time and writes the flow run beside the work. Only the spans "
        "that mean the same in both are set side by side (claim -> runner start covers the old flow-run creation, "
        "engine start and step dispatch).\n",
        f"| median of the sequential circuits | {head} |",
        "|---|" + "---:|" * (len(pruns) + len(runs)),
    ]
    for key, text in COMPARABLE_ROWS.items():
        values = [r["comparable"].get(key) for r in pruns] + [r["comparable"].get(key) for r in runs]
        out.append(f"| {text} | " + " | ".join(_f(v, 3) for v in values) + " |")
    out.append(f"\nNow: prefect {env['packages'].get('prefect')}, commit {str(env['git_commit'])[:10]}.\n")
    return out


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def findings(document: dict[str, Any]) -> list[str]:
    """The main observations, with the last run's numbers (medians of the one-at-a-time circuits)."""
    run = document["runs"][-1]
    s, d = run["summary"]["service"], run["summary"]["direct"]
    seg, det, dseg = s["segments_median_s"], s["details_median_s"], d["segments_median_s"]
    seq = run["service"]["sequential"]
    runs = document["runs"]
    n = document["circuits"]["count"]
    agent = s["flow_layer_overhead_s"]["median"]
    cpu = (s.get("cpu") or {}).get("sequential") or {"cpu_s": {}}
    per_task = {k: v / n for k, v in cpu["cpu_s"].items() if k not in ("foreign", "slurm_daemons")}
    total_cpu = sum(per_task.values())
    batch = (s.get("cpu") or {}).get("batch") or {}
    runner_busy = sum(r["runner_total_s"] for r in run["service"]["batch"]["tasks"])
    polls = sum(r.get("polls", 0) for r in run["service"]["sequential"]) / n
    lag = s.get("view_lag_s") or {}
    aim = AIMS["service_over_direct_max"]
    ratio = run["summary"]["ratio"]["per_circuit_median"]
    need = aim * d["per_circuit_e2e_s"]["median"]
    lines = [
        f"- The simulation is the same small job in both paths: the runner's work (parse, fit, noise, simulate) "
        f"takes {s['runner_work_s']['median']:.3f} s in the service and {d['runner_work_s']['median']:.3f} s "
        f"direct. The direct runner's own time, {d['runner_total_s']['median']:.2f} s, is mostly a fresh "
        f"interpreter importing Qiskit and Aer; the service's warm fork-mode runner skips that "
        f"({s['runner_total_s']['median']:.3f} s). That import, plus Slurm's job start "
        f"({_f(dseg['submit_to_runner_start'])} s submit -> runner start) and job end "
        f"({_f(dseg['result_to_seen_completed'])} s result -> COMPLETED seen), is what the direct path pays per "
        "circuit.",
        f"- The service's path: dispatch {_f(seg['dispatch'], 3)} s, the claim reaching the agent and its run "
        f"directory {_f(seg['claim_to_run_dir'], 3)} s, the runner step reaching a Dask worker and the runner "
        f"child forking {_f(seg['run_dir_to_runner_start'], 3)} s, the runner {_f(seg['runner_total'], 3)} s, "
        f"the agent noticing the end and its COMPLETED report stored {_f(seg['result_to_completed_report'], 3)} s, "
        f"the client's 20 ms poll and result fetch {_f(seg['completed_to_in_hand'], 3)} s. The agent's part, "
        f"claim -> COMPLETED report less the runner, is {_f(agent, 3)} s. Prefect is not on it: the flow "
        f"run is created {_f(det['view_claim_to_flow_run_created'], 3)} s after the claim (the view holds an "
        "attempt for its first second; one that has ended by then has its step created in its final state), "
        "and shows "
        f"Completed {_f(lag.get('median'), 3)} s (median; max {_f(lag.get('max'), 3)} s) after the COMPLETED "
        "report.",
        "- The agent is woken by the Dask future's done-callback when the runner step ends (no poll), so "
        f"result.json -> COMPLETED report is {_f(seg['result_to_completed_report'], 3)} s here (median; mean "
        f"{_f(_mean([r['segments']['result_to_completed_report'] for r in seq]), 3)}): reading the step's result "
        "from the worker and the report's round trip. Run by run, result.json -> COMPLETED report "
        + ", ".join(_f(r["summary"]["service"]["segments_median_s"]["result_to_completed_report"], 3) for r in runs)
        + " s and per circuit "
        + ", ".join(_f(r["summary"]["service"]["per_circuit_e2e_s"]["median"], 3) for r in runs)
        + " s (medians).",
        (
            f"- Issue 20's aim, service <= {aim}x direct, is met ({ratio:.2f}x)."
            if ratio <= aim
            else f"- Issue 20's aim, service <= {aim}x direct, is missed ({ratio:.2f}x): it would need "
            f"{need:.3f} s per circuit here, {s['per_circuit_e2e_s']['median'] - need:.3f} s less than now."
        ),
        f"- Per circuit the service's processes used about {total_cpu:.2f} CPU s ("
        + ", ".join(f"{k} {v:.2f}" for k, v in per_task.items())
        + f"; the control plane's share includes answering the client's polls, {polls:.0f} per circuit, and the "
        "Slurm job's is the Dask worker, its warm runner and the runner child).",
        f"- Batch of {n}: the service ran its runner steps on {len(s['batch_workers'])} Dask worker(s), at most "
        f"{s['batch_max_runners_at_once']} runner(s) at once (direct: {d['batch_max_runners_at_once']} jobs side "
        f"by side); the runners themselves took {runner_busy:.1f} s of the {s['batch_wall_s']:.1f} s batch "
        f"({_f(batch.get('machine_busy_cores'))} of 2 cores busy; batch dispatch median "
        f"{_f(s['batch_segments_median_s']['dispatch'])} s: tasks wait for one of the agent's "
        f"{document['slots']} slots).",
        f"- The first task after the agent starts takes {_f(s['warmup_e2e_s'])} s: its runner step waits for "
        f"the first Slurm worker job and its warm runner's imports "
        f"({_f(run['service']['warmup']['segments']['run_dir_to_runner_start'])} s from run directory to runner "
        "start).",
    ]
    return lines


def _cpu_line(label: str, cpu: dict[str, Any] | None, tasks: int) -> str:
    if not cpu:
        return f"  - {label}: (not measured)"
    owners = cpu["cpu_s"]
    ours = ", ".join(f"{k} {v / tasks:.2f}" for k, v in owners.items() if k not in ("foreign", "slurm_daemons"))
    return (
        f"  - {label}: {_f(cpu['machine_busy_cores'])} of {os.cpu_count()} cores busy over {_f(cpu['wall_s'], 1)} s; "
        f"CPU s per task: {ours}; Slurm daemons {owners.get('slurm_daemons', 0.0):.2f} s and other work on the "
        f"machine {owners.get('foreign', 0.0):.2f} s in all"
    )


def auto_notes(document: dict[str, Any]) -> list[str]:
    """Observations read off the numbers, so the report says what it saw."""
    notes = ["## The machine during each run\n"]
    n = document["circuits"]["count"]
    for k, run in enumerate(document["runs"], 1):
        s, d = run["summary"]["service"], run["summary"]["direct"]
        svc = run["service"]
        quiet = run.get("quiet") or {}
        notes.append(
            f"- Run {k} (attempt {run['attempt']}; {'clean' if run['clean'] else '**not clean**'}: other work used at "
            f"most {max(run['foreign_cores'].values()):.2f} cores in any phase): before it, waited "
            f"{quiet.get('waited_s', 0)} s for quiet CPUs (found "
            f"{quiet.get('busy_cores', '-')} cores busy); load average before "
            f"{', '.join(f'{x:.2f}' for x in run['load_before'])}, after "
            f"{', '.join(f'{x:.2f}' for x in run['load_after'])}. Stack start {_f(svc['stack_startup_s'], 1)} s "
            f"({', '.join(f'{a} {b:.1f} s' for a, b in svc['stack_startup_parts_s'].items())}); exit statuses "
            f"{svc['exit_statuses']}; agent Slurm jobs left after stop: {svc['agent_jobs_left'] or 'none'}; "
            f"direct jobs left: {run['direct']['leftover_jobs_cancelled'] or 'none'}."
        )
        notes.append(
            f"  The agent's cluster ran {s['agent_slurm_jobs']} Slurm worker job(s); the service batch ran on "
            f"{len(s['batch_workers'])} Dask worker(s), at most {s['batch_max_runners_at_once']} runner(s) at once "
            f"(direct: {d['batch_max_runners_at_once']}); service batch flow-run layer overhead median "
            f"{_f(s['batch_flow_layer_overhead_s']['median'], 3)} s."
        )
        notes.append(_cpu_line("service, one at a time", s.get("cpu", {}).get("sequential"), n))
        notes.append(_cpu_line("service, batch", s.get("cpu", {}).get("batch"), n))
        notes.append(_cpu_line("direct, one at a time", d.get("cpu", {}).get("sequential"), n))
        notes.append(_cpu_line("direct, batch", d.get("cpu", {}).get("batch"), n))
        if svc.get("agent_log_warnings"):
            notes.append(f"  Agent log warnings/errors: {len(svc['agent_log_warnings'])} (listed in results.json).")
        if run["foreign_jobs"]:
            notes.append(f"  Other Slurm jobs on the node at the start: {run['foreign_jobs']}.")
    discarded = document.get("discarded_runs", [])
    if discarded:
        notes.append(
            f"- Discarded: {len(discarded)} attempt(s) during which other work on the machine used more than "
            f"{document['max_foreign_cores']} cores in some phase ("
            + "; ".join(
                f"attempt {r['attempt']}: up to {max(r['foreign_cores'].values()):.2f} cores, service/direct "
                f"{r['summary']['ratio']['per_circuit_median']:.2f}x"
                for r in discarded
            )
            + "). Their summaries are in results.json."
        )
    return notes
