"""`python -m runner RUN_DIR`: exit 0 done, 2 invalid payload, 3 simulation error, 1 crash."""

from __future__ import annotations

import argparse
import logging
import time
import traceback
from pathlib import Path

from runner import pipeline
from runner.errors import RunnerError
from runner.noise import NoiseCache
from runner.rundir import LOG_FILE, read_inputs, write_error, write_result

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
        result = pipeline.execute(inputs, NoiseCache(), started)
    except RunnerError as exc:
        log.error("%s: %s", exc.code, exc.message)
        _report(run_dir, exc.to_dict())
        return exc.exit_code
    except Exception as exc:
        log.error("runner crashed:\n%s", traceback.format_exc())
        _report(run_dir, {"code": "RUNNER_CRASH", "message": f"{type(exc).__name__}: {exc}", "detail": None})
        return 1
    write_result(run_dir, result)
    prov = result["provenance"]
    log.info(
        "done: %s shots, method %s on %s, %.3f s",
        result["shots"],
        prov["method"],
        prov["device"],
        result["timings"]["total_s"],
    )
    return 0


def _report(run_dir: Path, error: dict[str, object]) -> None:
    if run_dir.is_dir():
        write_error(run_dir, error)
    else:
        print(f"error: {error['code']}: {error['message']}", flush=True)


def _log_to(run_dir: Path) -> logging.Handler | None:
    if not run_dir.is_dir():
        return None
    handler = logging.FileHandler(run_dir / LOG_FILE, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler
