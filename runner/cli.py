"""`python -m runner RUN_DIR`: exit 0 done, 2 invalid payload, 3 simulation error, 1 crash."""

from __future__ import annotations

import argparse
import logging
import time
import traceback
from pathlib import Path

from device_registry import RegistryError
from runner import pipeline
from runner.errors import InvalidPayload, RunnerError
from runner.rundir import read_inputs
from vqpu_protocol.codes import ErrorCode, ExitCode
from vqpu_protocol.errors import ErrorDocument
from vqpu_protocol.rundir import LOG_FILE, write_error, write_result

log = logging.getLogger("runner")


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(prog="python -m runner", description="Execute one vQPU run directory.")
    parser.add_argument("run_dir", type=Path, help="directory holding task.json and snapshot.json")
    args = parser.parse_args(argv)
    run_dir: Path = args.run_dir
    handler = _log_to(run_dir)
    try:
        return _run(run_dir, started)
    finally:
        if handler is not None:
            log.removeHandler(handler)
            handler.close()


def _run(run_dir: Path, started: float) -> int:
    try:
        inputs = read_inputs(run_dir)
        log.info(
            "task %s attempt %s on %s epoch %s",
            inputs.task.task_id,
            inputs.task.attempt,
            inputs.snapshot.device_id,
            inputs.snapshot.epoch,
        )
        result = pipeline.execute(inputs, pipeline.Caches(), started)
    except RegistryError as exc:  # the registry's own errors end here, as the typed error they are
        return _failed(run_dir, InvalidPayload(ErrorCode.INVALID_SNAPSHOT, f"unusable snapshot: {exc}"))
    except RunnerError as exc:
        return _failed(run_dir, exc)
    except Exception as exc:
        log.error("runner crashed:\n%s", traceback.format_exc())
        crash = ErrorDocument(code=ErrorCode.RUNNER_CRASH, message=f"{type(exc).__name__}: {exc}"[:4096])
        _report(run_dir, crash)
        return ExitCode.CRASH
    write_result(run_dir, result)
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
