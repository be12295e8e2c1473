"""REPORT.md from a results document (`python -m benchmarks.small_tasks.run --report-only` redraws it)."""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.service_vs_sbatch.timeline import DETAILS, SEGMENTS

AIMS = {
    "sequential_median_s_max": 0.3,
    "burst_tasks_per_s_min": 10.0,
    "qaoa_flow_s_max": 15.0,
    "service_over_direct_max": 0.3,
}
"""Issue 20's aims on 2 cores: a tiny task submit -> result in the embedded default, 200 tiny tasks at once, the
main job's QAOA flow with the same evaluations, and the service against a direct sbatch per circuit on Slurm
(the last measured by benchmarks/service_vs_sbatch)."""

PREVIOUS = {
    "sequential_median_s": 2.4,
    "burst_tasks_per_s": 1.64,
    "qaoa_flow_s": 49.0,
    "service_over_direct": "0.40-0.52",
    "note": "the issue's figures, before commit 211b962 (each task a Prefect flow run executed by the agent)",
}

SHORT = {
    "submit_http": "submit",
    "dispatch": "dispatch",
    "claim_to_run_dir": "claim -> run dir",
    "run_dir_to_runner_start": "run dir -> runner start",
    "runner_total": "runner",
    "result_to_completed_report": "result -> COMPLETED",
    "completed_to_in_hand": "COMPLETED -> in hand",
}
"""Column heads for the spans of benchmarks.service_vs_sbatch.timeline.SEGMENTS."""

PATH_TEXT = {
    "embedded": "embedded default (LocalStack: control plane SQLite, Prefect SQLite, Dask LocalCluster, 2 slots)",
    "slurm": "Slurm (site slurm-local: SLURMCluster, 1-CPU worker jobs, 2 slots; Prefect on PostgreSQL)",
    "embedded-prefect-away": "the embedded default with its Prefect server stopped once the agent serves: the agent "
    "runs on and its view waits, so this is the work without the view's writes beside it (no QAOA, no view's lag)",
}


def _f(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _met(ok: bool | None) -> str:
    return "not measured" if ok is None else ("**met**" if ok else "**missed**")


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _interval(times: list[float]) -> float | None:
    """The mean time between successive events."""
    return (max(times) - min(times)) / (len(times) - 1) if len(times) > 1 else None


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1000:.0f}"


def render(document: dict[str, Any]) -> str:
    env, paths, met = document["environment"], document["paths"], document["aims_met"]
    emb, slurm = paths.get("embedded"), paths.get("slurm")
    out = [
        "# Small tasks: submit -> result, a burst, the view's lag, the QAOA flow (issue 20)\n",
        f"Measured {env['date']} on {env['cpus_usable']} usable CPUs ({env['cpu_model']}), {env['python']}, "
        f"{env.get('slurm')}, prefect {env['packages'].get('prefect')}, prefect-dask "
        f"{env['packages'].get('prefect-dask')}, dask {env['packages'].get('distributed')}, qiskit-aer "
        f"{env['packages'].get('qiskit-aer')}; commit {str(env['git_commit'])[:10]}"
        + (
            " with other engineers' uncommitted changes in the tree (listed at the end)"
            if any(not p.startswith("benchmarks/") for p in env.get("dirty_paths", []))
            else ""
        )
        + f". Took {document['elapsed_s'] / 60:.0f} minutes. Regenerate: "
        "`.venv/bin/python -m benchmarks.small_tasks.run`.\n",
        f"The task: the native Bell pair on `{document['workload']['device']}` qubits 0 and 1 "
        f"(`harness.circuits.BELL`, OpenQASM 3), {document['workload']['shots']} shots, its own seed. "
        f"{document['sequential']} tasks one at a time measured each way (polling `GET /v1/tasks/{{id}}` every "
        f"{document['poll_s'] * 1000:.0f} ms, and `vqpu_client.Client.wait`, alternating), submit -> result in "
        f"hand; a burst of {document['burst']} submitted at once, first submit -> last result in hand. Beside each "
        "path, just before its stack started, the same tasks in-process through the runner's pipeline "
        "(`read_inputs` + `pipeline.execute` in a warm process): the limit.\n",
        *[f"- **{name}**: {PATH_TEXT[name]}" for name in paths],
        "",
        *[
            f"Added later by `--merge`: {', '.join(m['paths'])} measured {m['environment']['date']} at commit "
            f"{str(m['environment']['git_commit'])[:10]}, {m['sequential']} one at a time each way, bursts of "
            f"{m['burst']}.\n"
            for m in document.get("merged", [])
        ],
        "## The aims\n",
        "| aim (2 cores) | before (issue 20) | now | |",
        "|---|---:|---:|---|",
    ]
    if emb:
        s = emb["summary"]
        out.append(
            f"| tiny task submit -> result, embedded default, median <= {AIMS['sequential_median_s_max']} s | "
            f"{PREVIOUS['sequential_median_s']} s | {_f(s['sequential_poll_s']['median'], 3)} s (polling), "
            f"{_f(s['sequential_wait_s']['median'], 3)} s (`Client.wait`) | {_met(met['embedded_sequential_median'])} |"
        )
        out.append(
            f"| burst of {document['burst']} tiny tasks, embedded default, >= {AIMS['burst_tasks_per_s_min']:.0f} "
            f"tasks/s | {PREVIOUS['burst_tasks_per_s']} | {_f(s['burst']['tasks_per_s'])} | "
            f"{_met(met['embedded_burst'])} |"
        )
    if slurm:
        s = slurm["summary"]
        rate = s["burst"]["tasks_per_s"]
        out.append(
            f"| burst of {document['burst']} tiny tasks, Slurm site, >= {AIMS['burst_tasks_per_s_min']:.0f} tasks/s "
            f"(the issue measured its {PREVIOUS['burst_tasks_per_s']} on the embedded default) | - | {_f(rate)} | "
            f"{_met(met['slurm_burst'])} |"
        )
    qaoa = (emb or {}).get("qaoa")
    if qaoa:
        ref = qaoa.get("reference") or {}
        out.append(
            f"| QAOA flow of the main job, same evaluations, < {AIMS['qaoa_flow_s_max']:.0f} s | "
            f"{PREVIOUS['qaoa_flow_s']:.0f} s | {_f(qaoa['wall_s'], 1)} s ({qaoa['evaluations']} evaluations"
            f"{'' if not ref else ', as the main job' if ref['same_evaluations'] else ', not as the main job'}) | "
            f"{_met(met['qaoa_flow'])} |"
        )
    out.append(
        f"| service <= {AIMS['service_over_direct_max']}x a direct sbatch per circuit, Slurm | "
        f"{PREVIOUS['service_over_direct']}x | see `benchmarks/service_vs_sbatch/REPORT.md` | |"
    )
    out.append("")
    out += _findings(document)
    out += _suggestions(document)
    out += _one_at_a_time(document)
    out += _burst(document)
    out += _view(document)
    if qaoa:
        out += _qaoa(qaoa)
    out += _where(document)
    out += _earlier(document)
    out += _machine(document)
    out.append("Every task's marks, spans and flow run are in `results.json`.")
    return "\n".join(out) + "\n"


def _findings(document: dict[str, Any]) -> list[str]:
    """Where the time goes, read off this run's numbers (medians of the one-at-a-time tasks unless said)."""
    paths = document["paths"]
    out = ["## Where the time goes\n"]
    emb = paths.get("embedded")
    if emb:
        s = emb["summary"]
        seg, lim = s["segments_poll_median_s"], s["limit"]
        steps = s.get("runner_steps_median_s") or {}
        work = sum(steps.get(k) or 0.0 for k in ("parse_s", "transpile_s", "noise_s", "simulate_s"))
        before_runner = sum(seg.get(k) or 0.0 for k in ("submit_http", "dispatch", "claim_to_run_dir"))
        noticed = _mean([r["segments"].get("result_to_completed_report") for r in emb["sequential"]])
        out.append(
            f"- **One at a time, embedded** ({_ms(s['sequential_poll_s']['median'])} ms median by polling, "
            f"{_ms(s['sequential_wait_s']['median'])} ms by `Client.wait`; the limit, in-process, "
            f"{_ms(lim['sequential_s']['median'])} ms with warm caches and "
            f"{_ms(lim['sequential_fresh_caches_s']['median'])} ms with fresh ones): submit, dispatch and the claim "
            f"reaching the agent {_ms(before_runner)} ms; the step through Dask to the forked runner child "
            f"{_ms(seg.get('run_dir_to_runner_start'))} ms; the runner's own time {_ms(seg.get('runner_total'))} ms"
            + (
                f" (its pipeline {_ms(work)} ms: parse {_ms(steps.get('parse_s'))}, transpile "
                f"{_ms(steps.get('transpile_s'))}, noise {_ms(steps.get('noise_s'))}, simulate "
                f"{_ms(steps.get('simulate_s'))}; the other {_ms((steps.get('total_s') or 0.0) - work)} ms are the "
                "runner process's own set-up and end: scratch, limits and its watchdog, result.json, usage.json)"
                if steps
                else ""
            )
            + f"; the agent noticing the runner's end (the Dask future calls it back) and its COMPLETED report "
            f"stored {_ms(seg.get('result_to_completed_report'))} ms (mean {_ms(noticed)} ms); the client's "
            f"20 ms poll and `GET .../result` {_ms(seg.get('completed_to_in_hand'))} ms."
        )
        b = s["burst"]
        slots = 2
        out.append(
            f"- **Burst, embedded** ({_f(b['tasks_per_s'])} tasks/s): with {slots} slots a task holds its slot from "
            f"claim to COMPLETED report, {_ms(b['claim_to_completed_s']['median'])} ms median (mean "
            f"{_ms(b['claim_to_completed_s']['mean'])}), so {slots} slots give about "
            f"{slots / b['claim_to_completed_s']['mean']:.1f} tasks/s; the CPUs were "
            f"{_f(emb['cpu']['burst']['machine_busy_cores'])} of 2 busy, Prefect's server using "
            f"{_prefect_per_task(emb):.3f} CPU s per task"
            + (f" (on the Slurm path, PostgreSQL: {_prefect_per_task(paths['slurm']):.3f})" if "slurm" in paths else "")
            + f": on SQLite the view fell behind by {_f(s['view_lag_s']['burst']['median'], 1)} s (median) in the "
            f"burst and settled {_f(emb.get('view_settled_after_burst_s'), 0)} s after its last result. "
            + _sentence(
                f"with {n} slots {_f(x['summary']['burst']['tasks_per_s'])} tasks/s "
                f"({_f(x['cpu']['burst']['machine_busy_cores'])} cores busy, claim -> COMPLETED "
                f"{_ms(x['summary']['burst']['claim_to_completed_s']['median'])} ms)"
                for n, x in document.get("burst_slots", {}).items()
            )
            + "."
        )
    slurm = paths.get("slurm")
    if slurm:
        s = slurm["summary"]
        cpu = slurm["cpu"]["burst"]
        n = len(slurm["burst"]["tasks"])
        per_task = {k: v / n for k, v in cpu["cpu_s"].items() if k not in ("foreign", "slurm_daemons")}
        out.append(
            f"- **Burst, Slurm** ({_f(s['burst']['tasks_per_s'])} tasks/s): the CPUs were "
            f"{_f(cpu['machine_busy_cores'])} of 2 busy; CPU s per task "
            + ", ".join(f"{k} {v:.3f}" for k, v in per_task.items())
            + f" ({sum(per_task.values()):.3f} in all, so 2 cores cannot pass {2 / sum(per_task.values()):.1f} "
            "tasks/s). Prefect's server is the view's writes (PostgreSQL)."
        )
    away = paths.get("embedded-prefect-away")
    if emb and away:
        se, sa = emb["summary"], away["summary"]
        out.append(
            f"- **The view's cost**: with Prefect stopped (the agent runs on; the view waits) the embedded stack "
            f"took {_ms(sa['sequential_poll_s']['median'])} ms one at a time (with the view "
            f"{_ms(se['sequential_poll_s']['median'])} ms) and passed {_f(sa['burst']['tasks_per_s'])} tasks/s in the "
            f"burst (with the view {_f(se['burst']['tasks_per_s'])})."
        )
    lags = []
    for name, path in paths.items():
        lag = path["summary"]["view_lag_s"]
        if lag["sequential"]["n"]:
            lags.append(
                f"{name} {_f(lag['sequential']['median'], 2)} s one at a time (max {_f(lag['sequential']['max'], 2)}),"
                f" {_f(lag['burst']['median'], 1)} s in the burst (max {_f(lag['burst']['max'], 1)})"
            )
    if lags:
        out.append(f"- **The view's lag** (beside the work, not on its path): {'; '.join(lags)}.")
    qaoa = (emb or {}).get("qaoa")
    if qaoa:
        sp = qaoa["split_s"]
        shots = [t["shots"] for t in qaoa["task_records"]]
        out.append(
            f"- **QAOA** ({_f(qaoa['wall_s'], 1)} s): its {qaoa['tasks']} tasks spent "
            f"{_f(sp['tasks_on_control_plane'])} s from submit to COMPLETED (the runners "
            f"{_f(sp['of_which_runner'])} s of it: {min(shots):,} to {max(shots):,} shots of a "
            f"{len(qaoa['result']['nodes'])}-qubit circuit each), the flow "
            f"itself {_f(sp['before_first_task'])} s before the first task, "
            f"{_f(sp['between_tasks'])} s between tasks and {_f(sp['after_last_task'])} s after the last."
        )
    probe = document.get("probe_first_parse")
    if probe:
        out.append(
            f"- **A side measurement** (`benchmarks/small_tasks/probes.py`): a runner child forked from a parent "
            f"that imported what the warm runner imports pays {_ms(probe['first_parse_in_child_s'])} ms for its first "
            f"OpenQASM 3 parse of the Bell circuit; {_ms(probe['first_parse_in_child_after_parent_parsed_s'])} ms "
            "after the parent parsed once (`runner.circuit.prime()`, which the warm runner now calls before it forks)."
        )
    out.append("")
    return out


def _sentence(parts: Any) -> str:
    text = "; ".join(parts)
    return text[:1].upper() + text[1:]


def _prefect_per_task(path: dict[str, Any]) -> float:
    cpu = path["cpu"]["burst"]["cpu_s"]
    return float(cpu.get("prefect_server", 0.0)) / max(1, len(path["burst"]["tasks"]))


def _suggestions(document: dict[str, Any]) -> list[str]:
    """What changed in the product since the earlier run (beside its numbers, where there is one), and what the
    numbers still point at."""
    paths = document["paths"]
    slurm = paths.get("slurm")
    if not slurm:
        return []
    earlier = (document.get("earlier") or {}).get("paths", {})
    before = earlier.get("slurm") or {}

    def per_task(path: dict[str, Any], part: str) -> float | None:
        cpu = (path.get("cpu") or {}).get("burst")
        return None if not cpu else float(cpu["cpu_s"].get(part, 0.0)) / document["burst"]

    def was(path: str, part: str) -> str:
        value = per_task(earlier.get(path) or {}, part)
        return "" if value is None else f" (earlier {value:.3f})"

    def runner_ms(summary: dict[str, Any] | None) -> str:
        return _ms(((summary or {}).get("burst") or {}).get("segments_median_s", {}).get("runner_total"))

    s = slurm["summary"]
    out = [
        "## What changed since the earlier run, and what is left\n",
        "1. **The warm runner prepares each run before it forks it** (`runner.pipeline.prepare()`, called by "
        "`agent.warm.zygote`): it parses the run's `snapshot.json`, hashes it and builds its Qiskit Target once per "
        "calibration epoch, and the child inherits them (it still checks the snapshot against the task's binding). "
        "It also reads the installed transpiler plugins once (`runner.plugins.confine`), where every child used to "
        "read them again. The Slurm jobs' CPU per task in the burst (Dask worker, warm runner and runner "
        f"children): {_f(per_task(slurm, 'our_slurm_jobs'), 3)} s{was('slurm', 'our_slurm_jobs')}. The runner's "
        f"own time in the burst: {runner_ms(s)} ms median"
        + (f" (earlier {runner_ms(before.get('summary'))} ms)" if before.get("summary") else "")
        + ".",
        "2. **A claim is acknowledged by its RUNNING report** (or by the agent's next heartbeat), not by a "
        "heartbeat sent at once after every claim: one control-plane transaction less per claim. Measured apart "
        "(an interleaved A/B of the two commits, Slurm burst, two rounds), it changed the throughput by no more "
        "than the runs' own spread. The control plane's CPU per task in this Slurm burst: "
        f"{_f(per_task(slurm, 'control_plane'), 3)} s{was('slurm', 'control_plane')}; the agent's "
        f"{_f(per_task(slurm, 'agent'), 3)} s{was('slurm', 'agent')}.",
    ]
    emb = paths.get("embedded")
    if emb:
        lag, lag_before = emb["summary"]["view_lag_s"], ((earlier.get("embedded") or {}).get("summary") or {})
        busy = ((emb.get("agent_status") or {}).get("prefect") or {}).get("busy_answers")
        line = (
            "3. **The embedded Prefect (SQLite) writes its events once every 5 s** "
            "(`PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE=1000`, harness.prefect_server), not every 20 "
            "events: SQLite has one writer, and each of the event persister's writes held a flow run being created "
            "by ~2 s (a 503 to the view, which then slows down). The view's lag one at a time, embedded: "
            f"{_f(lag['sequential']['median'], 2)} s median, max {_f(lag['sequential']['max'], 1)}"
        )
        if lag_before:
            before_lag = lag_before["view_lag_s"]["sequential"]
            line += f" (earlier {_f(before_lag['median'], 2)} s, max {_f(before_lag['max'], 1)})"
        line += f"; settled {_f(emb.get('view_settled_after_burst_s'), 0)} s after the burst's last result"
        if busy is not None:
            line += f"; Prefect answered the view busy {busy} times"
        out.append(line + ".")
    cpu = slurm["cpu"]["burst"]
    n = len(slurm["burst"]["tasks"])
    parts = {k: v / n for k, v in cpu["cpu_s"].items() if k not in ("foreign", "slurm_daemons")}
    total = sum(parts.values())
    biggest = sorted(parts.items(), key=lambda kv: -kv[1])
    out.append(
        f"4. **What is left: the burst on the Slurm site is CPU-bound** ({_f(cpu['machine_busy_cores'])} of 2 cores, "
        f"{total:.3f} CPU s per task: " + ", ".join(f"{k} {v:.3f}" for k, v in biggest) + "), so 2 cores cannot "
        f"pass {2 / total:.1f} tasks/s here, however short the latency. Prefect's server is the view's 4 requests "
        "per task. On a site these processes run on separate machines (the runners on compute nodes, Prefect and "
        "the control plane on service hosts), so this is the limit of putting all of them on 2 cores."
    )
    out.append("")
    return out


def _one_at_a_time(document: dict[str, Any]) -> list[str]:
    out = [
        "## (a) One at a time: submit -> result in hand (s)\n",
        "| path | how | n | median | p90 | min | max |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, path in document["paths"].items():
        s = path["summary"]
        for how, key in (
            ("polling every 20 ms", "sequential_poll_s"),
            ("`Client.wait` (event stream)", "sequential_wait_s"),
        ):
            st = s[key]
            out.append(
                f"| {name} | {how} | {st['n']} | {_f(st['median'], 3)} | {_f(st['p90'], 3)} | {_f(st['min'], 3)} | "
                f"{_f(st['max'], 3)} |"
            )
        lim = s["limit"]
        for how, st in (
            ("in-process, warm caches (the limit)", lim["sequential_s"]),
            ("in-process, fresh caches per task", lim["sequential_fresh_caches_s"]),
        ):
            out.append(
                f"| {name} | {how} | {st['n']} | {_f(st['median'], 3)} | {_f(st['p90'], 3)} | {_f(st['min'], 3)} | "
                f"{_f(st['max'], 3)} |"
            )
    identical = all(p["summary"]["counts_identical_to_in_process"] for p in document["paths"].values())
    out += [
        "",
        f"Counts identical to the in-process runs of the same seeds, every task of every path: **{identical}**.",
        "",
    ]
    return out


def _burst(document: dict[str, Any]) -> list[str]:
    out = [
        f"## (b) A burst of {document['burst']} submitted at once\n",
        "| path | tasks/s | wall (s) | submitting took (s) | per task submit -> result, median / p90 (s) | "
        "in-process, 1 process (tasks/s) | in-process, 2 processes (tasks/s) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, path in document["paths"].items():
        b, lim = path["summary"]["burst"], path["summary"]["limit"]
        out.append(
            f"| {name} | **{_f(b['tasks_per_s'])}** | {_f(b['wall_s'])} | {_f(b['submit_s'])} | "
            f"{_f(b['per_task_e2e_s']['median'])} / {_f(b['per_task_e2e_s']['p90'])} | "
            f"{_f(lim['burst_one_process_tasks_per_s'], 0)} | {_f(lim['burst_two_processes_tasks_per_s'], 0)} |"
        )
    for n, extra in document.get("burst_slots", {}).items():
        b = extra["summary"]["burst"]
        out.append(
            f"| embedded, {n} slots (`LocalStack(slots={n})`) | **{_f(b['tasks_per_s'])}** | {_f(b['wall_s'])} | "
            f"{_f(b['submit_s'])} | {_f(b['per_task_e2e_s']['median'])} / {_f(b['per_task_e2e_s']['p90'])} | | |"
        )
    out += [
        "",
        "Inside the burst (medians over its tasks; a task waits for a slot in *dispatch*):\n",
        "| path | " + " | ".join(SHORT[k] for k in SEGMENTS) + " | claim -> COMPLETED | claimed at once, most | "
        "runners at once, most | runners' own time, sum (s) |",
        "|---|" + "---:|" * (len(SEGMENTS) + 4),
    ]
    rows = [(name, path["summary"]) for name, path in document["paths"].items()]
    rows += [(f"embedded, {n} slots", extra["summary"]) for n, extra in document.get("burst_slots", {}).items()]
    for name, summary in rows:
        b = summary["burst"]
        seg = b["segments_median_s"]
        out.append(
            f"| {name} | "
            + " | ".join(_f(seg.get(k), 3) for k in SEGMENTS)
            + f" | {_f(b['claim_to_completed_s']['median'], 3)} | {b['claimed_at_once_max']} | "
            f"{b['runners_at_once_max']} | {_f(b['runner_busy_s'], 1)} |"
        )
    out.append("")
    return out


def _view(document: dict[str, Any]) -> list[str]:
    out = [
        "## (d) The view's lag: COMPLETED report -> the flow run Completed in Prefect (s)\n",
        "| path | one at a time: median / max | burst: median / max | the view settled, after the burst's last "
        "result (s) | tasks Prefect shows Completed |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, path in document["paths"].items():
        s = path["summary"]
        lag = s["view_lag_s"]
        n = len(path["sequential"]) + len(path["burst"]["tasks"])
        out.append(
            f"| {name} | {_f(lag['sequential']['median'], 3)} / {_f(lag['sequential']['max'], 3)} | "
            f"{_f(lag['burst']['median'], 2)} / {_f(lag['burst']['max'], 2)} | "
            f"{_f(path.get('view_settled_after_burst_s'), 1)} | {s['view_shown']} of {n} |"
        )
    for k, extra in document.get("burst_slots", {}).items():
        lag = extra["summary"]["view_lag_s"]
        out.append(
            f"| embedded, {k} slots | - | {_f(lag['median'], 2)} / {_f(lag['max'], 2)} | "
            f"{_f(extra.get('view_settled_after_burst_s'), 1)} | |"
        )
    out.append("")
    return out


def _qaoa(qaoa: dict[str, Any]) -> list[str]:
    split, ref, r = qaoa["split_s"], qaoa.get("reference"), qaoa["result"]
    same = (
        "no reference run to compare with"
        if not ref
        else f"the main job's last committed run made {ref['evaluations']} evaluations to gamma {ref['gammas']}, "
        f"beta {ref['betas']}: {'the same' if ref['same_evaluations'] and ref['same_optimum'] else 'NOT the same'}"
    )
    return [
        "## (e) The QAOA flow of the main job, on the embedded stack\n",
        f"`flows.qaoa.qaoa_maxcut()` with its defaults (as `scripts/demo.sh` runs it): **{_f(qaoa['wall_s'], 1)} s** "
        f"for {qaoa['evaluations']} evaluations and 2 final measurements ({qaoa['tasks']} vQPU tasks), gamma "
        f"{r['gammas']}, beta {r['betas']} ({same}).\n",
        "| where the flow's time went | s |",
        "|---|---:|",
        f"| before the first task (snapshots, graph, compile, the flow run) | {_f(split['before_first_task'])} |",
        f"| its tasks on the control plane, submit -> COMPLETED, summed | {_f(split['tasks_on_control_plane'])} |",
        f"| &nbsp;&nbsp;of which queued (submit -> claim) | {_f(split['of_which_queued'])} |",
        f"| &nbsp;&nbsp;of which the runners' own time | {_f(split['of_which_runner'])} |",
        f"| between one task's COMPLETED and the next submit (the client noticing, fetching; Prefect's task runs; "
        f"COBYLA) | {_f(split['between_tasks'])} |",
        f"| after the last task (artifacts, plot) | {_f(split['after_last_task'])} |",
        "",
    ]


def _where(document: dict[str, Any]) -> list[str]:
    out = ["## Where a task's time goes, one at a time (medians, ms)\n"]
    names = list(document["paths"])
    cols = [f"{n}, {how}" for n in names for how in ("polling", "Client.wait")]
    out += ["| span | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for key, text in SEGMENTS.items():
        vals = []
        for n in names:
            s = document["paths"][n]["summary"]
            vals += [_ms(s["segments_poll_median_s"].get(key)), _ms(s["segments_wait_median_s"].get(key))]
        out.append(f"| {text} | " + " | ".join(vals) + " |")
    vals = []
    for n in names:
        s = document["paths"][n]["summary"]
        vals += [_ms(s["sequential_poll_s"]["median"]), _ms(s["sequential_wait_s"]["median"])]
    out.append("| end to end (the medians above need not add up to it) | " + " | ".join(vals) + " |")
    out += ["", "Beside the path (both ways together):\n", "| span | " + " | ".join(names) + " |"]
    out.append("|---|" + "---:|" * len(names))
    for key, text in DETAILS.items():
        out.append(
            f"| {text} | "
            + " | ".join(_ms(document["paths"][n]["summary"]["details_median_s"].get(key)) for n in names)
            + " |"
        )
    out.append(
        "| the agent's part: claim -> COMPLETED report less the runner | "
        + " | ".join(_ms(document["paths"][n]["summary"]["agent_overhead_s"]["median"]) for n in names)
        + " |"
    )
    out.append("")
    return out


def _earlier(document: dict[str, Any]) -> list[str]:
    earlier = document.get("earlier")
    if not earlier:
        return []
    env = earlier["environment"]
    out = [
        f"## Beside an earlier run (commit {str(env['git_commit'])[:10]}, {env['date']}, this machine)\n",
        *(
            [
                "Its tree had uncommitted changes outside benchmarks/ in "
                + ", ".join(f"`{p}`" for p in dirty)
                + " (another engineer's work in progress, measured as it stood).\n"
            ]
            if (dirty := [p for p in env.get("dirty_paths", []) if not p.startswith("benchmarks/")])
            else []
        ),
        "| path | run | one at a time, polling: median (s) | burst (tasks/s) | view's lag one at a time: median / max "
        "(s) | view's lag in the burst: median / max (s) | QAOA flow (s) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, path in document["paths"].items():
        rows = [("earlier", earlier["paths"].get(name)), ("this", path)]
        for label, p in rows:
            if not p:
                continue
            s = p["summary"]
            lag = s["view_lag_s"]
            qaoa = p.get("qaoa_wall_s", (p.get("qaoa") or {}).get("wall_s"))
            out.append(
                f"| {name} | {label} | {_f(s['sequential_poll_s']['median'], 3)} | {_f(s['burst']['tasks_per_s'])} | "
                f"{_f(lag['sequential']['median'], 3)} / {_f(lag['sequential']['max'], 3)} | "
                f"{_f(lag['burst']['median'], 2)} / {_f(lag['burst']['max'], 2)} | {_f(qaoa, 1)} |"
            )
    out.append("")
    return out


def _machine(document: dict[str, Any]) -> list[str]:
    out = ["## The machine\n"]
    for name, path in document["paths"].items():
        quiet = path.get("quiet") or {}
        s = path["summary"]
        n_seq = len(path["sequential"])
        out.append(
            f"- {name}: before it, waited {quiet.get('waited_s', '-')} s for quiet CPUs (found "
            f"{quiet.get('busy_cores', '-')} cores busy: {'quiet' if quiet.get('quiet') else 'NOT quiet'}); other "
            f"work on the CPUs meanwhile (cores): {s['foreign_cores']}; stack start "
            f"{_f(path['stack_startup_s'], 1)} s; exit statuses {path['exit_statuses']}; agent log warnings "
            f"{len(path.get('agent_log_warnings', []))}."
        )
        for phase, tasks in (("sequential", n_seq), ("burst", len(path["burst"]["tasks"]))):
            cpu = path["cpu"][phase]
            ours = ", ".join(
                f"{k} {v / tasks:.3f}" for k, v in cpu["cpu_s"].items() if k not in ("foreign", "slurm_daemons")
            )
            out.append(
                f"  - {phase}: {_f(cpu['machine_busy_cores'])} of 2 cores busy over {_f(cpu['wall_s'], 1)} s; CPU s "
                f"per task: {ours}"
            )
    for n, extra in document.get("burst_slots", {}).items():
        quiet = extra.get("quiet") or {}
        cpu = extra["cpu"]["burst"]
        out.append(
            f"- embedded, {n} slots: found {quiet.get('busy_cores', '-')} cores busy before it "
            f"({'quiet' if quiet.get('quiet') else 'NOT quiet'}); other work meanwhile (cores): "
            f"{extra['summary']['foreign_cores']}; burst: {_f(cpu['machine_busy_cores'])} of 2 cores busy; exit "
            f"statuses {extra['exit_statuses']}."
        )
    others = [p for p in document["environment"].get("dirty_paths", []) if not p.startswith("benchmarks/")]
    if others:
        out.append(
            f"- The tree had uncommitted changes by other engineers in {len(others)} files outside benchmarks/ while "
            "this ran; it measured the tree as it was: " + ", ".join(f"`{p}`" for p in others[:60])
        )
    out.append("")
    return out
