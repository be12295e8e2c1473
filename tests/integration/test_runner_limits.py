"""The runner process bounds itself by its task's `limits` (runner/limits.py): at its wall-time limit its
watchdog writes error.json TIME_LIMIT_EXCEEDED and ends it with exit status 3, even while Aer holds the GIL;
past its memory limit an allocation fails and the run ends OUT_OF_MEMORY, exit 3, while the machine (this
test process) carries on. A run inside the caller's process (`runner.cli.main`) sets no limit on it."""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from device_registry import Snapshot
from harness.circuits import BELL, qasm2
from harness.runner_process import ROOT
from runner.cli import main
from tests.conftest import MakeRunDir
from vqpu_protocol.codes import ErrorCode, ExitCode

MIB = 1024 * 1024
LONG = qasm2("sx q;\n" * 50 + "measure q -> c;", qubits=20)
"""Noisy on Fez: several seconds a shot."""


def runner(run_dir: Path, *prelude: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """`python -m runner RUN_DIR`, after `prelude` lines of Python when given; its exit and how long it took."""
    code = "\n".join([*prelude, "from runner.cli import process_main", "raise SystemExit(process_main())"])
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code, str(run_dir)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    return done, time.monotonic() - began


def error(run_dir: Path) -> dict[str, Any]:
    assert not (run_dir / "result.json").exists()
    document: dict[str, Any] = json.loads((run_dir / "error.json").read_text())
    return document


def test_at_its_limit_a_simulating_runner_writes_time_limit_exceeded_and_exits_3(
    make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    run_dir = make_run_dir(LONG, fez, shots=100, limits={"max_runtime_s": 2.0})

    done, took = runner(run_dir)

    assert done.returncode == ExitCode.SIMULATION_FAILED, done.stderr
    assert took < 2.0 + 5.0, f"the runner took {took:.1f} s"
    written = error(run_dir)
    assert written["code"] == ErrorCode.TIME_LIMIT_EXCEEDED
    assert written["detail"]["limit_s"] == 2.0 and 2.0 <= written["detail"]["used_s"] < 3.0


def test_a_runner_done_within_its_limit_leaves_no_watchdog_behind(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    run_dir = make_run_dir(BELL, fez, dialect="qasm3", limits={"max_runtime_s": 60.0})

    done, _ = runner(run_dir)

    assert done.returncode == 0 and (run_dir / "result.json").is_file()
    match = re.search(r"watchdog (\d+)", (run_dir / "runner.log").read_text())
    assert match is not None
    watchdog = int(match.group(1))
    deadline = time.monotonic() + 2
    while Path(f"/proc/{watchdog}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not Path(f"/proc/{watchdog}").exists(), "the watchdog outlived its runner"


def test_an_allocation_past_the_memory_limit_ends_the_run_out_of_memory_and_spares_the_machine(
    make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    # What the price of a run does not foresee: 2 GiB allocated where the pipeline would simulate.
    run_dir = make_run_dir(BELL, fez, dialect="qasm3", limits={"memory_bytes": 256 * MIB})
    allocate = "import runner.pipeline as p; p.execute = lambda *a, **k: bytearray(2 << 30)"

    done, took = runner(run_dir, allocate)

    assert done.returncode == ExitCode.SIMULATION_FAILED, done.stderr
    written = error(run_dir)
    assert written["code"] == ErrorCode.OUT_OF_MEMORY and written["detail"] == {"memory_bytes": 256 * MIB}
    assert "RLIMIT_DATA" in (run_dir / "runner.log").read_text()
    assert took < 30


def test_an_ideal_statevector_larger_than_the_slot_fails_out_of_memory_at_once(
    make_run_dir: MakeRunDir, fez_ideal: Snapshot
) -> None:
    # 27 qubits: 2 GiB of amplitudes for a slot of 256 MiB.
    run_dir = make_run_dir(qasm2("sx q;\nmeasure q -> c;", qubits=27), fez_ideal, limits={"memory_bytes": 256 * MIB})

    done, took = runner(run_dir)

    assert done.returncode == ExitCode.SIMULATION_FAILED, done.stderr
    assert error(run_dir)["code"] == ErrorCode.OUT_OF_MEMORY
    assert took < 30


def test_a_run_in_the_callers_process_sets_no_limit_on_it(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    run_dir = make_run_dir(BELL, fez, dialect="qasm3", limits={"max_runtime_s": 60.0, "memory_bytes": 1024 * MIB})
    before = resource.getrlimit(resource.RLIMIT_DATA)

    assert main([str(run_dir)]) == 0

    assert resource.getrlimit(resource.RLIMIT_DATA) == before
    assert "watchdog" not in (run_dir / "runner.log").read_text()
