"""A side measurement: what the first OpenQASM 3 parse costs in a runner child forked from a parent that only
imported what the warm runner imports, and in one forked after the parent parsed once (`runner.circuit.prime()`,
which agent.warm.zygote.warm() calls before it forks anything).

    python -m benchmarks.small_tasks.probes     (prints JSON; run.py runs it in a fresh process)
"""

from __future__ import annotations

import importlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CHILDREN = 7


def _parse_in_children(source: str, snapshot: Any) -> list[float]:
    """Each child's first parse of `source`, one child after another."""
    from runner import circuit

    firsts = []
    for _ in range(CHILDREN):
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            began = time.perf_counter()
            circuit.parse(source, "qasm3", snapshot)
            os.write(write_fd, repr(time.perf_counter() - began).encode())
            os._exit(0)
        os.close(write_fd)
        os.waitpid(pid, 0)
        firsts.append(float(os.read(read_fd, 100).decode()))
        os.close(read_fd)
    return firsts


def first_parse_in_fork() -> dict[str, Any]:
    # As agent.warm.zygote.warm() does.
    importlib.import_module("runner.plugins").confine()
    for module in ("qiskit", "qiskit_aer", "qiskit_aer.noise", "runner.cli", "runner.pipeline"):
        importlib.import_module(module)
    from device_registry import catalog
    from harness.circuits import BELL
    from runner import circuit

    snapshot = catalog.load("ibm-fez")
    cold = _parse_in_children(BELL, snapshot)
    circuit.prime()  # as warm() now does last: the parent parses once
    warm = _parse_in_children(BELL, snapshot)
    return {
        "children": CHILDREN,
        "first_parse_in_child_s": statistics.median(cold),
        "first_parse_in_child_after_parent_parsed_s": statistics.median(warm),
        "samples": {"cold": cold, "warm": warm},
    }


def measure() -> dict[str, Any] | None:
    """The probe in a fresh interpreter (none of this process's imports or caches)."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.small_tasks.probes"], cwd=root, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        print(f"probe failed: {proc.stderr[-2000:]}", file=sys.stderr)
        return None
    probe: dict[str, Any] = json.loads(proc.stdout)
    return probe


if __name__ == "__main__":
    print(json.dumps(first_parse_in_fork()))
