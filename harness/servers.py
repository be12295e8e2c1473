"""Real `vqpu-server serve` processes on loopback, for the end-to-end tests and the benchmarks.

A server is started as a user starts it (the console script's module, with a pid file), waited for
on `GET /v1/health`, and stopped by the PID in its pid file with SIGTERM.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import httpx

from vqpu_service.adapters.auth import create_key
from vqpu_service.domain.model import Role


def group_alive(pgid: int) -> bool:
    """Whether any process of the group is left (the leader, once reaped, no longer counts)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def answers_healthy(proc: subprocess.Popen[bytes], url: str, timeout_s: float, poll_s: float) -> bool | None:
    """Poll `url` until it answers 200 (True), the process exits first (False), or `timeout_s` passes (None)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(poll_s)
    return None


def log_tail(path: Path, lines: int) -> str:
    """The last `lines` lines of a process's log file."""
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def stalled_sse_subscriber(base: str, key: str) -> socket.socket:
    """An SSE client that asks for the whole stream (from id 0) and then never reads: a tiny receive
    window, so what the server sends backs up into its own buffers and the subscriber's queue."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect((host, int(port)))
    sock.sendall(
        f"GET /v1/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        "Accept: text/event-stream\r\nLast-Event-ID: 0\r\n\r\n".encode()
    )
    return sock


def make_keys(keys_file: Path, **names: Role) -> dict[str, str]:
    """One API key per name (`alice=Role.USER`), written hashed to `keys_file`; returns the plain keys."""
    return {name: create_key(keys_file, name, role) for name, role in names.items()}


class ServerProcess:
    """One `vqpu-server serve`; `env` adds `VQPU_*` settings. A context manager: started, then stopped."""

    def __init__(
        self,
        workdir: Path,
        database_url: str,
        keys_file: Path,
        *,
        name: str = "server",
        env: Mapping[str, str] | None = None,
        log_level: str = "warning",
    ) -> None:
        self.workdir = workdir
        self.database_url = database_url
        self.keys_file = keys_file
        self.name = name
        self.env = dict(env or {})
        self.log_level = log_level
        self.pid_file = workdir / f"{name}.pid"
        self.log_file = workdir / f"{name}.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> ServerProcess:
        for _ in range(3):  # a free port can be taken between finding it and the server binding it
            self.port = free_port()
            self._spawn()
            if self._wait_healthy(timeout_s):
                return self
        raise RuntimeError(f"{self.name} did not start; its log:\n{self.log_tail()}")

    def _spawn(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "vqpu_service.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--db",
            self.database_url,
            "--keys-file",
            str(self.keys_file),
            "--pid-file",
            str(self.pid_file),
            "--log-level",
            self.log_level,
        ]
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "DO_NOT_TRACK": "1", **self.env}
            )

    def _wait_healthy(self, timeout_s: float) -> bool:
        assert self.proc is not None
        healthy = answers_healthy(self.proc, f"{self.url}/v1/health", timeout_s, poll_s=0.05)
        if healthy is not None:
            return healthy
        self.proc.kill()
        self.proc.wait()
        raise RuntimeError(f"{self.name} was not healthy within {timeout_s} s; its log:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM to the PID in the pid file; returns the exit status (killed, and an error, if it hangs)."""
        if self.proc is None:
            raise RuntimeError(f"{self.name} was never started")
        if self.proc.poll() is None:
            pid = int(self.pid_file.read_text())
            os.kill(pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError(
                    f"{self.name} ignored SIGTERM for {timeout_s} s; its log:\n{self.log_tail()}"
                ) from None
        self.returncode = self.proc.returncode
        return self.returncode

    def restart(self, down_s: float = 0.0, timeout_s: float = 60.0) -> ServerProcess:
        """Stop it (SIGTERM), stay down `down_s` seconds, and start it again on the same port and database."""
        self.stop()
        time.sleep(down_s)
        self._spawn()
        if not self._wait_healthy(timeout_s):
            raise RuntimeError(f"{self.name} did not come back on port {self.port}; its log:\n{self.log_tail()}")
        return self

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_file, lines)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object | TracebackType) -> None:
        if self.proc is not None:
            self.stop()
