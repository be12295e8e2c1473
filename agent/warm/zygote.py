"""The warm parent of fork mode: the runner's imports paid once, each run a forked, killable child.

`WarmRunnerPlugin` starts it as `python -m agent.warm.zygote SOCKET` with its own TMPDIR and
XDG_CACHE_HOME, and its stdin a pipe from the Dask worker: when the worker goes away, however it
dies, stdin reaches EOF and the zygote kills its children and exits. It is a plain subprocess and
not a multiprocessing child, because a nanny's worker is daemonic and daemonic processes may not
have multiprocessing children; being exec'd, it also never re-imports the worker's `__main__`.

One unix-socket connection per run, lines of ASCII:
    client -> zygote   the run directory (file-system encoding), then end of stream
    child  -> client   "pid P"               once it leads its own process group, so a kill reaches all of it
    child  -> client   "exit N"              just before it exits
    zygote -> client   "status P exit N" or "status P signal S", once it has reaped the child; then it closes
Both the child and the zygote hold the connection, so the client sees EOF when both are done with it:
normally right after the zygote's status line; if the zygote itself died, when the child exits.

The zygote imports, and for each run parses its snapshot and builds its Target once per calibration epoch
(runner.pipeline.prepare: the site's data, never the tenant's task); it never runs a simulation, a
transpilation or anything else that could start an OpenMP, rayon or CUDA thread pool, since a child forked
after such a pool exists can deadlock or fail on its first parallel region.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import select
import signal
import socket
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import NoReturn

from agent.warm.children import kill_group
from vqpu_protocol.codes import ExitCode

MAX_REQUEST_BYTES = 64 * 1024
REQUEST_TIMEOUT_S = 5.0
"""How long the zygote waits for a connected client to send its run directory: it serves one at a time."""
_STOP = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} zygote {os.getpid()}: {message}", file=sys.stderr, flush=True)


def warm() -> None:
    """Import everything a run imports, and fill stevedore's in-memory entry-point cache.

    stevedore keys that cache by sys.path, which a forked child shares, so a child never reads or
    writes the on-disk cache (which lives under the zygote's XDG_CACHE_HOME, outside any run dir).
    """
    started = time.perf_counter()
    # As runner.cli.process_main does (by name: the agent runs the runner, it does not import it); the
    # children inherit the confined cache.
    importlib.import_module("runner.plugins").confine()
    for module in ("qiskit", "qiskit_aer", "qiskit_aer.noise", "runner.cli", "runner.pipeline"):
        importlib.import_module(module)
    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit.transpiler.passes.synthesis.plugin import UnitarySynthesisPluginManager
    from qiskit.transpiler.preset_passmanagers.plugin import PassManagerStagePluginManager

    # Building (not running) a pass manager loads every stage, routing and synthesis plugin module the
    # runner's basis translation can reach, and fills stevedore's cache on the way.
    PassManagerStagePluginManager()
    UnitarySynthesisPluginManager()
    generate_preset_pass_manager(optimization_level=0, basis_gates=["cz", "id", "rz", "sx", "x"])
    # And parsing once builds the OpenQASM parsers' tables (and reading the packages' versions once fills that
    # cache), which every child would otherwise do for itself.
    importlib.import_module("runner.pipeline").prime()
    threads = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else -1
    _log(f"warm in {time.perf_counter() - started:.2f} s, {threads} OS thread(s)")


def serve(socket_path: str) -> int:
    os.umask(0o077)  # the runs it forks write tenants' circuits and results: private from the first byte
    # Bound before the imports: clients can connect at once and wait in the backlog while it warms.
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(socket_path)
    listener.bind(socket_path)
    listener.listen(64)
    warm()  # until it is done, SIGTERM simply ends the zygote: it has no children yet
    # Everything imported so far is kept out of the collector: otherwise a child's first collection
    # writes to (and so copies) every page of it that it shares with the zygote.
    gc.freeze()

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    for signum in (signal.SIGCHLD, *_STOP):
        # The handler does nothing: the wakeup fd carries the signal number into the select loop.
        signal.signal(signum, lambda _signum, _frame: None)
    children: dict[int, socket.socket] = {}
    stdin = sys.stdin.fileno()
    watched = [listener.fileno(), wake_r, stdin]
    reason = "stopped"
    try:
        while True:
            ready, _, _ = select.select(watched, [], [])
            if wake_r in ready:
                signums = _drain(wake_r)
                _reap(children)
                if _STOP & signums:
                    reason = f"signal {min(_STOP & signums)}"
                    break
            if stdin in ready and not os.read(stdin, 4096):
                reason = "the worker is gone (stdin closed)"
                break
            if listener.fileno() in ready:
                try:
                    _accept(listener, children, close_in_child=(wake_r, wake_w))
                except Exception:  # e.g. fork failing for lack of memory: that client hears EOF and retries
                    _log(f"could not start a run:\n{traceback.format_exc()}")
    finally:
        for pid, conn in children.items():
            kill_group(pid)
            conn.close()
        listener.close()
        with contextlib.suppress(OSError):
            os.unlink(socket_path)
        _log(f"exiting: {reason}; killed {len(children)} running child(ren)")
    return 0


def _drain(fd: int) -> set[int]:
    signums: set[int] = set()
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 512):
            signums.update(chunk)
    return signums


def _reap(children: dict[int, socket.socket]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if conn is None:
            continue
        how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit {os.waitstatus_to_exitcode(status)}"
        with contextlib.suppress(OSError):
            conn.sendall(f"status {pid} {how}\n".encode())
        conn.close()


def _accept(listener: socket.socket, children: dict[int, socket.socket], close_in_child: tuple[int, int]) -> None:
    conn, _ = listener.accept()
    try:
        conn.settimeout(REQUEST_TIMEOUT_S)
        run_dir = _read_request(conn)
        conn.settimeout(None)
        _prepare(run_dir)
        # Anything buffered here would otherwise be written a second time by the child.
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
    except BaseException:
        conn.close()
        raise
    if pid == 0:
        _child(conn, run_dir, listener, [*children.values()], close_in_child)
    # Set on both sides of the fork, so the group exists whichever runs first.
    with contextlib.suppress(OSError):
        os.setpgid(pid, pid)
    children[pid] = conn


def _prepare(run_dir: str) -> None:
    """The run's snapshot parsed and its Target built here, once per calibration epoch, for the child to
    inherit (`runner.pipeline.prepare`: site data only, no thread). Whatever goes wrong is the run's to meet and
    report: the child then does the same work itself, as a fresh runner process would."""
    try:
        built = importlib.import_module("runner.pipeline").prepare(Path(run_dir))
    except Exception as exc:
        _log(f"could not prepare {run_dir}'s snapshot ({type(exc).__name__}: {exc}); the run will do it")
        return
    if built:
        # Out of the collector, as warm() did with the imports: a child's collections would otherwise copy the
        # pages of the new snapshot and Target. Collected first, so that no cycle of garbage is kept for good.
        gc.collect()
        gc.freeze()


def _read_request(conn: socket.socket) -> str:
    data = b""
    while chunk := conn.recv(4096):
        data += chunk
        if len(data) > MAX_REQUEST_BYTES:
            raise ValueError("request too long")
    if not data or b"\0" in data:
        raise ValueError("empty or invalid run directory")
    return os.fsdecode(data)


def _child(
    conn: socket.socket,
    run_dir: str,
    listener: socket.socket,
    others: list[socket.socket],
    fds: tuple[int, int],
) -> NoReturn:
    """The forked run. It must never return into the zygote's loop, whatever happens: hence os._exit."""
    code: int = ExitCode.CRASH  # unless the runner says otherwise
    try:
        os.setpgid(0, 0)
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        # Copies of other runs' connections would hold their EOF back until this run ends.
        for other in [listener, *others]:
            other.close()
        for fd in fds:
            os.close(fd)
        _redirect_stdio(run_dir)
        _confine_scratch(run_dir)
        conn.sendall(f"pid {os.getpid()}\n".encode())
        from runner.cli import process_main

        code = process_main([run_dir])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else ExitCode.CRASH
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            conn.sendall(f"exit {code}\n".encode())
        finally:
            os._exit(code & 0xFF)


def _redirect_stdio(run_dir: str) -> None:
    """stdout and stderr (stray prints, warnings, a C library's complaints) go to the run's own log."""
    from vqpu_protocol.rundir import LOG_FILE

    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    try:
        out = os.open(os.path.join(run_dir, LOG_FILE), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError:
        out = os.open(os.devnull, os.O_WRONLY)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)


def _confine_scratch(run_dir: str) -> None:
    """What `runner.cli.process_main` does before its imports, undone for what the zygote already cached."""
    from vqpu_protocol.rundir import SCRATCH_DIR

    if os.path.isdir(run_dir):
        for name, variable in (("tmp", "TMPDIR"), ("cache", "XDG_CACHE_HOME")):
            path = os.path.join(run_dir, SCRATCH_DIR, name)
            os.makedirs(path, exist_ok=True)
            os.environ[variable] = path
    # tempfile remembers the directory it chose in the zygote (dill probed it on import).
    tempfile.tempdir = None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m agent.warm.zygote SOCKET_PATH", file=sys.stderr)
        return 2
    _log(f"starting on {args[0]}")
    return serve(args[0])


if __name__ == "__main__":
    raise SystemExit(main())
