"""Issue 20's small-task aims on this machine: how fast a tiny task comes back, one at a time and in a burst.

    python -m benchmarks.small_tasks.run [--sequential 30] [--burst 200] [--paths embedded,slurm] [--no-qaoa]
                                         [--out DIR] [--workdir DIR]
    python -m benchmarks.small_tasks.run --report-only [--out DIR]

The task: the native Bell pair on Fez's qubits 0 and 1 (harness.circuits.BELL, OpenQASM 3) on `ibm-fez`,
100 shots, its own seed. Two paths, one after the other, each a whole stack started and stopped here:

- embedded: the local stack as `scripts/stack.sh` starts it (harness.stack.LocalStack: control plane on
  SQLite, Prefect on SQLite, one agent on a Dask LocalCluster, its default 2 slots; the Prefect UI off);
- slurm: the same on the `slurm-local` site (SLURMCluster, 1-CPU worker jobs, 2 slots) with Prefect on a
  scratch PostgreSQL database, as benchmarks/service_vs_sbatch starts it.

On each: a few warm-up tasks (not counted), then `--sequential` tasks one at a time measured by polling
`GET /v1/tasks/{id}` every 20 ms and as many through `vqpu_client.Client.wait` (the task's event stream),
alternating, submit -> result in hand; then `--burst` tasks submitted at once (first submit -> last result
in hand; each result fetched as its terminal event arrives); the view's lag (COMPLETED report -> the flow run
Completed in Prefect) of every task, read once the view has settled; on the embedded stack, the QAOA flow of
the main job (flows.qaoa, as scripts/demo.sh runs it after the fidelity experiment). Beside each path, just
before its stack starts, the same tasks in-process through the runner's pipeline (benchmarks.small_tasks.limit):
the limit. Every task's time is split along the control plane's events and its run directory
(benchmarks.service_vs_sbatch.timeline). Before each path it waits for a quiet machine and records who else
used the CPUs meanwhile.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from agent.engine import STATUS_FILE
from benchmarks.runner_overhead import machine
from benchmarks.service_vs_sbatch.cpu import cpu_account, cpu_sample, wait_quiet
from benchmarks.service_vs_sbatch.timeline import read_flow_runs, timeline, wait_view_settled
from benchmarks.small_tasks import limit, probes
from benchmarks.small_tasks.qaoa import run_qaoa
from benchmarks.small_tasks.report import AIMS, PREVIOUS, render
from benchmarks.small_tasks.user import POLL_S, User
from benchmarks.small_tasks.workload import CIRCUIT, DEVICE, DIALECT, SHOTS, seeds
from harness.stack import LocalStack

HERE = Path(__file__).resolve().parent
SCHEMA = "vqpu.bench.small_tasks/1"
WARMUP_TASKS = 3


# --- one path ----------------------------------------------------------------------------------------


def embedded_stack(workdir: Path) -> LocalStack:
    return LocalStack(workdir)


def slurm_stack(workdir: Path) -> LocalStack:
    from benchmarks.service_vs_sbatch.run import Stack

    return Stack(workdir, slots=2)


STACKS: dict[str, Callable[[Path], LocalStack]] = {
    "embedded": embedded_stack,
    "slurm": slurm_stack,
    "embedded-prefect-away": embedded_stack,
}
"""`embedded-prefect-away`: the embedded stack with its Prefect server stopped once the agent serves (the agent
runs on without it, docs/agent.md): what the view's writes to Prefect cost the work on 2 cores."""
AWAY = "-prefect-away"


def run_path(name: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"quiet": wait_quiet(args.quiet_wait) if args.quiet_wait > 0 else None}
    print(f"{name}: the in-process limit ({args.sequential * 2} one at a time, {args.burst} as fast as possible)")
    out["limit"] = limit.measure(work / "limit", args.sequential, args.burst)
    stack = STACKS[name](work / "stack")
    print(f"{name}: starting the stack in {stack.workdir} ...", flush=True)
    began = time.perf_counter()
    stack.start()
    out["stack_startup_s"], out["stack_startup_parts_s"] = time.perf_counter() - began, stack.startup_s
    user = User(stack.url, stack.keys["user"])
    runs = stack.workdir / "runs"
    away = name.endswith(AWAY)
    try:
        if away:
            assert stack.prefect is not None
            out["prefect_stopped"] = stack.prefect.stop()
            print(f"  Prefect stopped (exit {out['prefect_stopped']}); the agent runs on without its view", flush=True)
        out["warmup"] = [user.by_polling(s) for s in seeds("warmup", WARMUP_TASKS)]
        firsts = ", ".join(f"{r['e2e_s']:.2f}" for r in out["warmup"])
        print(f"  warm-up: {firsts} s", flush=True)
        samples = [cpu_sample()]
        sequential: list[dict[str, Any]] = []
        for p, w in zip(seeds("poll", args.sequential), seeds("wait", args.sequential), strict=True):
            sequential += [user.by_polling(p), user.by_client_wait(w)]
        samples.append(cpu_sample())
        out["sequential"] = sequential
        print(f"  one at a time: poll median {_median(sequential, 'poll'):.3f} s, Client.wait median "
              f"{_median(sequential, 'wait'):.3f} s", flush=True)  # fmt: skip
        # The burst starts once the view has shown the tasks before it: its backlog is the burst's own.
        if not away:
            out["view_settled_before_burst_s"] = wait_view_settled(runs, [r["task_id"] for r in sequential])
        samples.append(cpu_sample())
        out["burst"] = user.burst(seeds("burst", args.burst))
        samples.append(cpu_sample())
        print(f"  burst of {args.burst}: {out['burst']['wall_s']:.2f} s, {out['burst']['tasks_per_s']:.2f} tasks/s")
        ids = [r["task_id"] for r in [*out["warmup"], *sequential, *out["burst"]["tasks"]]]
        if not away:
            out["view_settled_after_burst_s"] = wait_view_settled(runs, ids, timeout_s=600)
            print(f"  the view settled {out['view_settled_after_burst_s']} s after the burst's last result", flush=True)
        if name == "embedded" and not args.no_qaoa:
            out["qaoa_quiet"] = wait_quiet(min(args.quiet_wait, 120)) if args.quiet_wait > 0 else None
            print("  the QAOA flow (flows.qaoa.qaoa_maxcut, as the main job runs it) ...", flush=True)
            out["qaoa"] = run_qaoa(stack, user, work / "qaoa")
            print(f"    {out['qaoa']['wall_s']:.1f} s, {out['qaoa']['evaluations']} evaluations", flush=True)
        out["cpu"] = _cpu(stack, {"sequential": (samples[0], samples[1]), "burst": (samples[2], samples[3])})
        enrich([*out["warmup"], *sequential, *out["burst"]["tasks"]], user, stack)
        out["agent_log_warnings"] = agent_warnings(stack)
        out["agent_status"] = agent_status(runs)
        out["site"] = stack.site_path.read_text() if stack.site_path is not None else None
    finally:
        user.close()
        out["exit_statuses"] = stack.stop()
    out["summary"] = summarise(out)
    return out


def agent_status(runs: Path) -> dict[str, Any] | None:
    """The agent's own account of itself (`vqpu-agent status`: its view's backlog and Prefect's busy answers)."""
    try:
        status: dict[str, Any] = json.loads((runs / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return status


def run_slots(slots: int, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The burst alone on an embedded stack with another slot count (LocalStack(slots=N): N Dask workers)."""
    out: dict[str, Any] = {"slots": slots, "quiet": wait_quiet(args.quiet_wait) if args.quiet_wait > 0 else None}
    stack = LocalStack(work / "stack", slots=slots)
    print(f"embedded, {slots} slots: starting the stack in {stack.workdir} ...", flush=True)
    stack.start()
    user = User(stack.url, stack.keys["user"])
    runs = stack.workdir / "runs"
    try:
        warmup = user.burst(seeds("warmup", 2 * slots))  # every worker's warm runner started
        wait_view_settled(runs, [r["task_id"] for r in warmup["tasks"]])
        before = cpu_sample()
        out["burst"] = user.burst(seeds("burst", args.burst))
        after = cpu_sample()
        print(f"  burst of {args.burst}: {out['burst']['wall_s']:.2f} s, {out['burst']['tasks_per_s']:.2f} tasks/s")
        out["view_settled_after_burst_s"] = wait_view_settled(
            runs, [r["task_id"] for r in out["burst"]["tasks"]], timeout_s=600
        )
        out["cpu"] = _cpu(stack, {"burst": (before, after)})
        enrich(out["burst"]["tasks"], user, stack)
        out["agent_log_warnings"] = agent_warnings(stack)
    finally:
        user.close()
        out["exit_statuses"] = stack.stop()
    out["summary"] = {"burst": burst_summary(out["burst"]), "view_lag_s": view_lag(out["burst"]["tasks"])}
    out["summary"]["foreign_cores"] = foreign_cores(out["cpu"])
    return out


def enrich(records: list[dict[str, Any]], user: User, stack: LocalStack) -> None:
    """Each record's time line (benchmarks.service_vs_sbatch.timeline), and where its runner ran."""
    assert stack.prefect is not None
    running = stack.prefect.proc is not None and stack.prefect.proc.poll() is None
    flows = read_flow_runs(stack.prefect, [r["task_id"] for r in records]) if running else {}
    for r in records:
        task = user.task(r["task_id"])
        line = timeline(
            task,
            user.events(r["task_id"]),
            stack.workdir / "runs" / f"{r['task_id']}.{task['attempt']}",
            flows.get(r["task_id"]),
            submit_wall=r["submit_wall"],
            in_hand_wall=r["in_hand_wall"],
        )
        r.update(line, scheduler=task.get("scheduler"))


def agent_warnings(stack: LocalStack) -> list[str]:
    assert stack.agent is not None
    text = stack.agent.log_file.read_text(errors="replace")
    return [line for line in text.splitlines() if " WARNING " in line or " ERROR " in line or "Traceback" in line][:50]


def _cpu(stack: LocalStack, phases: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    """Who used the CPUs in each phase (benchmarks.service_vs_sbatch.cpu)."""
    assert stack.agent is not None and stack.control_plane is not None and stack.control_plane.proc is not None
    assert stack.prefect is not None
    jobs = set(stack.agent_jobs()) if hasattr(stack, "agent_jobs") else set()
    commands = {"prefect_postgres": f"postgres {stack.prefect_database} "} if hasattr(stack, "prefect_database") else {}
    owners: dict[str, Any] = {
        "roots": {"agent": stack.agent.pid, "control_plane": stack.control_plane.proc.pid, "benchmark": os.getpid()},
        "pgroups": {"prefect_server": stack.prefect.pid or -1},
        "jobs": jobs,
        "commands": commands,
    }
    return {phase: cpu_account(a, b, **owners) for phase, (a, b) in phases.items()}


# --- summary -------------------------------------------------------------------------------------------


def stats(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "median": None, "p90": None, "mean": None, "min": None, "max": None}
    p90 = statistics.quantiles(values, n=10, method="inclusive")[8] if len(values) > 1 else values[0]
    return {
        "n": len(values),
        "median": statistics.median(values),
        "p90": p90,
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
    }


def _median(records: list[dict[str, Any]], how: str) -> float:
    values: list[float] = [r["e2e_s"] for r in records if r["how"] == how]
    return statistics.median(values)


def _medians(records: list[dict[str, Any]], field: str) -> dict[str, float | None]:
    keys = list(records[0][field]) if records else []
    out: dict[str, float | None] = {}
    for key in keys:
        values = [r[field][key] for r in records if r[field].get(key) is not None]
        out[key] = statistics.median(values) if values else None
    return out


def most_at_once(records: list[dict[str, Any]], start: str, end: str) -> int:
    edges = sorted(
        [(r["marks"][start], 1) for r in records if r["marks"].get(start) and r["marks"].get(end)]
        + [(r["marks"][end], -1) for r in records if r["marks"].get(start) and r["marks"].get(end)]
    )
    best = now = 0
    for _, step in edges:
        now += step
        best = max(best, now)
    return best


def burst_summary(burst: dict[str, Any]) -> dict[str, Any]:
    tasks = burst["tasks"]
    return {
        "tasks": len(tasks),
        "wall_s": burst["wall_s"],
        "submit_s": burst["submit_s"],
        "tasks_per_s": burst["tasks_per_s"],
        "per_task_e2e_s": stats([r["e2e_s"] for r in tasks]),
        "segments_median_s": _medians(tasks, "segments"),
        "claim_to_completed_s": stats([r["details"]["claim_to_completed"] for r in tasks]),
        "claimed_at_once_max": most_at_once(tasks, "claimed", "completed"),
        "runners_at_once_max": most_at_once(tasks, "runner_start", "result_written"),
        "runner_busy_s": sum(r["segments"]["runner_total"] or 0.0 for r in tasks),
    }


def view_lag(records: list[dict[str, Any]]) -> dict[str, Any]:
    return stats([r["details"]["view_lag"] for r in records if r["details"].get("view_lag") is not None])


def foreign_cores(cpu: dict[str, Any]) -> dict[str, float]:
    return {phase: round(c["cpu_s"].get("foreign", 0.0) / c["wall_s"], 3) for phase, c in cpu.items()}


def summarise(path: dict[str, Any]) -> dict[str, Any]:
    seq, burst, lim = path["sequential"], path["burst"]["tasks"], path["limit"]
    poll = [r for r in seq if r["how"] == "poll"]
    wait = [r for r in seq if r["how"] == "wait"]
    expected = {int(r["run_dir"].split("-")[1]): r["counts"] for r in lim["sequential"]}
    expected |= {int(name.split("-")[1]): counts for name, counts in lim["burst_counts"].items()}
    mismatched = [r["task_id"] for r in [*seq, *burst] if expected.get(r["seed"]) != r["counts"]]
    return {
        "sequential_poll_s": stats([r["e2e_s"] for r in poll]),
        "sequential_wait_s": stats([r["e2e_s"] for r in wait]),
        "segments_poll_median_s": _medians(poll, "segments"),
        "segments_wait_median_s": _medians(wait, "segments"),
        "details_median_s": _medians(seq, "details"),
        "agent_overhead_s": stats([r["agent_overhead_s"] for r in seq if r["agent_overhead_s"] is not None]),
        "polls_per_task": statistics.fmean(r["polls"] for r in poll) if poll else None,
        "runner_steps_median_s": _medians([r for r in seq if r.get("runner_timings")], "runner_timings"),
        "burst": burst_summary(path["burst"]),
        "view_lag_s": {"sequential": view_lag(seq), "burst": view_lag(burst)},
        "view_shown": sum(r.get("flow_run_state") == "COMPLETED" for r in [*seq, *burst]),
        "limit": {
            "sequential_s": stats([r["e2e_s"] for r in lim["sequential"]]),
            "sequential_fresh_caches_s": stats([r["e2e_s"] for r in lim["sequential_fresh_caches"]]),
            "burst_one_process_tasks_per_s": lim["burst_one_process"]["tasks_per_s"],
            "burst_two_processes_tasks_per_s": lim["burst_two_processes"]["tasks_per_s"],
        },
        "counts_identical_to_in_process": not mismatched,
        "counts_mismatched": mismatched,
        "foreign_cores": foreign_cores(path["cpu"]),
    }


def aims_met(document: dict[str, Any]) -> dict[str, bool | None]:
    paths = document["paths"]
    emb, slurm = paths.get("embedded"), paths.get("slurm")
    qaoa = (emb or {}).get("qaoa")

    def burst(path: dict[str, Any] | None) -> bool | None:
        return None if path is None else path["summary"]["burst"]["tasks_per_s"] >= AIMS["burst_tasks_per_s_min"]

    sequential = None if emb is None else emb["summary"]["sequential_poll_s"]["median"]
    return {
        "embedded_sequential_median": None if sequential is None else sequential <= AIMS["sequential_median_s_max"],
        "embedded_burst": burst(emb),
        "slurm_burst": burst(slurm),
        "qaoa_flow": None if qaoa is None else qaoa["wall_s"] < AIMS["qaoa_flow_s_max"],
    }


# --- environment and main --------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    env = machine.describe()
    for dist in ("prefect", "prefect-dask", "dask", "distributed", "dask-jobqueue", "httpx", "fastapi", "sqlalchemy"):
        with contextlib.suppress(PackageNotFoundError):
            env["packages"][dist] = version(dist)
    proc = subprocess.run(["sinfo", "-V"], capture_output=True, text=True, check=False)
    env["slurm"] = proc.stdout.strip() or None
    env["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    status = subprocess.run(["git", "status", "--porcelain"], cwd=HERE, capture_output=True, text=True, check=False)
    env["dirty_paths"] = [line[3:] for line in status.stdout.splitlines() if line[3:].strip()]
    return env


BURST_FIELDS = ("seed", "task_id", "e2e_s", "counts", "marks", "flow_run_state")
"""What results.json keeps of each burst task once the burst is summarised (its spans follow from its marks)."""


def dumps(document: dict[str, Any]) -> str:
    """results.json: floats rounded, burst tasks cut to BURST_FIELDS, each task record on one line."""
    lines: list[str] = []

    def shape(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: shape(v, k) for k, v in value.items()}
        if isinstance(value, list) and value and all(isinstance(v, dict) and "task_id" in v for v in value):
            records = [{k: r[k] for k in BURST_FIELDS if k in r} for r in value] if key == "tasks" else value
            lines.extend(json.dumps(rounded(r), separators=(",", ":")) for r in records)
            return [f"@@{len(lines) - len(records) + i}@@" for i in range(len(records))]
        if isinstance(value, list):
            return [shape(v) for v in value]
        return value

    text = json.dumps(rounded(shape(document)), indent=1)
    return re.sub(r'"@@(\d+)@@"', lambda m: lines[int(m.group(1))], text) + "\n"


def rounded(value: Any) -> Any:
    """Floats to 0.1 ms for wall-clock times (seconds since the epoch) and to 1 us for the rest: the file stays
    a few MB smaller and nothing the report shows changes."""
    if isinstance(value, float):
        return round(value, 4 if value > 1e9 else 6)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def earlier_summary(other: dict[str, Any]) -> dict[str, Any]:
    """What the report needs of an earlier run: where and when, and each path's summary (no task records)."""
    if other.get("schema") != SCHEMA:
        raise SystemExit(f"--earlier: not a {SCHEMA} document")
    return {
        "environment": other["environment"],
        "paths": {
            name: {
                "summary": path["summary"],
                "qaoa_wall_s": (path.get("qaoa") or {}).get("wall_s"),
                "cpu": path.get("cpu"),
            }
            for name, path in other["paths"].items()
        },
        "burst_slots": {n: {"summary": extra["summary"]} for n, extra in other.get("burst_slots", {}).items()},
    }


@contextlib.contextmanager
def workspace(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    yield Path(tempfile.mkdtemp(prefix="vqpu-small-"))  # kept: the stacks' logs are worth reading afterwards


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.small_tasks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sequential", type=int, default=30, help="tasks one at a time, each way (default 30)")
    parser.add_argument("--burst", type=int, default=200, help="tasks submitted at once (default 200)")
    parser.add_argument("--paths", default="embedded,slurm", help="which stacks, comma-separated (default both)")
    parser.add_argument("--no-qaoa", action="store_true", help="skip the QAOA flow on the embedded stack")
    parser.add_argument(
        "--burst-slots",
        default="4,8",
        help="after the paths, the burst alone on embedded stacks with these slot counts (default 4,8; '' for none)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=900.0,
        help="before each path, wait up to this many seconds for the CPUs to be nearly idle (0: do not wait)",
    )
    parser.add_argument("--out", type=Path, default=HERE, help="where results.json and REPORT.md go")
    parser.add_argument("--workdir", type=Path, default=None, help="stacks and run dirs (default: a new temp dir)")
    parser.add_argument("--report-only", action="store_true", help="redraw REPORT.md from --out's results.json")
    parser.add_argument(
        "--earlier",
        type=Path,
        default=None,
        help="an earlier results.json of this benchmark on this machine: its environment and summaries are kept "
        "under `earlier` and the report sets them beside this run's",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="add the paths and slot counts measured now to --out's results.json (replacing those of the same name)",
    )
    args = parser.parse_args(argv)
    if args.report_only:
        saved: dict[str, Any] = json.loads((args.out / "results.json").read_text())
        (args.out / "REPORT.md").write_text(render(saved))
        print(f"wrote {args.out / 'REPORT.md'}")
        return 0
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    if unknown := [p for p in paths if p not in STACKS]:
        parser.error(f"--paths: unknown {unknown}; known: {sorted(STACKS)}")
    if args.sequential < 2 or args.burst < 1:
        parser.error("--sequential must be at least 2 and --burst at least 1")
    # Prefect reads its logging level once, at import: keep the QAOA flow's per-task lines out of the output.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    began = time.perf_counter()
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "environment": environment(),
        "aims": AIMS,
        "previous": PREVIOUS,
        "workload": {"device": DEVICE, "circuit": CIRCUIT, "dialect": DIALECT, "shots": SHOTS},
        "sequential": args.sequential,
        "burst": args.burst,
        "poll_s": POLL_S,
        "paths": {},
    }
    earlier = args.out / "results.json"
    if args.merge and earlier.exists():  # the paths measured now join (or replace) those of the earlier run
        measured_now = document
        document = json.loads(earlier.read_text())
        document.setdefault("merged", []).append(
            {k: measured_now[k] for k in ("environment", "sequential", "burst")} | {"paths": paths}
        )
    document.setdefault("burst_slots", {})
    if args.earlier is not None:
        document["earlier"] = earlier_summary(json.loads(args.earlier.read_text()))
    with workspace(args.workdir) as work:
        print(f"work directory: {work}", flush=True)
        document.setdefault("workdir", str(work))
        for name in paths:
            document["paths"][name] = run_path(name, work / name, args)
        for n in [int(n) for n in args.burst_slots.split(",") if n.strip()]:
            document["burst_slots"][str(n)] = run_slots(n, work / f"slots-{n}", args)
    document["probe_first_parse"] = probes.measure()
    document["elapsed_s"] = document.get("elapsed_s", 0.0) + time.perf_counter() - began
    document["aims_met"] = aims_met(document)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(dumps(document))
    (args.out / "REPORT.md").write_text(render(document))
    print(render(document))
    print(f"wrote {args.out / 'results.json'} and {args.out / 'REPORT.md'}")
    identical = all(p["summary"]["counts_identical_to_in_process"] for p in document["paths"].values())
    if not identical:
        print("counts differ from the in-process runs for some tasks: see results.json", file=sys.stderr)
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
