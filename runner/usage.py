"""What a runner process used, for the site's accounting: `usage.json`, written as the process ends.

A runner process accounts for itself (`own`: getrusage covers all its threads, so CPU time is
core-seconds); a run its watchdog stops is accounted for by the watchdog from /proc while the runner
is stopped (`stopped`). Accounting never changes a run's outcome: a usage.json that cannot be written
is logged and left out, and the agent then reports its own clock.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
from pathlib import Path

from vqpu_protocol.rundir import RunDirError, RunUsage, UnsafeRunDir, write_usage

log = logging.getLogger("runner")


def own(wall_s: float, gpu_s: float | None) -> RunUsage:
    """This process's account: its wall time as measured by the caller, its CPU time, its peak RSS."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    peak = ru.ru_maxrss * (1 if sys.platform == "darwin" else 1024)  # Linux reports KiB, macOS bytes
    return RunUsage(wall_s=wall_s, cpu_s=ru.ru_utime + ru.ru_stime, gpu_s=gpu_s, peak_rss_bytes=peak)


def stopped(pid: int, wall_s: float) -> RunUsage:
    """Another process's account, from /proc (Linux): CPU time of all its threads and its peak RSS;
    only the wall time where /proc cannot be read."""
    cpu_s: float | None = None
    peak: int | None = None
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()  # after the command name, which may hold spaces
        ticks = os.sysconf("SC_CLK_TCK")
        cpu_s = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime: fields 14 and 15 of proc(5)
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    peak = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return RunUsage(wall_s=wall_s, cpu_s=cpu_s, peak_rss_bytes=peak)


def record(run_dir: Path, usage: RunUsage) -> None:
    try:
        write_usage(run_dir, usage)
    except (OSError, RunDirError, UnsafeRunDir) as exc:
        log.warning("usage.json not written: %s", exc)
