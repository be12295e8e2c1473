"""Who used the CPUs during a phase: this benchmark's processes by owner, Slurm, and other work."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Proc:
    ppid: int
    pgrp: int
    cpu_s: float  # utime + stime + cutime + cstime (children that were reaped are included)
    cmd: str
    slurm_job: str | None
    started: int  # clock ticks after boot: tells a reused pid apart


def _processes() -> dict[int, Proc]:
    procs: dict[int, Proc] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        job = next((v[13:].decode() for v in environ if v.startswith(b"SLURM_JOB_ID=")), None)
        ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
        procs[int(entry.name)] = Proc(
            int(fields[1]), int(fields[2]), ticks / CLOCK_TICKS, cmd or stat[:60], job, int(fields[19])
        )
    return procs


def _machine_ticks() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


@dataclass(frozen=True)
class CpuSample:
    wall: float
    machine: tuple[int, int]
    procs: dict[int, Proc]


def cpu_sample() -> CpuSample:
    return CpuSample(time.monotonic(), _machine_ticks(), _processes())


def cpu_account(
    before: CpuSample,
    after: CpuSample,
    *,
    roots: dict[str, int],
    pgroups: dict[str, int],
    jobs: set[str],
    commands: dict[str, str] | None = None,
) -> dict[str, Any]:
    """CPU seconds per owner between two samples: this benchmark's own processes (named roots and
    process groups, the rest of its tree), Slurm jobs of ours (by SLURM_JOB_ID), Slurm's daemons, and
    everyone else ("foreign": other work on the machine). Processes that ended between the samples are
    only counted through a parent that reaped them, so the owners add up to less than the machine.
    `commands` names processes by a piece of their command line (the PostgreSQL backends of a database)."""
    parents = {pid: p.ppid for pid, p in after.procs.items()}

    def owner(pid: int, p: Proc) -> str:
        for name, pgid in pgroups.items():
            if p.pgrp == pgid:
                return name
        cursor, seen = pid, 0
        while cursor > 1 and seen < 64:
            for name, root in roots.items():
                if cursor == root:
                    return name
            cursor, seen = parents.get(cursor, 0), seen + 1
        if p.slurm_job in jobs:
            return "our_slurm_jobs"
        for name, piece in (commands or {}).items():
            if piece in p.cmd:
                return name
        if "slurm" in p.cmd.split(" ")[0] or "munged" in p.cmd:
            return "slurm_daemons"
        return "foreign"

    owners: dict[str, float] = {}
    foreign: list[tuple[float, str]] = []
    for pid, p in after.procs.items():
        old = before.procs.get(pid)
        used = p.cpu_s - (old.cpu_s if old is not None and old.started == p.started else 0.0)
        if used <= 0:
            continue
        who = owner(pid, p)
        owners[who] = owners.get(who, 0.0) + used
        if who == "foreign":
            foreign.append((used, p.cmd[:120]))
    busy = after.machine[0] - before.machine[0]
    total = after.machine[1] - before.machine[1]
    cpus = os.cpu_count() or 1
    wall = after.wall - before.wall
    return {
        "wall_s": wall,
        "machine_busy_cores": busy / total * cpus if total else None,
        "cpu_s": {k: round(v, 3) for k, v in sorted(owners.items())},
        "top_foreign": [{"cpu_s": round(c, 3), "cmd": cmd} for c, cmd in sorted(foreign, reverse=True)[:6]],
    }


def wait_quiet(max_wait_s: float, busy_cores: float = 0.3, window_s: float = 10.0) -> dict[str, Any]:
    """Wait until the machine's CPUs are nearly idle over `window_s` (other work on the 2 cores), at
    most `max_wait_s`; what was found."""
    began = time.monotonic()
    while True:
        before = _machine_ticks()
        time.sleep(window_s)
        after = _machine_ticks()
        total = after[1] - before[1]
        busy = (after[0] - before[0]) / total * (os.cpu_count() or 1) if total else 0.0
        waited = time.monotonic() - began
        if busy <= busy_cores or waited >= max_wait_s:
            return {"waited_s": round(waited, 1), "busy_cores": round(busy, 3), "quiet": busy <= busy_cores}
        print(f"  waiting for a quiet machine: {busy:.2f} cores busy ({waited:.0f} s so far)", flush=True)
