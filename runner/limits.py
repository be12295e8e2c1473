"""The runner's own bounds on a run (task.json `limits`), set in the runner process before the heavy work.

Wall time: a watchdog *process* forked from the runner. A thread or a signal handler cannot do it: Aer
holds the GIL for a whole simulation (measured: a Python thread ticking every 0.25 s did not run once in
10.8 s of `AerSimulator.run`), and Python runs signal handlers only between bytecodes. At the deadline
the watchdog stops the runner (SIGSTOP), writes error.json TIME_LIMIT_EXCEEDED unless the runner left an
outcome just in time, and ends it with exit status 3 (SIMULATION_FAILED): SIGQUIT, whose handler is libc's
`_exit` itself (it needs no GIL and exits with the signal's number, 3); SIGKILL if that fails. The
watchdog ends as soon as the runner does (a pipe only the runner holds open reaches EOF).

Memory: RLIMIT_DATA (private writable memory: heap and anonymous mappings, where Aer's state lives) set
to what the process already holds, plus `memory_bytes`, plus a headroom for thread stacks and allocator
arenas. An allocation beyond it fails: Python raises MemoryError, Aer reports "Cannot allocate memory",
and both end as OUT_OF_MEMORY instead of the node's OOM killer choosing a victim. RLIMIT_AS would work
too, but it also counts code, shared and reserved (PROT_NONE) mappings, which CUDA reserves by the
terabyte; neither limit is set for a run on a GPU slot (`gpu_memory_bytes`), which the site's batch
cgroup (Slurm `--mem`) and Aer's own `max_memory_mb` bound instead.

Only a runner *process* applies these (`runner.cli.process_main`); `runner.cli.main`, a run inside the
caller's process, does not.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import resource
import select
import signal
import time
from pathlib import Path
from typing import NoReturn

from runner import usage
from vqpu_protocol.codes import ErrorCode, ExitCode
from vqpu_protocol.errors import ErrorDocument
from vqpu_protocol.rundir import ERROR_FILE, RESULT_FILE, RunLimits, write_error

log = logging.getLogger("runner")

HEADROOM_BYTES = 256 * 1024 * 1024
"""Beyond `memory_bytes`: what a run allocates besides its simulation (the circuit, the noise model, the
result) and what allocator arenas grow by (measured: a noisy 16-qubit run grew VmData by 24 MiB)."""
THREAD_BYTES = 16 * 1024 * 1024
"""Per OpenMP thread: its 8 MiB stack counts as private writable memory, and its malloc arena grows too."""
EXIT_WAIT_S = 1.0
"""How long the watchdog waits for the runner to exit on SIGQUIT before it sends SIGKILL."""

_EXIT_SIGNAL = signal.SIGQUIT
assert int(_EXIT_SIGNAL) == ExitCode.SIMULATION_FAILED, "libc's _exit as the handler exits with the signal's number"


def enforce(run_dir: Path, limits: RunLimits, used_s: float) -> None:
    """Apply the run's limits to this process; `used_s`: how long the runner has run already."""
    if limits.max_runtime_s is not None:
        pid = start_watchdog(run_dir, limits.max_runtime_s, used_s)
        log.info("wall-time limit %g s: watchdog %d", limits.max_runtime_s, pid)
    if limits.memory_bytes is not None and limits.gpu_memory_bytes is None:
        applied = limit_memory(limits.memory_bytes)
        if applied is not None:
            log.info("memory limit %d bytes: RLIMIT_DATA %d bytes", limits.memory_bytes, applied)


# --- memory ------------------------------------------------------------------------------------


def limit_memory(memory_bytes: int) -> int | None:
    """Set RLIMIT_DATA to what this process holds now plus `memory_bytes` plus the headroom; returns the limit
    set, or None where the process's data size cannot be read (not Linux)."""
    held = data_bytes()
    if held is None:
        return None
    threads = _threads()
    limit = held + memory_bytes + HEADROOM_BYTES + threads * THREAD_BYTES
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    return limit


def data_bytes() -> int | None:
    """This process's private writable memory (VmData, what RLIMIT_DATA limits), or None where unknown."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmData:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _threads() -> int:
    with contextlib.suppress(ValueError):
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "")))
    return os.cpu_count() or 1


# --- wall time ---------------------------------------------------------------------------------


def start_watchdog(run_dir: Path, limit_s: float, used_s: float) -> int:
    """Fork the watchdog of this run; returns its pid. It ends the runner `limit_s` after the runner started."""
    now = time.monotonic()
    started, deadline = now - used_s, now + limit_s - used_s
    quits = _exit_on_quit()
    read_fd, write_fd = os.pipe()  # neither end is inherited by a program the runner might exec
    runner = os.getpid()
    pid = os.fork()
    if pid == 0:
        _watchdog(read_fd, runner, run_dir, limit_s, started, deadline, quits)
    os.close(read_fd)
    del write_fd  # left open until this process exits: its EOF tells the watchdog the run has ended
    return pid


def _exit_on_quit() -> bool:
    """Make SIGQUIT end this process at once with status 3, whatever holds the GIL: libc's `_exit` as the
    handler (async-signal-safe; called with the signal's number). False where it cannot be installed."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.signal.restype = ctypes.c_void_p
        libc.signal.argtypes = (ctypes.c_int, ctypes.c_void_p)
        previous: int | None = libc.signal(int(_EXIT_SIGNAL), ctypes.cast(libc._exit, ctypes.c_void_p))
    except (OSError, AttributeError):
        return False
    return previous != ctypes.c_void_p(-1).value  # SIG_ERR


def _watchdog(
    read_fd: int, runner: int, run_dir: Path, limit_s: float, started: float, deadline: float, quits: bool
) -> NoReturn:
    """The forked watchdog: wait for the runner's end or the deadline; never returns into the runner's code."""
    try:
        # Nothing of the runner's but the pipe: held copies of its sockets and files would delay their EOF.
        os.closerange(3, read_fd)
        os.closerange(read_fd + 1, 65536)
        pidfd = os.pidfd_open(runner) if hasattr(os, "pidfd_open") else None
        while (remaining := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([read_fd], [], [], remaining)
            if ready:  # EOF: the runner has ended
                os._exit(0)
        _expire(runner, pidfd, run_dir, limit_s, time.monotonic() - started, quits)
    finally:
        os._exit(0)


def _expire(runner: int, pidfd: int | None, run_dir: Path, limit_s: float, used_s: float, quits: bool) -> None:
    try:
        os.kill(runner, signal.SIGSTOP)
    except ProcessLookupError:
        return
    ending = signal.SIGKILL
    try:
        if os.path.lexists(run_dir / RESULT_FILE) or os.path.lexists(run_dir / ERROR_FILE):
            return  # it finished as the limit came: its outcome stands (and it accounts for itself)
        usage.record(run_dir, usage.stopped(runner, used_s))  # read while it is stopped: it never writes its own
        error = ErrorDocument(
            code=ErrorCode.TIME_LIMIT_EXCEEDED,
            message=f"the run reached its wall-time limit of {limit_s:g} s ({used_s:.1f} s used) and was stopped",
            detail={"limit_s": limit_s, "used_s": round(used_s, 3)},
        )
        write_error(run_dir, error)
        os.write(2, f"runner watchdog: {error.message}\n".encode())
        ending = _EXIT_SIGNAL if quits else signal.SIGKILL
        os.kill(runner, ending)  # delivered once it continues
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(runner, signal.SIGCONT)
    if ending != signal.SIGKILL and not _ended(pidfd):
        with contextlib.suppress(ProcessLookupError):
            os.kill(runner, signal.SIGKILL)


def _ended(pidfd: int | None) -> bool:
    if pidfd is None:
        time.sleep(EXIT_WAIT_S)
        return False
    ready, _, _ = select.select([pidfd], [], [], EXIT_WAIT_S)
    return bool(ready)
