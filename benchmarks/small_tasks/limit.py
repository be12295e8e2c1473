"""The limit: the same tasks run in-process by the runner's pipeline, without any service around it.

`read_inputs(run_dir)` then `pipeline.execute(inputs, caches)`, as the runner does, in a warm process (imports
done, one call made before timing). One at a time with the caches kept across calls (the limit) and with
fresh caches per call (what each forked runner child starts with); the burst in one process, and in two
processes side by side (spawned and warmed before the clock starts), as the two slots of the service have.
"""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from benchmarks.small_tasks.workload import DEVICE, seeds, write_run_dir
from device_registry import catalog


def _execute(run_dir: Path, caches: Any) -> dict[str, Any]:
    from runner import pipeline
    from runner.rundir import read_inputs

    result = pipeline.execute(read_inputs(run_dir), caches)
    return {"counts": dict(result.counts or {}), "total_s": result.timings.total_s}


def _timed(run_dirs: list[Path], fresh_caches: bool = False) -> list[dict[str, Any]]:
    from runner import pipeline

    caches = pipeline.Caches()
    out = []
    for run_dir in run_dirs:
        began = time.perf_counter()
        ran = _execute(run_dir, pipeline.Caches() if fresh_caches else caches)
        out.append({"run_dir": run_dir.name, "e2e_s": time.perf_counter() - began, **ran})
    return out


def _rate(processes: int, tasks: int, wall_s: float) -> dict[str, Any]:
    return {"processes": processes, "tasks": tasks, "wall_s": wall_s, "tasks_per_s": tasks / wall_s}


def _burst_worker(run_dirs: list[str], warm: str, barrier: Barrier, ends: Any) -> None:
    from runner import pipeline

    caches = pipeline.Caches()
    _execute(Path(warm), caches)
    barrier.wait()
    for run_dir in run_dirs:
        _execute(Path(run_dir), caches)
    ends.put(time.time())


def _burst_in_processes(run_dirs: list[Path], warm: Path, processes: int) -> dict[str, Any]:
    """`processes` warm processes share the burst (round robin); from the moment all are warm to the last done."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes + 1)
    ends = context.Queue()
    shares = [[str(d) for d in run_dirs[i::processes]] for i in range(processes)]
    workers = [
        context.Process(target=_burst_worker, args=(share, str(warm), barrier, ends), daemon=True) for share in shares
    ]
    for w in workers:
        w.start()
    barrier.wait(timeout=300)
    began = time.time()
    finished = [ends.get(timeout=600) for _ in workers]
    for w in workers:
        w.join(timeout=30)
    return _rate(processes, len(run_dirs), max(finished) - began)


def measure(work: Path, sequential: int, burst: int) -> dict[str, Any]:
    """One circuit at a time (`sequential` of them, each way) and `burst` as fast as possible."""
    snapshot = catalog.load(DEVICE)
    warm = write_run_dir(work / "warmup", snapshot, seeds("warmup", 1)[0])
    poll_dirs = [write_run_dir(work / f"poll-{s}", snapshot, s) for s in seeds("poll", sequential)]
    wait_dirs = [write_run_dir(work / f"wait-{s}", snapshot, s) for s in seeds("wait", sequential)]
    burst_dirs = [write_run_dir(work / f"burst-{s}", snapshot, s) for s in seeds("burst", burst)]
    began = time.perf_counter()
    _timed([warm])  # imports Qiskit and Aer here, before any clock
    import_s = time.perf_counter() - began
    one_by_one = _timed(poll_dirs + wait_dirs)
    fresh = _timed(poll_dirs, fresh_caches=True)
    began = time.perf_counter()
    serial = _timed(burst_dirs)
    serial_wall = time.perf_counter() - began
    return {
        "first_call_s": import_s,
        "sequential": one_by_one,
        "sequential_fresh_caches": fresh,
        "burst_one_process": _rate(1, burst, serial_wall),
        "burst_counts": {d["run_dir"]: d["counts"] for d in serial},
        "burst_two_processes": _burst_in_processes(burst_dirs, warm, 2),
    }
