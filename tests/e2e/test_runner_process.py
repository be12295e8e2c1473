"""`python -m runner RUN_DIR` in a fresh interpreter, as a scheduler job starts it: result.json,
exit statuses, and hermeticity (no socket opened; runs with no network at all)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from device_registry import Snapshot
from harness.circuits import qasm2
from harness.runner_process import ROOT, run_runner_process
from runner.simulate import gpu_available
from tests.conftest import MakeRunDir

BELL = qasm2("sx q[0];\ncz q[0],q[1];\nsx q[1];\nmeasure q -> c;")


def _result(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())


def _error(run_dir: Path) -> dict:
    return json.loads((run_dir / "error.json").read_text())


def test_a_run_writes_a_complete_result_with_provenance(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    run_dir = make_run_dir(BELL, fez, shots=2000, seed=5, task_id="t-42", attempt=3)
    proc = run_runner_process(run_dir)
    assert proc.returncode == 0, proc.stderr
    result = _result(run_dir)
    assert result["schema"] == "vqpu.result/1"
    assert sum(result["counts"].values()) == result["shots"] == 2000
    assert set(result["timings"]) == {"parse_s", "noise_s", "transpile_s", "simulate_s", "total_s"}
    prov = result["provenance"]
    assert (prov["task_id"], prov["attempt"], prov["device_id"], prov["seed"]) == ("t-42", 3, "ibm-fez", 5)
    assert prov["snapshot_sha256"] == fez.sha256()
    assert prov["noise_model"] == "paper" and prov["device"] == "CPU" and prov["method"] == "density_matrix"
    assert prov["qiskit"] and prov["qiskit_aer"] and prov["hostname"]
    assert not (run_dir / "error.json").exists()
    assert "done" in (run_dir / "runner.log").read_text()


@pytest.mark.skipif(gpu_available(), reason="this machine has a usable GPU, so the request cannot fail")
def test_asking_for_a_gpu_on_a_cpu_node_is_a_simulation_error_not_a_silent_cpu_run(
    make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    run_dir = make_run_dir(BELL, fez, options={"device": "GPU"})
    proc = run_runner_process(run_dir)
    assert proc.returncode == 3
    assert _error(run_dir)["code"] == "GPU_UNAVAILABLE"


def test_a_missing_run_dir_exits_2_with_a_message(tmp_path: Path) -> None:
    proc = run_runner_process(tmp_path / "nowhere")
    assert proc.returncode == 2
    assert "MISSING_FILE" in proc.stdout


_NO_SOCKETS = (
    "import runpy, sys\n"
    "def guard(event, args):\n"
    "    if event.startswith('socket.'):\n"
    "        raise RuntimeError('network use attempted: ' + event)\n"
    "sys.addaudithook(guard)\n"
    "sys.argv = ['runner', sys.argv[1]]\n"
    "runpy.run_module('runner', run_name='__main__')\n"
)


def test_the_runner_opens_no_socket(make_run_dir: MakeRunDir, fez: Snapshot, tmp_path: Path) -> None:
    run_dir = make_run_dir(BELL, fez, options={"noise_model": "relaxation"})
    script = tmp_path / "no_sockets.py"
    script.write_text(_NO_SOCKETS)
    proc = subprocess.run(
        [sys.executable, str(script), str(run_dir)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert sum(_result(run_dir)["counts"].values()) == 1024


def _can_unshare_network() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    return subprocess.run([unshare, "-n", "true"], capture_output=True, check=False).returncode == 0


@pytest.mark.skipif(not _can_unshare_network(), reason="unshare -n needs root or user namespaces")
def test_the_runner_completes_in_a_network_namespace_with_no_interfaces(
    make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    run_dir = make_run_dir(BELL, fez)
    proc = run_runner_process(run_dir, "unshare", "-n")
    assert proc.returncode == 0, proc.stderr
    assert sum(_result(run_dir)["counts"].values()) == 1024
