"""The runner's child processes, seen from the worker: the zygote's handle, one forked run's
conversation with it (the protocol is in agent.warm.zygote), a `python -m runner` process, the kill."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from agent.environment import child_environment
from vqpu_protocol.rundir import LOG_FILE

CONNECT_TIMEOUT_S = 30.0
"""How long a zygote may take to bind its socket (it binds before importing anything heavy)."""
WARM_TIMEOUT_S = 600.0
"""How long a run waits for a new zygote's imports (a cold shared file system can be slow)."""
STOP_TIMEOUT_S = 5.0

OnPid = Callable[[int], None]
"""Told the child's pid as soon as it is known, so that it can be killed."""
OnEnd = Callable[[], None]
"""Told when the child has ended or is ending on its own: from then on its pid may be reused."""


@dataclass
class Outcome:
    pid: int | None  # None: no child was started (the run was killed before it began)
    exit_code: int | None
    signal: int | None


class Zygote:
    """One started zygote process and the socket it listens on."""

    def __init__(self, python: str, cwd: str | None, scratch: str, generation: int, env_extra: dict[str, str]) -> None:
        self.socket_path = os.path.join(scratch, f"z{generation}.sock")
        self.log_path = os.path.join(scratch, "zygote.log")
        # Built from an allow-list: the worker's credentials (Prefect's, say) are not the runner's business.
        env = child_environment(env_extra)
        for name, variable in (("tmp", "TMPDIR"), ("cache", "XDG_CACHE_HOME")):
            path = os.path.join(scratch, name)
            os.makedirs(path, exist_ok=True)
            env[variable] = path
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(log_fd, "ab") as log:
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
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
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
                raise RuntimeError(f"the runner zygote did not listen within {CONNECT_TIMEOUT_S} s{self.tail()}")
            time.sleep(0.005)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT_S)

    def tail(self) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - 4000))
                return "; its log ends:\n" + log.read().decode(errors="replace")
        except OSError:
            return ""

    def request(self, run_dir: str, on_pid: OnPid, on_end: OnEnd) -> Outcome | None:
        """One run through this zygote; None when it hung up without starting one (it died)."""
        conn = self.connect()
        if conn is None:
            return None
        with conn:
            try:
                conn.sendall(os.fsencode(run_dir))
                conn.shutdown(socket.SHUT_WR)
            except OSError:  # it died between accepting and reading
                return None
            return _follow(conn, on_pid, on_end)


def _follow(conn: socket.socket, on_pid: OnPid, on_end: OnEnd) -> Outcome | None:
    """Read the conversation of one run to its end; None when the zygote died before forking."""
    # Only until the first line: after that the run's own limit bounds it (the plugin's kill timer ends the child).
    conn.settimeout(WARM_TIMEOUT_S)
    pid: int | None = None
    child_exit: int | None = None
    status: tuple[str, int] | None = None
    with conn.makefile("rb") as lines:
        for line in _lines(lines):
            conn.settimeout(None)
            words = line.split()
            if words[:1] == [b"pid"] and len(words) == 2:
                pid = int(words[1])
                on_pid(pid)
            elif words[:1] == [b"exit"] and len(words) == 2:
                on_end()  # it has written its outcome and is on its way out
                child_exit = int(words[1])
            elif words[:1] == [b"status"] and len(words) == 4:
                on_end()
                if pid is None:  # it died before it could say who it was
                    pid = int(words[1])
                    on_pid(pid)
                status = (words[2].decode(), int(words[3]))
    if pid is None:
        return None
    if status is None:  # the zygote died mid-run: the child's own word is all there is
        return Outcome(pid, child_exit, None)
    how, value = status
    return Outcome(pid, value, None) if how == "exit" else Outcome(pid, None, value)


def run_process(
    env_extra: dict[str, str], python: str, cwd: str | None, run_dir: str, on_pid: OnPid, on_end: OnEnd
) -> Outcome:
    """`python -m runner RUN_DIR`, as a scheduler job would start it, to its end."""
    log_path = os.path.join(run_dir, LOG_FILE)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    with os.fdopen(os.open(log_path if os.path.isdir(run_dir) else os.devnull, flags, 0o600), "ab") as log:
        proc = subprocess.Popen(
            [python, "-m", "runner", run_dir],
            cwd=cwd,
            env=child_environment(env_extra),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,  # its own group, so a kill reaches anything it starts
        )
    on_pid(proc.pid)
    code = proc.wait()
    on_end()
    return Outcome(proc.pid, code if code >= 0 else None, -code if code < 0 else None)


def _lines(stream: BinaryIO) -> Iterator[bytes]:
    """The lines up to EOF; a reset connection (the zygote was killed) ends them the same way."""
    try:
        yield from stream
    except ConnectionResetError:
        return
    except TimeoutError:
        raise RuntimeError(f"the runner zygote started no run within {WARM_TIMEOUT_S} s") from None


def kill_group(pid: int) -> None:
    # SIGKILL is safe: the runner writes result.json and error.json atomically, so a kill leaves none or a whole one.
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:  # not (yet) a group leader we may signal: the process alone
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
