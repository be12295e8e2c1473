"""The one-job-per-task path two ways on the same Slurm: the agent's `sbatch` adapter against psij-python.

    pip install psij-python==0.9.11   # not a dependency of the project: only this comparison needs it
    python -m benchmarks.scheduler_latency.run [--jobs 10] [--cancels 3] [--out DIR]

Both run the same job, `python -m runner RUN_DIR` on a native Bell circuit on Fez (1 CPU), one at a time
and alternating between the two, and are timed from the submit call to the moment each says the job
has ended; a long run is then cancelled once it has started, and timed to its terminal state. The
adapter polls one `squeue` every `poll_s` (20 ms) and reads `scontrol` for the record; psij polls `squeue`
at `queue_polling_interval`, whole seconds (1, its fastest; its default is 30). Each result says what
evidence it brings (state, exit code, node, Slurm's own state).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.scheduler.base import Resources
from agent.scheduler.sbatch import SbatchAdapter
from agent.site import SbatchScheduler
from benchmarks.service_vs_sbatch.run import environment
from device_registry import Snapshot, catalog
from harness.circuits import BELL, busy
from vqpu_protocol.rundir import RESULT_FILE, TaskDocument, write_inputs

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SCHEMA = "vqpu.bench.scheduler_latency/1"
PSIJ_VERSION = "0.9.11"
LONG = busy(10, 40)


def run_dir(work: Path, name: str, circuit: str, snapshot: Snapshot) -> Path:
    path = work / name
    task = TaskDocument.model_validate(
        {
            "schema": "vqpu.task/1",
            "task_id": name,
            "circuit": circuit,
            "dialect": "qasm3" if circuit.startswith("OPENQASM 3") else "qasm2",
            "shots": 1024,
            "seed": 7,
            "snapshot_sha256": snapshot.sha256(),
        }
    )
    write_inputs(path, task, snapshot.canonical_json())
    return path


class Ours:
    name = "sbatch adapter (poll_s 0.02)"

    def __init__(self) -> None:
        settings = SbatchScheduler(kind="sbatch", walltime="00:10:00", poll_s=0.02)
        self.adapter = SbatchAdapter(settings, agent_id="bench-latency", cwd=ROOT)

    async def job(self, path: Path) -> dict[str, Any]:
        t0 = time.perf_counter()
        handle = await self.adapter.submit(path, Resources(cpus=1))
        t_sub = time.perf_counter() - t0
        ev = await self.adapter.wait(handle)
        return {
            "submit_call_s": t_sub,
            "terminal_seen_s": time.perf_counter() - t0,
            "state": str(ev.state),
            "exit_code": ev.exit_code,
            "node": ev.node,
            "scheduler_state": ev.scheduler_state,
        }

    async def cancel(self, path: Path) -> dict[str, Any]:
        handle = await self.adapter.submit(path, Resources(cpus=1))
        await _started(path)
        t0 = time.perf_counter()
        await self.adapter.cancel(handle)
        ev = await self.adapter.wait(handle)
        return {"cancel_to_terminal_s": time.perf_counter() - t0, "state": str(ev.state), "exit_code": ev.exit_code}


class Psij:
    name = f"psij-python {PSIJ_VERSION} (queue_polling_interval 1 s)"

    def __init__(self, work: Path) -> None:
        import psij
        from psij.executors.batch.slurm import SlurmExecutorConfig

        self.psij = psij
        config = SlurmExecutorConfig(work_directory=work, queue_polling_interval=1, initial_queue_polling_delay=0)
        self.executor = psij.JobExecutor.get_instance("slurm", config=config)

    def _spec(self, path: Path) -> Any:
        p = self.psij
        return p.Job(
            p.JobSpec(
                executable=sys.executable,
                arguments=["-m", "runner", str(path)],
                directory=ROOT,
                resources=p.ResourceSpecV1(process_count=1),
                attributes=p.JobAttributes(queue_name="debug", duration=timedelta(minutes=10)),
            )
        )

    async def job(self, path: Path) -> dict[str, Any]:
        job = self._spec(path)
        t0 = time.perf_counter()
        self.executor.submit(job)
        t_sub = time.perf_counter() - t0
        status = await asyncio.to_thread(job.wait)
        return {
            "submit_call_s": t_sub,
            "terminal_seen_s": time.perf_counter() - t0,
            "state": str(status.state),
            "exit_code": status.exit_code,
            "node": None,  # JobStatus carries state, time, message, exit code and metadata (None here)
            "scheduler_state": None,
        }

    async def cancel(self, path: Path) -> dict[str, Any]:
        job = self._spec(path)
        self.executor.submit(job)
        await _started(path)
        t0 = time.perf_counter()
        job.cancel()
        status = await asyncio.to_thread(job.wait)
        return {
            "cancel_to_terminal_s": time.perf_counter() - t0,
            "state": str(status.state),
            "exit_code": status.exit_code,
        }


async def _started(path: Path, timeout_s: float = 60.0) -> None:
    """The runner is simulating: its log has its first lines (it writes it as it starts)."""
    deadline = time.monotonic() + timeout_s
    while not (path / "runner.log").exists() or (path / "runner.log").stat().st_size == 0:
        if time.monotonic() > deadline:
            raise SystemExit(f"{path} did not start within {timeout_s} s")
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # well into the simulation


def _stats(xs: list[float]) -> dict[str, float]:
    return {"n": len(xs), "median": statistics.median(xs), "min": min(xs), "max": max(xs)}


async def measure(work: Path, jobs: int, cancels: int) -> dict[str, Any]:
    fez = catalog.load("ibm-fez")
    paths = {"ours": Ours(), "psij": Psij(work / "psij")}
    out: dict[str, Any] = {k: {"name": p.name, "jobs": [], "cancels": []} for k, p in paths.items()}
    for i in range(jobs + 1):  # job 0 is a warm-up of each, reported apart
        for key in ("ours", "psij") if i % 2 == 0 else ("psij", "ours"):
            path = run_dir(work, f"{key}-bell-{i}", BELL, fez)
            record = await paths[key].job(path)
            result = path / RESULT_FILE
            record["result"] = result.exists()
            if not record["result"]:
                raise SystemExit(f"{key} job {i} left no {RESULT_FILE} in {path}: {record}")
            record["runner_total_s"] = json.loads(result.read_text())["timings"]["total_s"]
            out[key]["jobs"].append(record)
    for i in range(cancels):
        for key in ("ours", "psij"):
            out[key]["cancels"].append(await paths[key].cancel(run_dir(work, f"{key}-long-{i}", LONG, fez)))
    for key in paths:
        timed = out[key]["jobs"][1:]
        out[key]["summary"] = {
            "submit_call_s": _stats([j["submit_call_s"] for j in timed]),
            "terminal_seen_s": _stats([j["terminal_seen_s"] for j in timed]),
            "beyond_runner_s": _stats([j["terminal_seen_s"] - j["runner_total_s"] for j in timed]),
            "cancel_to_terminal_s": _stats([c["cancel_to_terminal_s"] for c in out[key]["cancels"]]),
            "all_completed": all(j["result"] and j["exit_code"] == 0 for j in timed),
        }
    return out


def render(doc: dict[str, Any]) -> str:
    ours, psij = doc["paths"]["ours"], doc["paths"]["psij"]
    env = doc["environment"]
    rows = [
        ("submit call, median (s)", "submit_call_s"),
        ("submit -> job seen ended, median (s)", "terminal_seen_s"),
        ("the same, minus the runner's own time, median (s)", "beyond_runner_s"),
        ("cancel of a running job -> seen ended, median (s)", "cancel_to_terminal_s"),
    ]
    out = [
        "# One job per task: the agent's sbatch adapter vs. psij-python\n",
        f"Measured {doc['date']} on {env['cpus_usable']} CPUs, {env['slurm']}, psij-python {PSIJ_VERSION}, "
        f"commit {str(env['git_commit'])[:10]}{' (dirty)' if env['git_dirty'] else ''}. Regenerate: "
        "`pip install psij-python==0.9.11 && python -m benchmarks.scheduler_latency.run`.\n",
        f"The same job both ways: `python -m runner RUN_DIR` on a native Bell circuit on Fez, 1 CPU, "
        f"{doc['jobs']} jobs each, one at a time, alternating (after one warm-up each); then {doc['cancels']} "
        "cancels each of a 10-20 s run, 1 s after it started.\n",
        f"| | {ours['name']} | {psij['name']} |",
        "|---|---:|---:|",
    ]
    for text, key in rows:
        out.append(f"| {text} | {ours['summary'][key]['median']:.3f} | {psij['summary'][key]['median']:.3f} |")
    out.append(
        f"| every job completed with exit 0 | {ours['summary']['all_completed']} | {psij['summary']['all_completed']} |"
    )
    last_ours, last_psij = ours["jobs"][-1], psij["jobs"][-1]
    out.append(
        f"| evidence at the end | state {last_ours['state']}, exit {last_ours['exit_code']}, node "
        f"{last_ours['node']}, Slurm state {last_ours['scheduler_state']} | state {last_psij['state']}, exit "
        f"{last_psij['exit_code']} |"
    )
    out += ["", "Every job's record is in `results.json`.", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scheduler_latency.run", description=__doc__)
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--cancels", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    try:
        import psij  # noqa: F401
    except ImportError:
        parser.error(f"psij-python is not installed: pip install psij-python=={PSIJ_VERSION}")
    with tempfile.TemporaryDirectory(prefix="vqpu-sched-") as tmp:
        paths = asyncio.run(measure(Path(tmp), args.jobs, args.cancels))
    doc = {
        "schema": SCHEMA,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": environment(),
        "jobs": args.jobs,
        "cancels": args.cancels,
        "paths": paths,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(doc, indent=1) + "\n")
    (args.out / "REPORT.md").write_text(render(doc))
    print(render(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
