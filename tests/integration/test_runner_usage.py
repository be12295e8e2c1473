"""A runner process accounts for what it used (usage.json, for the site's accounting): its wall time, its
CPU time across Aer's threads (core-seconds), its peak memory; a run its watchdog stops is accounted for by
the watchdog. A run inside the caller's process accounts for nothing (its numbers would be the caller's)."""

from __future__ import annotations

import json
import os
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
from vqpu_protocol.codes import ExitCode

MIB = 1024 * 1024
NOISY_14 = qasm2("sx q;\n" * 20 + "measure q -> c;", qubits=14)
LONG = qasm2("sx q;\n" * 50 + "measure q -> c;", qubits=20)


def run_process(run_dir: Path) -> tuple[int, float]:
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "runner", str(run_dir)], cwd=ROOT, capture_output=True, timeout=120)
    return done.returncode, time.monotonic() - began


def usage(run_dir: Path) -> dict[str, Any]:
    assert (run_dir / "usage.json").stat().st_mode & 0o777 == 0o600
    document: dict[str, Any] = json.loads((run_dir / "usage.json").read_text())
    return document


def test_a_finished_run_reports_its_wall_time_cpu_time_and_peak_memory(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    run_dir = make_run_dir(NOISY_14, fez, shots=200)

    code, took = run_process(run_dir)

    assert code == ExitCode.DONE
    used = usage(run_dir)
    result = json.loads((run_dir / "result.json").read_text())
    assert used["measured_by"] == "runner" and used["gpu_s"] is None  # no GPU on this machine
    assert result["timings"]["total_s"] <= used["wall_s"] <= took
    # Aer's simulation is CPU-bound: the process used at least most of the simulate time in CPU.
    assert used["cpu_s"] >= 0.5 * result["timings"]["simulate_s"]
    assert used["cpu_s"] <= (os.cpu_count() or 1) * took + 1.0
    assert 100 * MIB < used["peak_rss_bytes"] < 4096 * MIB  # Qiskit and Aer loaded, a 14-qubit state


def test_a_failed_run_accounts_for_itself_too(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    run_dir = make_run_dir("OPENQASM 2.0; this is not qasm;", fez)

    code, _ = run_process(run_dir)

    assert code == ExitCode.INVALID_PAYLOAD
    assert usage(run_dir)["wall_s"] > 0


def test_a_run_its_watchdog_stops_is_accounted_for_by_the_watchdog(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    run_dir = make_run_dir(LONG, fez, shots=100, limits={"max_runtime_s": 2.0})

    code, _ = run_process(run_dir)

    assert code == ExitCode.SIMULATION_FAILED
    used = usage(run_dir)
    assert 2.0 <= used["wall_s"] < 3.0
    assert used["cpu_s"] is not None and used["cpu_s"] > 0.5  # it simulated until it was stopped
    assert used["peak_rss_bytes"] > 100 * MIB


def test_a_run_inside_the_callers_process_writes_no_account(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    run_dir = make_run_dir(BELL, fez, dialect="qasm3")
    assert main([str(run_dir)]) == ExitCode.DONE
    assert not (run_dir / "usage.json").exists()
