"""What a warm runner does before it forks its runs (agent.warm.zygote): `runner.pipeline.prime()` once, and
`runner.pipeline.prepare(run_dir)` before each fork. A fork copies only the calling thread, so neither may start
one: a thread pool started before the fork would be a pool the children believe they have and do not. And a
child that inherits what its parent prepared must give the result a fresh runner process gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from device_registry import Snapshot
from harness.circuits import BELL
from harness.runner_process import ROOT
from tests.conftest import MakeRunDir

PROBE = """
import importlib, json, os, sys
from pathlib import Path
def threads():
    return len(os.listdir("/proc/self/task"))
for module in ("qiskit", "qiskit_aer", "qiskit_aer.noise", "runner.cli", "runner.pipeline"):
    importlib.import_module(module)  # as agent.warm.zygote.warm() does, before it primes
before = threads()
from runner import pipeline
pipeline.prime()
primed = threads()
first, again = (pipeline.prepare(Path(d)) for d in sys.argv[1:3])
seen = {"before": before, "primed": primed, "prepared": threads(), "versions": pipeline._version.cache_info().currsize,
        "first_built": first, "again_built": again, "targets": len(pipeline.PROCESS.targets)}
pid = os.fork()
if pid == 0:  # as the zygote's child runs its run
    from runner.cli import process_main
    os._exit(process_main([sys.argv[3]]))
_, status = os.waitpid(pid, 0)
seen["child_exit"] = os.waitstatus_to_exitcode(status)
print(json.dumps(seen))
"""


def test_priming_and_preparing_start_no_thread_and_the_child_gives_a_fresh_runners_result(
    make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    prepared, again, forked, fresh = (make_run_dir(BELL, fez, dialect="qasm3", shots=200, seed=7) for _ in range(4))
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(prepared), str(again), str(forked)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["primed"] == seen["before"], seen
    assert seen["prepared"] == seen["before"], seen
    assert seen["versions"] >= 2, "qiskit's and Aer's versions are read once, in the parent"
    assert (seen["first_built"], seen["again_built"], seen["targets"]) == (True, False, 1), (
        "the epoch's snapshot is parsed and its Target built once, whichever run directory holds it"
    )
    assert seen["child_exit"] == 0
    reference = subprocess.run(
        [sys.executable, "-m", "runner", str(fresh)], cwd=ROOT, capture_output=True, text=True, check=False, timeout=120
    )
    assert reference.returncode == 0, reference.stderr[-2000:]
    child, alone = (json.loads((d / "result.json").read_text()) for d in (forked, fresh))
    assert child["counts"] == alone["counts"]
    assert child["provenance"]["snapshot_sha256"] == alone["provenance"]["snapshot_sha256"]
