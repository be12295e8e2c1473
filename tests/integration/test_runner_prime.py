"""`runner.pipeline.prime()`: what the warm runner does once before it forks each run (agent.warm.zygote). A fork
copies only the calling thread, so priming must start none: a thread pool started before the fork would be a
pool the children believe they have and do not."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from harness.runner_process import ROOT

PROBE = """
import importlib, json, os
def threads():
    return len(os.listdir("/proc/self/task"))
for module in ("qiskit", "qiskit_aer", "qiskit_aer.noise", "runner.cli", "runner.pipeline"):
    importlib.import_module(module)  # as agent.warm.zygote.warm() does, before it primes
before = threads()
from runner import pipeline
pipeline.prime()
print(json.dumps({"before": before, "after": threads(), "versions": pipeline._version.cache_info().currsize}))
"""


def test_priming_starts_no_thread_and_leaves_the_versions_read() -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["after"] == seen["before"], seen
    assert seen["versions"] >= 2, "qiskit's and Aer's versions are read once, in the parent"
