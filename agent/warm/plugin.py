"""The Dask side: the worker plugin that owns the runner processes, the task that runs one, the kill.

Each run has a wall-time limit (the agent's `limit_s`, task.json's limits.max_runtime_s): the runner ends
itself there; a child still running `agent.deadline.KILL_GRACE_S` later is killed here and the run's
outcome says `timed_out`. A run starts only on a worker that will live long enough for it (the worker's
`--lifetime`; see `ensure_lifetime_fits`)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, get_args

import distributed
from distributed.core import Status

from agent.deadline import KillTimer, kill_after_s
from agent.warm.children import Outcome, Zygote, kill_group, run_process
from vqpu_protocol.rundir import scheduler_job_id

Mode = Literal["fork", "process"]
PLUGIN_NAME = "vqpu-runner"
MAX_SOCKET_PATH = 100
"""AF_UNIX paths are limited to 108 bytes on Linux; stay clear of it."""


KILL_POLL_S = 0.02
"""How often a run waiting for its child to start looks whether it was killed meanwhile."""
RETIRE_WAIT_S = 5.0
"""How long a step waits for its worker to say it is retiring before handing the step back to the scheduler."""


@dataclass
class _Run:
    run_dir: str
    pid: int | None = None
    killed: bool = False
    done: bool = False
    ended: bool = False  # the child said it is exiting, or was reaped: its pid must not be signalled any more
    timer: KillTimer | None = None  # kills the child at its limit plus the grace


class WarmRunnerPlugin(distributed.WorkerPlugin):
    """Runs the hermetic runner in a killable child of the worker.

    mode "fork": a zygote started once per worker (in `setup`, so replacement workers get one too)
    holds Qiskit imported; each run is a child forked from it (~25 ms instead of ~0.8 s).
    mode "process": each run is a fresh `python -m runner RUN_DIR`.
    Only the configuration travels when the plugin is pickled to a worker; its processes stay there.
    """

    name = PLUGIN_NAME

    def __init__(
        self, mode: Mode, python: str | None = None, cwd: str | None = None, threads: int | None = None
    ) -> None:
        if mode not in get_args(Mode):
            raise ValueError(f"mode must be one of {get_args(Mode)}, not {mode!r}")
        self.mode: Mode = mode
        self.python = python  # None: the worker's own interpreter, resolved there (paths differ between nodes)
        self.cwd = cwd
        # Dask's nanny starts every worker with OMP_NUM_THREADS=1 (and MKL/OpenBLAS likewise): the runner
        # gets the cores the site gives each task instead.
        self.threads = threads
        self._lock = threading.Lock()  # the run table: kill_runner takes it on the worker's event loop, keep it short
        self._zygote_lock = threading.Lock()  # starting and replacing the zygote, which may wait on a process
        self._runs: dict[str, _Run] = {}
        self._zygote: Zygote | None = None
        self._generation = 0
        self._base: str | None = None
        self._scratch: str | None = None
        self._closed = False
        # Run dirs killed before their step reached this worker: the step, if it comes, starts nothing.
        self._doomed: dict[str, float] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"mode": self.mode, "python": self.python, "cwd": self.cwd, "threads": self.threads}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    # --- the worker plugin's life ---------------------------------------------------------------

    def setup(self, worker: distributed.Worker) -> None:
        self._base = worker.local_directory
        if self.mode == "fork":
            # Started, not awaited: it warms while the worker registers; the first run waits for it.
            self._zygote_for_run()

    def teardown(self, worker: distributed.Worker) -> None:
        # The worker is closing: its tasks will not be waited for, so their runners must not outlive it.
        with self._lock:
            self._closed = True
            for run in self._runs.values():
                if run.pid is not None and not run.done:
                    kill_group(run.pid)
        with self._zygote_lock:
            zygote, self._zygote = self._zygote, None
        if zygote is not None:
            zygote.stop()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    # --- what tasks and `client.run` call -------------------------------------------------------

    @property
    def zygote_pid(self) -> int | None:
        zygote = self._zygote
        return zygote.proc.pid if zygote is not None and zygote.alive() else None

    def running(self) -> dict[str, int | None]:
        """The run directories with a runner in progress on this worker, and its pid once known."""
        with self._lock:
            return {key: run.pid for key, run in self._runs.items()}

    def run(self, run_dir: str, worker_address: str, limit_s: float | None = None) -> dict[str, Any]:
        """One run of the runner on `run_dir`, to its end, its child killed if it is still running
        `kill_after_s(limit_s)` after it started; what `run_on_worker` returns."""
        start_s = time.time()
        started = time.perf_counter()
        key = os.path.abspath(run_dir)
        run = self._register(key)
        if limit_s is not None:
            run.timer = KillTimer(limit_s, partial(self._time_out, run))
        try:
            if self._was_doomed(key):
                run.killed = True
                outcome = Outcome(exit_code=None, signal=None, pid=None)
            else:
                outcome = self._run_forked(run) if self.mode == "fork" else self._run_process(run)
        finally:
            with self._lock:
                run.done = True
                self._runs.pop(run.run_dir, None)
            if run.timer is not None:
                run.timer.stop()
        timed_out = run.timer is not None and run.timer.fired and not run.killed
        signum = outcome.signal
        if run.killed and signum is None and outcome.exit_code is None:
            signum = signal.SIGKILL  # the zygote died too, so nobody saw the status; but we sent this
        return {
            "exit_code": outcome.exit_code,
            "signal": None if signum is None else int(signum),
            "killed": run.killed,
            "timed_out": timed_out,
            "limit_s": limit_s,
            "used_s": run.timer.used_s if timed_out and run.timer is not None else None,
            "mode": self.mode,
            "node": socket.gethostname(),
            "worker": worker_address,
            "job_id": scheduler_job_id(os.environ),
            "pid": outcome.pid,
            "start_s": start_s,
            "wall_s": time.perf_counter() - started,
        }

    def kill(self, run_dir: str) -> bool:
        with self._lock:
            key = os.path.abspath(run_dir)
            run = self._runs.get(key)
            if run is None:  # not here (yet): should its step arrive, it will start nothing
                self._doomed[key] = time.monotonic()
                return False
            if run.done:  # a run that has already ended keeps its own outcome
                return False
            run.killed = True
            if run.pid is not None:
                kill_group(run.pid)
            return True

    # --- internals ------------------------------------------------------------------------------

    def _was_doomed(self, key: str) -> bool:
        with self._lock:
            now = time.monotonic()
            for stale in [k for k, at in self._doomed.items() if now - at > DOOM_FOR_S]:
                del self._doomed[stale]
            return self._doomed.pop(key, None) is not None

    def _register(self, key: str) -> _Run:
        with self._lock:
            if self._closed:
                raise RuntimeError("the vqpu-runner plugin on this worker has been torn down")
            if key in self._runs:
                raise RuntimeError(f"a runner is already running on {key} on this worker")
            run = self._runs[key] = _Run(key)
            return run

    def _started(self, run: _Run, pid: int) -> None:
        with self._lock:
            if run.pid is None:
                run.pid = pid
                # kill_runner, or teardown, came before the pid did (the step may have returned already).
                if (run.killed or self._closed) and not run.ended:
                    kill_group(pid)
                elif run.timer is not None:
                    run.timer.start()

    def _ended(self, run: _Run) -> None:
        # From here on the pid may be reaped and reused: it must not be signalled any more.
        with self._lock:
            run.done = run.ended = True
        if run.timer is not None:
            run.timer.stop()

    def _time_out(self, run: _Run) -> None:
        """The kill timer fired: the runner outlived its limit and its own watchdog (a wedged child)."""
        with self._lock:
            if run.pid is not None and not run.done:
                kill_group(run.pid)

    def _thread_env(self) -> dict[str, str]:
        if self.threads is None:
            return {}
        return {v: str(self.threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}

    def _run_process(self, run: _Run) -> Outcome:
        return run_process(
            self._thread_env(),
            self.python or sys.executable,
            self.cwd,
            run.run_dir,
            partial(self._started, run),
            partial(self._ended, run),
        )

    def _run_forked(self, run: _Run) -> Outcome:
        for _ in range(2):  # a second try through a fresh zygote when the first died under us
            zygote = self._zygote_for_run()
            outcome = self._request(zygote, run)
            if outcome is not None:
                return outcome
            self._replace(zygote)
        raise RuntimeError(f"the runner zygote failed twice to start a run for {run.run_dir}{zygote.tail()}")

    def _request(self, zygote: Zygote, run: _Run) -> Outcome | None:
        """The run through `zygote`, followed in a thread of its own: a kill that comes before the child
        exists (a fresh zygote warms for seconds with the request in its backlog) returns at once, and the
        child, should the zygote still fork it, is killed the moment its pid arrives (`_started`)."""
        answer: list[Outcome | None] = []
        failure: list[BaseException] = []
        finished = threading.Event()

        def follow() -> None:
            try:
                answer.append(zygote.request(run.run_dir, partial(self._started, run), partial(self._ended, run)))
            except BaseException as exc:  # raised below, in the step's own thread
                failure.append(exc)
            finally:
                finished.set()

        threading.Thread(target=follow, name=f"vqpu-follow-{os.path.basename(run.run_dir)}", daemon=True).start()
        while not finished.wait(KILL_POLL_S):
            with self._lock:
                if run.killed and run.pid is None:
                    return Outcome(pid=None, exit_code=None, signal=None)
        if failure:
            raise failure[0]
        return answer[0]

    def _zygote_for_run(self) -> Zygote:
        """The live zygote, started anew when there is none or it died (killed, crashed, OOM)."""
        with self._zygote_lock:
            if self._closed:
                raise RuntimeError("the vqpu-runner plugin on this worker has been torn down")
            if self._zygote is not None and self._zygote.alive():
                return self._zygote
            if self._zygote is not None:
                self._zygote.stop()  # dead already: this only reaps it
            self._generation += 1
            self._zygote = Zygote(
                self.python or sys.executable, self.cwd, self._scratch_dir(), self._generation, self._thread_env()
            )
            return self._zygote

    def _replace(self, failed: Zygote) -> None:
        """Drop a zygote that hung up without starting a run, once it is seen dead (a SIGKILLed process
        closes its sockets a moment before it can be reaped); one still alive is kept, with the runs it serves."""
        try:
            failed.proc.wait(1.0)
        except subprocess.TimeoutExpired:
            return
        with self._zygote_lock:
            if self._zygote is failed:
                self._zygote = None

    def _scratch_dir(self) -> str:
        """A private (0700) directory for the zygote's socket, log and scratch, with a short path."""
        if self._scratch is None:
            for base in (self._base, tempfile.gettempdir(), "/tmp"):
                if base is not None and len(base) + len("/vqpu-warm-XXXXXXXX/z1234.sock") < MAX_SOCKET_PATH:
                    os.makedirs(base, exist_ok=True)
                    self._scratch = tempfile.mkdtemp(prefix="vqpu-warm-", dir=base)
                    break
            else:
                raise RuntimeError("no directory with a path short enough for the zygote's socket")
        return self._scratch


def _plugin(worker: distributed.Worker) -> WarmRunnerPlugin:
    plugin = worker.plugins.get(PLUGIN_NAME)
    if not isinstance(plugin, WarmRunnerPlugin):
        raise RuntimeError(
            f"worker {worker.address} has no {PLUGIN_NAME!r} plugin: register one first with "
            "client.register_plugin(WarmRunnerPlugin(mode=...))"
        )
    return plugin


DOOM_FOR_S = 600.0
"""How long a kill that found no runner keeps the run dir's step from starting on this worker."""


def run_on_worker(run_dir: str, limit_s: float | None = None) -> dict[str, Any]:
    """Run the runner on `run_dir` in a killable child of this Dask worker, within its wall-time limit; a Dask task.

    Submit it with `pure=False` (or a unique key): Dask would otherwise hand back the result of an
    earlier run of the same directory instead of running it again. It first makes sure the worker lives
    long enough for the run (`ensure_lifetime_fits`: `distributed.Reschedule` hands it to another worker).
    """
    worker = distributed.get_worker()
    ensure_lifetime_fits(limit_s, worker)
    return _plugin(worker).run(run_dir, worker.address, limit_s)


def lifetime_left_s(worker: distributed.Worker) -> float | None:
    """How long this worker has before its `--lifetime` retires it; None without a lifetime. Counted from its
    process's start, a little before Dask's own timer started (so never more than it really has)."""
    lifetime = getattr(worker, "lifetime", None)
    if not lifetime:
        return None
    return float(lifetime) - process_age_s()


def process_age_s() -> float:
    """How long this process has existed (Linux: from /proc; elsewhere: since this module was loaded)."""
    try:
        with open("/proc/self/stat", "rb") as stat, open("/proc/uptime", "rb") as uptime:
            # The command name (field 2) may hold spaces: fields are counted after its closing parenthesis.
            started_ticks = int(stat.read().rsplit(b")", 1)[1].split()[19])
            return float(uptime.read().split()[0]) - started_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _LOADED


_LOADED = time.monotonic()


def ensure_lifetime_fits(limit_s: float | None, worker: distributed.Worker | None = None) -> None:
    """The lifetime rule: a run starts only on a worker that lives at least its limit plus the kill grace
    longer. A worker that does not retires now (gracefully: it takes no more work and leaves) and the step is
    handed back to the Dask scheduler (`distributed.Reschedule`), which gives it to another worker, one that
    `adapt` starts if need be. Nothing of the run has started. The site file guarantees that a fresh worker
    always fits the longest run (`resources.max_runtime_s` against `worker_lifetime`, agent.site)."""
    worker = worker if worker is not None else distributed.get_worker()
    left = lifetime_left_s(worker)
    if left is None or limit_s is None or left >= kill_after_s(limit_s):
        return
    if worker.status == Status.running:
        reason = f"vqpu: {left:.0f} s of lifetime left, a run of up to {kill_after_s(limit_s):g} s asked for"
        worker.loop.add_callback(worker.close_gracefully, reason=reason)
        # Until the scheduler knows the worker is retiring, it might hand the step straight back to it.
        deadline = time.monotonic() + RETIRE_WAIT_S
        while worker.status == Status.running and time.monotonic() < deadline:
            time.sleep(0.01)
    raise distributed.Reschedule()


def kill_runner(run_dir: str, dask_worker: distributed.Worker | None = None) -> bool:
    """Kill the runner of `run_dir` if this worker runs it; for `client.run(kill_runner, run_dir)`.

    Returns at once; the `run_on_worker` waiting on that runner returns with killed=True.
    """
    worker = dask_worker if dask_worker is not None else distributed.get_worker()
    plugin = worker.plugins.get(PLUGIN_NAME)
    return isinstance(plugin, WarmRunnerPlugin) and plugin.kill(run_dir)
