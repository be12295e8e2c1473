"""A real `prefect server start` on loopback, for the agent's integration tests, the benchmarks and the demo.

The server runs in the foreground of its own process (and its own process group), with its own
PREFECT_HOME under a work directory, offline (no telemetry, no promotional content), on SQLite in the
work directory or on a given PostgreSQL database. It is waited for on `GET /api/health` and stopped by
the PID in its pid file with SIGTERM; SIGKILL, and an error, if it does not go.

It requires a credential: Prefect's basic auth (`PREFECT_SERVER_API_AUTH_STRING` on the server; every
client sends `PREFECT_API_AUTH_STRING`, and the UI asks for it). A random one is made for each server
unless one is given; `client_env()` is what a client needs. Only `GET /api/health` and `/api/ready`
answer without it. What the server writes is private to this account (umask 077, home 0700, its SQLite
file made 0600 before the server opens it).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from harness.servers import answers_healthy, free_port, group_alive, log_tail

# What `prefect server start` would otherwise read from the test process or the user's profile: a
# server must not report to, or be configured by, anything outside its work directory.
SQLITE_EVENT_BATCH = 1000
"""On SQLite, Prefect's event persister writes its events every 5 s (its flush interval), not every 20."""

_INHERITED_PREFECT = (
    "PREFECT_API_URL",
    "PREFECT_API_KEY",
    "PREFECT_API_AUTH_STRING",
    "PREFECT_SERVER_API_AUTH_STRING",
    "PREFECT_PROFILE",
    "PREFECT_PROFILES_PATH",
)

AUTH_USER = "operator"
"""The user part of a generated credential. Prefect's basic auth compares the whole `user:password` string
(the UI's login form asks for that whole string as its password)."""


def new_auth_string() -> str:
    """A fresh `operator:<random>` credential for one server."""
    return f"{AUTH_USER}:{secrets.token_urlsafe(24)}"


def private_file(path: Path) -> Path:
    """`path` exists, empty if it is new, and only this account can read or write it: created 0600 from the
    first byte (O_EXCL, no chmod after writing); one left by an earlier run of ours is made 0600 before
    anything new goes in it. Refuses a path owned by another account or that is not a plain file."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            raise PermissionError(f"{path} exists and is not a plain file of this account: refusing it") from None
        os.chmod(path, 0o600)
    else:
        os.close(fd)
    return path


def private_dir(path: Path) -> Path:
    """`path` exists as a directory only this account can enter (0700); refuses one another account owns."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise PermissionError(f"{path} is not a directory of this account: refusing to keep secrets in it")
    os.chmod(path, 0o700)
    return path


class PrefectServerProcess:
    """One `prefect server start`. A context manager: started, then stopped.

    `database_url` is an async SQLAlchemy URL (`postgresql+asyncpg://...`); without it the server uses
    a SQLite file in `workdir`. `ui=True` serves the Prefect UI at `ui_url` too (the demo wants it;
    tests leave it off, which saves building the UI's static files). `auth_string` is the credential
    (`user:password`) the server requires; without it a random one is made. It reaches the server in its
    environment (readable by this account only), never its command line.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        database_url: str | None = None,
        ui: bool = False,
        name: str = "prefect-server",
        env: Mapping[str, str] | None = None,
        log_level: str = "WARNING",
        auth_string: str | None = None,
    ) -> None:
        self.workdir = workdir = workdir.resolve()  # the server runs in it: a relative path would point elsewhere
        self.home = workdir / "prefect-home"
        self.sqlite_file: Path | None = None if database_url else workdir / "prefect.db"
        self.database_url = database_url or f"sqlite+aiosqlite:///{self.sqlite_file}"
        self.auth_string = auth_string or new_auth_string()
        self.ui = ui
        self.name = name
        self.env = dict(env or {})
        self.log_level = log_level
        self.pid_file = workdir / f"{name}.pid"
        self.log_file = workdir / f"{name}.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self.startup_s: float | None = None  # from spawn to the first healthy answer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """What clients put in PREFECT_API_URL."""
        return f"{self.url}/api"

    def client_env(self) -> dict[str, str]:
        """What a Prefect client of this server needs in its environment (Prefect's own settings read both)."""
        return {"PREFECT_API_URL": self.api_url, "PREFECT_API_AUTH_STRING": self.auth_string}

    @property
    def ui_url(self) -> str:
        if not self.ui:
            raise RuntimeError(f"{self.name} was started without its UI (ui=False)")
        return self.url

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self, timeout_s: float = 90.0) -> PrefectServerProcess:
        self.workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        private_dir(self.home)
        if self.sqlite_file is not None:
            private_file(self.sqlite_file)  # SQLite gives its journal and WAL files the database file's mode
        private_file(self.log_file)
        for _ in range(3):  # a free port can be taken between finding it and the server binding it
            self.port = free_port()
            began = time.monotonic()
            self._spawn()
            if self._wait_healthy(timeout_s):
                self.startup_s = time.monotonic() - began
                return self
        raise RuntimeError(f"{self.name} did not start; its log:\n{self.log_tail()}")

    def _command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--ui" if self.ui else "--no-ui",
            "--analytics-off",
            "--log-level",
            self.log_level,
        ]

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _INHERITED_PREFECT}
        env.update(
            {
                "PREFECT_HOME": str(self.home),
                "PREFECT_API_DATABASE_CONNECTION_URL": self.database_url,
                "DO_NOT_TRACK": "1",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
                # The CLI asks before overwriting things when it thinks a person is at the terminal.
                "PREFECT_CLI_PROMPT": "false",
                "PREFECT_SERVER_API_AUTH_STRING": self.auth_string,
                # Where the UI sends its requests: Prefect derives it from its default port (4200), not --port.
                "PREFECT_UI_API_URL": self.api_url,
            }
        )
        if self.sqlite_file is not None:
            # SQLite has one writer at a time. Prefect's event persister writes each batch of 20 events (a few
            # tasks' worth) at once, and a flow run created while it writes waited ~2 s and was answered 503;
            # one batch every 5 s (its flush interval) left the view's lag one at a time at ~2 s instead of
            # 2-8 s, and ~9 s instead of ~45 s to settle after a burst of 100 (benchmarks/small_tasks). The
            # event feed shows events up to 5 s later. A value set in the environment is kept.
            env.setdefault("PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE", str(SQLITE_EVENT_BATCH))
        env.update(self.env)
        return env

    def _spawn(self) -> None:
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                self._command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._environment(),
                cwd=self.workdir,
                # Its own process group: stop() signals the whole group, so nothing the server may
                # start (uvicorn workers, service processes) outlives it, and a Ctrl-C at the test's
                # terminal does not reach it before the fixture stops it in order.
                start_new_session=True,
                # Whatever the server creates (its database, WAL, caches, profiles) is this account's alone.
                umask=0o077,
            )
        self.pid_file.write_text(str(self.proc.pid))

    def _wait_healthy(self, timeout_s: float) -> bool:
        assert self.proc is not None
        healthy = answers_healthy(self.proc, f"{self.api_url}/health", timeout_s, poll_s=0.1)
        if healthy is not None:
            return healthy
        self._kill_group()
        raise RuntimeError(f"{self.name} was not healthy within {timeout_s} s; its log:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM to the process group of the PID in the pid file; returns the server's exit status.

        A clean stop returns -SIGTERM: uvicorn shuts the application down, then re-raises the signal.

        If it is still running after `timeout_s`, or leaves a process of its group behind, those are
        killed and a RuntimeError says so.
        """
        if self.proc is None:
            raise RuntimeError(f"{self.name} was never started")
        if self.proc.poll() is None:
            pid = int(self.pid_file.read_text())
            _signal_group(pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._kill_group()
                raise RuntimeError(
                    f"{self.name} ignored SIGTERM for {timeout_s} s and was killed; its log:\n{self.log_tail()}"
                ) from None
        self.returncode = self.proc.returncode
        if group_alive(self.proc.pid):
            self._kill_group()
            raise RuntimeError(f"{self.name} exited but left processes of its group behind; they were killed")
        self.pid_file.unlink(missing_ok=True)
        return self.returncode

    def _kill_group(self) -> None:
        assert self.proc is not None
        _signal_group(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_file, lines)

    def __enter__(self) -> PrefectServerProcess:
        return self.start()

    def __exit__(self, *exc: object | TracebackType) -> None:
        if self.proc is not None:
            self.stop()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group is already empty
        os.killpg(pgid, sig)


@contextmanager
def prefect_api(target: str | PrefectServerProcess, auth_string: str | None = None) -> Iterator[str]:
    """Point this process's Prefect client, and the subprocesses it starts, at a server: PREFECT_API_URL and
    PREFECT_API_AUTH_STRING (a server gives both; with a bare URL, `auth_string` or none); both are restored
    afterwards. Yields the API URL.

    The environment alone is not enough: `import prefect` reads its settings once, so the running
    process needs Prefect's own settings context as well.
    """
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    if isinstance(target, PrefectServerProcess):
        api_url, auth_string = target.api_url, target.auth_string
    else:
        api_url = target
    variables = {"PREFECT_API_URL": api_url, "PREFECT_API_AUTH_STRING": auth_string}
    before = {name: os.environ.get(name) for name in variables}
    _set_environment(variables)
    try:
        with temporary_settings(
            updates={PREFECT_API_URL: api_url, **({PREFECT_API_AUTH_STRING: auth_string} if auth_string else {})},
            restore_defaults=() if auth_string else {PREFECT_API_AUTH_STRING},
        ):
            try:
                yield api_url
            finally:
                _drain_to_api()
    finally:
        _set_environment(before)


def _set_environment(variables: Mapping[str, str | None]) -> None:
    for name, value in variables.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _drain_to_api(timeout_s: float = 5.0) -> None:
    """Send the logs and events flows run in this process still hold to the server they belong to,
    while it is still up: otherwise Prefect's workers try at interpreter exit, after the server has
    stopped, and print connection errors."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    def drain() -> None:
        for worker in (APILogWorker, EventsWorker):
            worker.drain_all(timeout=timeout_s)

    # In a thread, which runs no event loop: drain_all returns a coroutine when called from one.
    thread = threading.Thread(target=drain, name="prefect-drain", daemon=True)
    thread.start()
    thread.join(2 * timeout_s + 1)
