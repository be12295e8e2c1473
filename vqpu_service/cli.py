"""`vqpu-server`: serve the control plane, manage API keys, register devices, recover tasks.

    vqpu-server serve [--host H] [--port P] [--db URL] [--keys-file F] [--pid-file F]
    vqpu-server keys create --role user|agent|admin --name NAME     (the new key is the last line)
    vqpu-server devices register-catalog | list
    vqpu-server admin requeue TASK [--reason R] | force-fail TASK [--reason R] | agents
    vqpu-server admin usage --since T [--until T] [--by owner|device|agent] [--format json|csv]

The database comes from --db, else VQPU_DATABASE_URL, else a SQLite file under ~/.local/share/vqpu.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from vqpu_service.config import Settings, load_settings
from vqpu_service.domain.errors import InvalidRequest, ServiceError
from vqpu_service.domain.model import Principal, Role
from vqpu_service.domain.usage import Grouping


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
        return int(args.command(args, settings))
    except ServiceError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 2


def _settings(args: argparse.Namespace) -> Settings:
    keys = getattr(args, "keys_file", None)
    return load_settings(os.environ, database_url=getattr(args, "db", None), keys_file=Path(keys) if keys else None)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from vqpu_service.bootstrap import app_for

    app = app_for(settings, pid_file=args.pid_file)
    if args.pid_file:
        args.pid_file.write_text(f"{os.getpid()}\n")
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the handler that was
    # in place before it started: these make that moment an ordinary exit (0, or 130 after Ctrl-C).
    signal.signal(signal.SIGTERM, _exit_with(0))
    signal.signal(signal.SIGINT, _exit_with(130))
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, timeout_graceful_shutdown=5)
    return 0


def _exit_with(status: int) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(status)

    return handler


def _keys_create(args: argparse.Namespace, settings: Settings) -> int:
    from vqpu_service.adapters.auth import create_key

    key = create_key(settings.keys_file, args.name, Role(args.role))
    print(f"created {args.role} key {args.name!r} in {settings.keys_file}; it is shown once:", file=sys.stderr)
    print(key)
    return 0


def _register_catalog(args: argparse.Namespace, settings: Settings) -> int:
    from vqpu_service.bootstrap import build_store, register_catalog

    store = build_store(settings)
    try:
        done = register_catalog(store)
        print(f"registered {len(done)} devices" if done else "the database has devices already; nothing registered")
    finally:
        store.close()
    return 0


def _devices_list(args: argparse.Namespace, settings: Settings) -> int:
    from vqpu_service.bootstrap import build_store

    store = build_store(settings)
    try:
        for record in store.devices():
            print(f"{record.device_id:20} epoch {record.epoch:<4} {record.sha256[:16]}")
    finally:
        store.close()
    return 0


def _admin(args: argparse.Namespace, settings: Settings) -> int:
    from vqpu_service.bootstrap import build_store
    from vqpu_service.services import commands

    if args.action == "usage":
        return _usage(args, settings)
    if args.action != "agents" and not args.task:
        raise InvalidRequest(f"admin {args.action} needs a task id")
    store = build_store(settings)
    now = datetime.now(UTC)
    try:
        if args.action == "agents":
            for a in store.agents():
                print(json.dumps({"agent_id": a.agent_id, "last_seen": a.last_seen.isoformat(), "lost": a.lost}))
            return 0
        op = commands.requeue if args.action == "requeue" else commands.force_fail
        task = op(store, args.task, "cli-admin", args.reason, now)
        print(f"{task.id}: {task.state} (attempt {task.attempt})")
    finally:
        store.close()
    return 0


def _usage(args: argparse.Namespace, settings: Settings) -> int:
    """The accounting export (docs/operations.md, "Accounting"), JSON or CSV on stdout."""
    from vqpu_service.api.views import usage_report
    from vqpu_service.bootstrap import build_store
    from vqpu_service.services.usage import UsageService, moment

    if args.since is None:
        raise InvalidRequest("admin usage needs --since (ISO 8601, e.g. 2026-12-01)")
    since = moment(args.since, "--since")
    until = None if args.until is None else moment(args.until, "--until")
    store = build_store(settings)
    try:
        export = UsageService(store).export(Principal("cli-admin", Role.ADMIN), since, until, Grouping(args.by))
    finally:
        store.close()
    report = usage_report(export)
    sys.stdout.write(report.csv() if args.format == "csv" else report.model_dump_json(indent=2) + "\n")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vqpu-server", description="HPC-vQPU control plane")
    sub = p.add_subparsers(dest="verb", required=True)
    serve = sub.add_parser("serve", help="run the HTTP API (uvicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--pid-file", type=Path)
    serve.set_defaults(command=_serve)
    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="keys_verb", required=True)
    create = keys.add_parser("create", help="create a key; it is printed once, as the last line")
    create.add_argument("--role", required=True, choices=[str(r) for r in Role])
    create.add_argument("--name", required=True)
    create.set_defaults(command=_keys_create)
    devices = sub.add_parser("devices", help="devices").add_subparsers(dest="devices_verb", required=True)
    devices.add_parser("register-catalog", help="register the bundled devices in an empty database").set_defaults(
        command=_register_catalog
    )
    devices.add_parser("list", help="devices at their current epoch").set_defaults(command=_devices_list)
    admin = sub.add_parser("admin", help="recovery actions, straight against the database")
    admin.add_argument("action", choices=["requeue", "force-fail", "agents", "usage"])
    admin.add_argument("task", nargs="?")
    admin.add_argument("--reason", default="operator action")
    admin.add_argument("--since", help="usage: the period's start, ISO 8601 (inclusive; no zone: UTC)")
    admin.add_argument("--until", help="usage: the period's end, ISO 8601 (exclusive; default: now)")
    admin.add_argument("--by", choices=[str(g) for g in Grouping], default="owner", help="usage: group by")
    admin.add_argument("--format", choices=["json", "csv"], default="json", help="usage: output format")
    admin.set_defaults(command=_admin)
    for sp in (serve, create, admin, *devices.choices.values()):
        sp.add_argument("--db", help="database URL (default: VQPU_DATABASE_URL, else the SQLite file)")
        sp.add_argument("--keys-file", help="API keys file (default: VQPU_KEYS_FILE, else ~/.local/share/vqpu)")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
