"""The Dask side: the worker plugin that owns the runner processes, the task that runs one, the kill."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal, get_args

import distributed

from vqpu_protocol.rundir import LOG_FILE

Mode = Literal["fork", "process"]
PLUGIN_NAME = "vqpu-runner"
ZYGOTE_CONNECT_TIMEOUT_S = 30.0
"""How long a zygote may take to bind its socket (it binds before importing anything heavy)."""
ZYGOTE_WARM_TIMEOUT_S = 600.0
"""How long a run waits for a new zygote's imports (a cold shared file system can be slow)."""
ZYGOTE_STOP_TIMEOUT_S = 5.0
MAX_SOCKET_PATH = 100
"""AF_UNIX paths are limited to 108 bytes on Linux; stay clear of it."""
_SCHEDULER_JOB_VARS = ("SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID")


@dataclass
class _Run:
    run_dir: str
    pid: int | None = None
    killed: bool = False
    done: bool = False


@dataclass
class _Outcome:
    pid: int
    exit_code: int | None
    signal: int | None


class _Zygote:
    """One started zygote process and the socket it listens on."""

    def __init__(self, python: str, cwd: str | None, scratch: str, generation: int) -> None:
        self.socket_path = os.path.join(scratch, f"z{generation}.sock")
        self.log_path = os.path.join(scratch, "zygote.log")
        env = dict(os.environ)
        for name, variable in (("tmp", "TMPDIR"), ("cache", "XDG_CACHE_HOME")):
            path = os.path.join(scratch, name)
            os.makedirs(path, exist_ok=True)
            env[variable] = path
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [python, "-m", "agent.warm.zygote", self.socket_path],
                cwd=cwd,
                env=env,
                stdin=subprocess.PIPE,  # the worker holds the other end: EOF tells the zygote the worker is gone
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C meant for the worker's terminal must not reach it
            )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def connect(self) -> socket.socket | None:
        """A connection to the zygote, or None once it has died."""
        deadline = time.monotonic() + ZYGOTE_CONNECT_TIMEOUT_S
        while True:
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                conn.connect(self.socket_path)
                return conn
            except (FileNotFoundError, ConnectionRefusedError):
                conn.close()
            if not self.alive():
                return None
            if time.monotonic() > deadline:
                raise RuntimeError(f"the runner zygote did not listen within {ZYGOTE_CONNECT_TIMEOUT_S} s{self.tail()}")
            time.sleep(0.005)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(ZYGOTE_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(ZYGOTE_STOP_TIMEOUT_S)

    def tail(self) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - 4000))
                return "; its log ends:\n" + log.read().decode(errors="replace")
        except OSError:
            return ""


class WarmRunnerPlugin(distributed.WorkerPlugin):
    """Runs the hermetic runner in a killable child of the worker.

    mode "fork": a zygote started once per worker (in `setup`, so replacement workers get one too)
    holds Qiskit imported; each run is a child forked from it (~25 ms instead of ~0.8 s).
    mode "process": each run is a fresh `python -m runner RUN_DIR`.
    Only the configuration travels when the plugin is pickled to a worker; its processes stay there.
    """

    name = PLUGIN_NAME

    def __init__(self, mode: Mode, python: str | None = None, cwd: str | None = None) -> None:
        if mode not in get_args(Mode):
            raise ValueError(f"mode must be one of {get_args(Mode)}, not {mode!r}")
        self.mode: Mode = mode
        self.python = python  # None: the worker's own interpreter, resolved there (paths differ between nodes)
        self.cwd = cwd
        self._lock = threading.Lock()  # the run table: kill_runner takes it on the worker's event loop, keep it short
        self._zygote_lock = threading.Lock()  # starting and replacing the zygote, which may wait on a process
        self._runs: dict[str, _Run] = {}
        self._zygote: _Zygote | None = None
        self._generation = 0
        self._base: str | None = None
        self._scratch: str | None = None
        self._closed = False

    def __getstate__(self) -> dict[str, Any]:
        return {"mode": self.mode, "python": self.python, "cwd": self.cwd}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    # --- the worker plugin's life ---------------------------------------------------------------

    def setup(self, worker: distributed.Worker) -> None:
        self._base = worker.local_directory
        if self.mode == "fork":
            # Started, not awaited: it warms while the worker registers; the first run waits for it.
            self._zygote_for_run()

    def teardown(self, worker: distributed.Worker) -> None:
        with self._lock:
            self._closed = True
            for run in self._runs.values():
                if run.pid is not None and not run.done:
                    _kill_group(run.pid)
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

    def run(self, run_dir: str, worker_address: str) -> dict[str, Any]:
        start_s = time.time()
        started = time.perf_counter()
        run = self._register(os.path.abspath(run_dir))
        try:
            outcome = self._run_forked(run) if self.mode == "fork" else self._run_process(run)
        finally:
            with self._lock:
                run.done = True
                self._runs.pop(run.run_dir, None)
        signum = outcome.signal
        if run.killed and signum is None and outcome.exit_code is None:
            signum = signal.SIGKILL  # the zygote died too, so nobody saw the status; but we sent this
        return {
            "exit_code": outcome.exit_code,
            "signal": None if signum is None else int(signum),
            "killed": run.killed,
            "mode": self.mode,
            "node": socket.gethostname(),
            "worker": worker_address,
            "job_id": next((os.environ[v] for v in _SCHEDULER_JOB_VARS if os.environ.get(v)), None),
            "pid": outcome.pid,
            "start_s": start_s,
            "wall_s": time.perf_counter() - started,
        }

    def kill(self, run_dir: str) -> bool:
        with self._lock:
            run = self._runs.get(os.path.abspath(run_dir))
            if run is None or run.done:  # a run that has already ended keeps its own outcome
                return False
            run.killed = True
            if run.pid is not None:
                _kill_group(run.pid)
            return True

    # --- internals ------------------------------------------------------------------------------

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
                # kill_runner, or teardown, came before the pid did.
                if (run.killed or self._closed) and not run.done:
                    _kill_group(pid)

    def _ended(self, run: _Run) -> None:
        # From here on the pid may be reaped and reused: it must not be signalled any more.
        with self._lock:
            run.done = True

    def _run_process(self, run: _Run) -> _Outcome:
        log_path = os.path.join(run.run_dir, LOG_FILE)
        with open(log_path if os.path.isdir(run.run_dir) else os.devnull, "ab") as log:
            proc = subprocess.Popen(
                [self.python or sys.executable, "-m", "runner", run.run_dir],
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0,  # its own group, so a kill reaches anything it starts
            )
        self._started(run, proc.pid)
        code = proc.wait()
        self._ended(run)
        return _Outcome(proc.pid, code if code >= 0 else None, -code if code < 0 else None)

    def _run_forked(self, run: _Run) -> _Outcome:
        for _ in range(2):  # a second try through a fresh zygote when the first died under us
            zygote = self._zygote_for_run()
            conn = zygote.connect()
            if conn is None:
                self._replace(zygote)
                continue
            with conn:
                try:
                    conn.sendall(os.fsencode(run.run_dir))
                    conn.shutdown(socket.SHUT_WR)
                except OSError:  # it died between accepting and reading
                    outcome = None
                else:
                    outcome = self._follow(run, conn)
            if outcome is not None:
                return outcome
            self._replace(zygote)
        raise RuntimeError(f"the runner zygote failed twice to start a run for {run.run_dir}{zygote.tail()}")

    def _follow(self, run: _Run, conn: socket.socket) -> _Outcome | None:
        """Read the conversation of one run to its end; None when the zygote died before forking."""
        conn.settimeout(ZYGOTE_WARM_TIMEOUT_S)  # only until the first line: after that a run takes what it takes
        pid: int | None = None
        child_exit: int | None = None
        status: tuple[str, int] | None = None
        with conn.makefile("rb") as lines:
            for line in _lines(lines):
                conn.settimeout(None)
                words = line.split()
                if words[:1] == [b"pid"] and len(words) == 2:
                    pid = int(words[1])
                    self._started(run, pid)
                elif words[:1] == [b"exit"] and len(words) == 2:
                    self._ended(run)  # it has written its outcome and is on its way out
                    child_exit = int(words[1])
                elif words[:1] == [b"status"] and len(words) == 4:
                    self._ended(run)
                    if pid is None:  # it died before it could say who it was
                        pid = int(words[1])
                        self._started(run, pid)
                    status = (words[2].decode(), int(words[3]))
        if pid is None:
            return None
        if status is None:  # the zygote died mid-run: the child's own word is all there is
            return _Outcome(pid, child_exit, None)
        how, value = status
        return _Outcome(pid, value, None) if how == "exit" else _Outcome(pid, None, value)

    def _zygote_for_run(self) -> _Zygote:
        """The live zygote, started anew when there is none or it died (killed, crashed, OOM)."""
        with self._zygote_lock:
            if self._closed:
                raise RuntimeError("the vqpu-runner plugin on this worker has been torn down")
            if self._zygote is not None and self._zygote.alive():
                return self._zygote
            if self._zygote is not None:
                self._zygote.stop()  # dead already: this only reaps it
            self._generation += 1
            self._zygote = _Zygote(self.python or sys.executable, self.cwd, self._scratch_dir(), self._generation)
            return self._zygote

    def _replace(self, failed: _Zygote) -> None:
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


def _lines(stream: BinaryIO) -> Iterator[bytes]:
    """The lines up to EOF; a reset connection (the zygote was killed) ends them the same way."""
    try:
        yield from stream
    except ConnectionResetError:
        return
    except TimeoutError:
        raise RuntimeError(f"the runner zygote started no run within {ZYGOTE_WARM_TIMEOUT_S} s") from None


def _kill_group(pid: int) -> None:
    # SIGKILL is safe: the runner writes result.json and error.json atomically, so a kill leaves none or a whole one.
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:  # not (yet) a group leader we may signal: the process alone
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _plugin(worker: distributed.Worker) -> WarmRunnerPlugin:
    plugin = worker.plugins.get(PLUGIN_NAME)
    if not isinstance(plugin, WarmRunnerPlugin):
        raise RuntimeError(
            f"worker {worker.address} has no {PLUGIN_NAME!r} plugin: register one first with "
            "client.register_plugin(WarmRunnerPlugin(mode=...))"
        )
    return plugin


def run_on_worker(run_dir: str) -> dict[str, Any]:
    """Run the runner on `run_dir` in a killable child of this Dask worker; a Dask task.

    Submit it with `pure=False` (or a unique key): Dask would otherwise hand back the result of an
    earlier run of the same directory instead of running it again.
    """
    worker = distributed.get_worker()
    return _plugin(worker).run(run_dir, worker.address)


def kill_runner(run_dir: str, dask_worker: distributed.Worker | None = None) -> bool:
    """Kill the runner of `run_dir` if this worker runs it; for `client.run(kill_runner, run_dir)`.

    Returns at once; the `run_on_worker` waiting on that runner returns with killed=True.
    """
    worker = dask_worker if dask_worker is not None else distributed.get_worker()
    plugin = worker.plugins.get(PLUGIN_NAME)
    return isinstance(plugin, WarmRunnerPlugin) and plugin.kill(run_dir)
