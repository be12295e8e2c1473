"""`python -m runner RUN_DIR`: exit 0 done, 2 invalid payload, 3 simulation error, 1 crash.

As a process (`process_main`, behind `python -m runner` and `vqpu-runner`) the runner first points
the scratch space of the libraries it loads into its run directory: dill probes the temporary
directory when Qiskit imports it, and stevedore caches Qiskit's plugin list under ~/.cache. So the
process touches no file outside its run directory but the installed code it imports; that is why
Qiskit is imported only after that (in `_run`), never when this module is. It also keeps itself to
Qiskit's and Aer's own transpiler plugins (runner.plugins). Once it has read its task,
a runner process bounds itself by the task's `limits` (runner.limits: a wall-time watchdog, a memory
rlimit), and as it ends it writes what it used (runner.usage: usage.json); `main`, a run inside the
caller's process, leaves the caller's process alone and accounts for nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import traceback
from pathlib import Path

from device_registry import RegistryError
from runner import limits, plugins, usage
from runner.errors import InvalidPayload, RunnerError, SimulationFailed
from runner.rundir import read_inputs
from vqpu_protocol.codes import ErrorCode, ExitCode
from vqpu_protocol.errors import ErrorDocument
from vqpu_protocol.rundir import LOG_FILE, SCRATCH_DIR, ResultDocument, write_error, write_result

log = logging.getLogger("runner")


def process_main(argv: list[str] | None = None) -> int:
    """The entry point of a runner process: scratch space confined to the run directory, then the run."""
    started = time.perf_counter()
    # Whatever this process creates (log, scratch, result) is the run's owner's alone, wherever it was started.
    os.umask(0o077)
    run_dir = _parse(argv)
    if run_dir.is_dir():
        for name, variable in (("tmp", "TMPDIR"), ("cache", "XDG_CACHE_HOME")):
            path = run_dir / SCRATCH_DIR / name
            path.mkdir(parents=True, exist_ok=True)
            os.environ[variable] = str(path)
    plugins.confine()
    return _logged_run(run_dir, started, bounded=True)


def main(argv: list[str] | None = None) -> int:
    """One run, in this process (its environment untouched, no limits set on it)."""
    started = time.perf_counter()
    return _logged_run(_parse(argv), started, bounded=False)


def _logged_run(run_dir: Path, started: float, *, bounded: bool) -> int:
    handler = _log_to(run_dir)
    done: list[ResultDocument] = []
    try:
        return _run(run_dir, started, bounded, done)
    finally:
        if bounded and run_dir.is_dir():  # a process accounts for itself (usage.json), whatever the outcome
            gpu_s = next((r.timings.simulate_s for r in done if r.provenance.device == "GPU"), None)
            usage.record(run_dir, usage.own(time.perf_counter() - started, gpu_s))
        if handler is not None:
            log.removeHandler(handler)
            handler.close()


def _parse(argv: list[str] | None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m runner", description="Execute one vQPU run directory.")
    parser.add_argument("run_dir", type=Path, help="directory holding task.json and snapshot.json")
    run_dir: Path = parser.parse_args(argv).run_dir
    return run_dir


def _run(run_dir: Path, started: float, bounded: bool, done: list[ResultDocument]) -> int:
    from runner import pipeline  # Qiskit and Aer: loaded once the scratch space is confined

    memory_bytes: int | None = None
    try:
        # A process keeps what it parsed and built (in a warm runner's child: what its parent prepared); a run
        # inside the caller's process starts afresh and leaves nothing behind.
        caches = pipeline.PROCESS if bounded else pipeline.Caches()
        inputs = read_inputs(run_dir, caches.snapshots)
        log.info(
            "task %s attempt %s on %s epoch %s",
            inputs.task.task_id,
            inputs.task.attempt,
            inputs.snapshot.device_id,
            inputs.snapshot.epoch,
        )
        if bounded:
            memory_bytes = inputs.task.limits.memory_bytes
            limits.enforce(run_dir, inputs.task.limits, time.perf_counter() - started)
        result = pipeline.execute(inputs, caches, started)
    except RegistryError as exc:  # the registry's own errors end here, as the typed error they are
        return _failed(run_dir, InvalidPayload(ErrorCode.INVALID_SNAPSHOT, f"unusable snapshot: {exc}"))
    except RunnerError as exc:
        return _failed(run_dir, exc)
    except MemoryError:  # past the memory limit (runner.limits), or the node's memory is gone
        limit = f"its limit of {memory_bytes} bytes" if memory_bytes is not None else "the memory available"
        detail = {"memory_bytes": memory_bytes}
        return _failed(run_dir, SimulationFailed(ErrorCode.OUT_OF_MEMORY, f"the run needed more than {limit}", detail))
    except Exception as exc:
        log.error("runner crashed:\n%s", traceback.format_exc())
        crash = ErrorDocument(code=ErrorCode.RUNNER_CRASH, message=f"{type(exc).__name__}: {exc}"[:4096])
        _report(run_dir, crash)
        return ExitCode.CRASH
    write_result(run_dir, result)
    done.append(result)
    log.info(
        "done: %s shots, method %s on %s, %.3f s",
        result.shots,
        result.provenance.method,
        result.provenance.device,
        result.timings.total_s,
    )
    return ExitCode.DONE


def _failed(run_dir: Path, exc: RunnerError) -> int:
    log.error("%s: %s", exc.code, exc.message)
    _report(run_dir, exc.to_document())
    return exc.exit_code


def _report(run_dir: Path, error: ErrorDocument) -> None:
    if run_dir.is_dir():
        write_error(run_dir, error)
    else:
        print(f"error: {error.code}: {error.message}", flush=True)


def _log_to(run_dir: Path) -> logging.Handler | None:
    if not run_dir.is_dir():
        return None
    handler = logging.FileHandler(run_dir / LOG_FILE, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler
