"""The embedded local stack: the control plane on SQLite, a Prefect server, and one agent on a Dask
LocalCluster, each a real process started as an operator would start it and stopped by PID.

    python -m harness.stack [--dir DIR] [--no-ui] [--slots N] [--prefect-database-url URL]

starts it in the foreground, prints the URLs and keys, and stops everything on Ctrl-C or SIGTERM
(scripts/stack.sh). The main job (scripts/demo.sh) starts the same stack around its experiment.

Prefect keeps its database in SQLite in DIR unless `--prefect-database-url postgresql+asyncpg://...` names a
PostgreSQL database. It becomes the server's PREFECT_API_DATABASE_CONNECTION_URL; the stack sets that variable
for its server itself, so one in the caller's environment is not used. SQLite holds for the default two
slots; more flow runs at once need PostgreSQL (docs/agent.md).

Prefect requires a credential (a random one per stack, in `stack.json` and `prefect-auth`; the UI asks
for it), so only the stack's operator sees its flow runs and artifacts or cancels from it. The stack's
directory is 0700, and what holds keys or data in it (`stack.json`, `keys.json`, both SQLite databases,
the logs) is created 0600; run as `python -m harness.stack`, the whole process runs under umask 077.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from harness.agents import AgentProcess, site_file
from harness.prefect_server import PrefectServerProcess, prefect_api, private_dir, private_file
from harness.servers import ServerProcess, make_keys
from vqpu_service.domain.model import Role


class LocalStack:
    """`site` names deployments/sites/SITE.yaml (its run_root and slots replaced, and `site_overrides` merged
    in); Prefect keeps its database in SQLite unless `prefect_database_url` names another."""

    def __init__(
        self,
        workdir: Path,
        *,
        ui: bool = False,
        slots: int = 2,
        site: str = "local",
        site_overrides: dict[str, Any] | None = None,
        prefect_database_url: str | None = None,
        agent_id: str | None = None,
    ) -> None:
        self.workdir = workdir.resolve()  # the processes it starts have their own working directories
        self.ui = ui
        self.slots = slots
        self.site = site
        self.site_overrides = dict(site_overrides or {})
        self.prefect_database_url = prefect_database_url
        self.agent_id = agent_id or f"{site}-agent"
        self.keys: dict[str, str] = {}
        self.control_plane: ServerProcess | None = None
        self.prefect: PrefectServerProcess | None = None
        self.agent: AgentProcess | None = None
        self.site_path: Path | None = None
        self.startup_s: dict[str, float] = {}  # how long each process took to start

    @property
    def url(self) -> str:
        assert self.control_plane is not None
        return self.control_plane.url

    def start(self) -> LocalStack:
        private_dir(self.workdir)
        keys_file = self.workdir / "keys.json"
        keys_file.unlink(missing_ok=True)
        self.keys = make_keys(keys_file, user=Role.USER, agent=Role.AGENT, admin=Role.ADMIN)  # written 0600
        # Private before any process opens them: SQLite gives its journal and WAL files the database's mode.
        database = private_file(self.workdir / "control-plane.db")
        for log in ("control-plane.log", f"agent-{self.agent_id}.log"):
            private_file(self.workdir / log)
        try:
            started = time.perf_counter()
            self.control_plane = ServerProcess(
                self.workdir, f"sqlite:///{database}", keys_file, name="control-plane"
            ).start()
            self.startup_s["control_plane"] = time.perf_counter() - started
            started = time.perf_counter()
            self.prefect = PrefectServerProcess(self.workdir, ui=self.ui, database_url=self.prefect_database_url).start(
                timeout_s=120
            )
            self.startup_s["prefect"] = time.perf_counter() - started
            self.site_path = site_file(
                self.workdir, self.site, run_root=str(self.workdir / "runs"), slots=self.slots, **self.site_overrides
            )
            started = time.perf_counter()
            self.agent = AgentProcess(
                self.workdir,
                self.site_path,
                url=self.control_plane.url,
                key=self.keys["agent"],
                prefect_api_url=self.prefect.api_url,
                agent_id=self.agent_id,
                admin_key=self.keys["admin"],
                env=self.prefect.client_env(),  # the Prefect credential, read by Prefect's own settings
            ).start()
            self.startup_s["agent"] = time.perf_counter() - started
        except BaseException:
            self.stop()
            raise
        _write_private(self.workdir / "stack.json", json.dumps(self.describe(), indent=2) + "\n")
        _write_private(self.workdir / "prefect-auth", self.prefect.auth_string + "\n")
        return self

    @contextmanager
    def as_flow_user(self, *, admin: bool = False) -> Iterator[None]:
        """This process as a user running flows against the stack: VQPU_URL, VQPU_KEY (and VQPU_ADMIN_KEY
        with `admin`) set, Prefect's client on the stack's server with its credential; all restored afterwards.

        The local stack is one person's: its user is its operator too. At a site, users' flows run on a
        Prefect of their own, never on the site's (docs/agent.md, "Prefect")."""
        assert self.prefect is not None, "the stack has no Prefect server"
        variables = {"VQPU_URL": self.url, "VQPU_KEY": self.keys["user"]}
        if admin:
            variables["VQPU_ADMIN_KEY"] = self.keys["admin"]
        before = {name: os.environ.get(name) for name in variables}
        os.environ.update(variables)
        try:
            with prefect_api(self.prefect):
                yield
        finally:
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def describe(self) -> dict[str, object]:
        assert self.control_plane is not None and self.prefect is not None and self.agent is not None
        return {
            "control_plane": self.control_plane.url,
            "api_docs": f"{self.control_plane.url}/docs",
            "prefect_api": self.prefect.api_url,
            "prefect_ui": self.prefect.url if self.ui else None,
            "prefect_auth_string": self.prefect.auth_string,
            "prefect_database": _without_password(self.prefect.database_url),
            "keys": self.keys,
            "pids": {
                "control_plane": self.control_plane.proc.pid if self.control_plane.proc else None,
                "prefect": self.prefect.pid,
                "agent": self.agent.pid,
            },
            "logs": str(self.workdir),
        }

    def stop(self) -> dict[str, int | None]:
        """Stop the agent first (it drains), then Prefect, then the control plane; their exit statuses."""
        statuses: dict[str, int | None] = {}
        if self.agent is not None and self.agent.proc is not None:
            statuses["agent"] = self.agent.stop()
        if self.prefect is not None and self.prefect.proc is not None:
            # uvicorn shuts Prefect's server down cleanly on SIGTERM, then re-raises the signal.
            status = self.prefect.stop()
            statuses["prefect"] = 0 if status == -signal.SIGTERM else status
        if self.control_plane is not None and self.control_plane.proc is not None:
            statuses["control_plane"] = self.control_plane.stop()
        return statuses

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.stop()


PREFECT_DATABASE_SCHEMES = ("postgresql+asyncpg://", "sqlite+aiosqlite://")
"""The SQLAlchemy URLs Prefect's server accepts for its database: it runs on asyncio, so an async driver."""


def _without_password(url: str) -> str:
    """`url` as it may be printed: its password, if it has one, replaced by ***."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _write_private(path: Path, text: str) -> None:
    """`path` replaced by `text`, 0600 from its first byte (a new file, renamed over the old one)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=None, help="state and logs (default: a new temporary directory)")
    parser.add_argument("--no-ui", action="store_true", help="serve the Prefect API without its UI")
    parser.add_argument("--slots", type=int, default=2, help="tasks the local agent runs at once (default 2)")
    parser.add_argument(
        "--prefect-database-url",
        metavar="URL",
        default=None,
        help="Prefect's database, postgresql+asyncpg://USER@HOST[:PORT]/DB, its password in ~/.pgpass, not here:"
        " a command line is visible to every account (default: SQLite in DIR)",
    )
    args = parser.parse_args(argv)
    if args.prefect_database_url is not None and not args.prefect_database_url.startswith(PREFECT_DATABASE_SCHEMES):
        parser.error(
            f"--prefect-database-url: Prefect's server needs an async driver, {' or '.join(PREFECT_DATABASE_SCHEMES)}"
            " (for PostgreSQL: postgresql+asyncpg://USER@HOST/DB)"
        )
    # Everything this process and the servers it starts create is this account's alone: the stack's
    # directory holds every key, both databases and every tenant's run directories.
    os.umask(0o077)
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="vqpu-stack-"))
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"starting the local stack in {workdir} ...", flush=True)
    stack = LocalStack(
        workdir, ui=not args.no_ui, slots=args.slots, prefect_database_url=args.prefect_database_url
    ).start()
    info = stack.describe()
    keys = stack.keys
    ui = f"{info['prefect_ui']}   (it asks for the Prefect auth string below, whole)" if info["prefect_ui"] else "(off)"
    print(
        f"""
  control plane   {info["control_plane"]}   (API docs: {info["api_docs"]})
  Prefect UI      {ui}
  Prefect API     {info["prefect_api"]}
  Prefect DB      {info["prefect_database"]}
  Prefect auth    {info["prefect_auth_string"]}   (PREFECT_API_AUTH_STRING for Prefect clients)
  keys            user  {keys["user"]}
                  admin {keys["admin"]}
                  agent {keys["agent"]}
  logs and state  {workdir}   (stack.json holds all of this)

  Try:  curl -s -H "Authorization: Bearer {keys["user"]}" {info["control_plane"]}/v1/devices
  Ctrl-C (or SIGTERM to PID {os.getpid()}) stops everything.
""",
        flush=True,
    )
    while not stop.wait(0.5):
        pass
    print("stopping ...", flush=True)
    statuses = stack.stop()
    print("stopped: " + ", ".join(f"{k} exit {v}" for k, v in statuses.items()), flush=True)
    return 0 if all(v == 0 for v in statuses.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
