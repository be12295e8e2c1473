"""`vqpu-agent`: run the login-node agent, show how it is doing, or show the batch script a site would run.

    vqpu-agent start --site SITE.yaml [--url URL] [--agent-id ID] [--pid-file F]
    vqpu-agent status --site SITE.yaml
    vqpu-agent render-job --site SITE.yaml [--scheduler-address tls://HOST:PORT]

`start` needs the control plane's URL and an agent key (--url, else VQPU_URL; the key from the private
file VQPU_AGENT_KEY_FILE names, or VQPU_AGENT_KEY; --key too, with a warning: every account can read a
process's command line) and Prefect's API and credential
(PREFECT_API_URL, PREFECT_API_AUTH_STRING). It exits 0 after SIGTERM once in-flight work is drained, 2 on
a configuration error, a run root it must not trust, or a credential Prefect refuses. `status` prints what
the running agent last wrote of itself (exit 3 when that is over 30 s old). `render-job` starts nothing and
opens no port.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from agent.site import SiteError, load_site


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.command(args))
    except SiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _start(args: argparse.Namespace) -> int:
    import anyio
    from prefect.client.orchestration import get_client

    from agent.bootstrap import AgentConfigError, agent_config
    from agent.prefect_bridge import PrefectCredentialRefused, check_credential
    from agent.run_root import RunRootError, ensure_run_root
    from agent.worker import VQPUWorker

    async def prefect_takes_our_credential() -> None:
        async with get_client() as client:
            await check_credential(client)

    _log_to_stderr(args.log_level)
    if args.key is not None:
        print(
            "vqpu-agent: warning: --key puts the agent key in this process's command line, which every account on "
            "this machine can read (ps, /proc/PID/cmdline); keep it in a file only this account can read and set "
            "VQPU_AGENT_KEY_FILE",
            file=sys.stderr,
        )
    try:
        config = agent_config(args.site, url=args.url, key=args.key, agent_id=args.agent_id)
        # Checked again where the engine starts (for `prefect worker start --type vqpu`); here, to exit 2 with
        # one line rather than a traceback from inside Prefect's worker.
        ensure_run_root(config.site.run_root, config.site.run_root_policy)
        anyio.run(prefect_takes_our_credential)
    except (AgentConfigError, RunRootError, PrefectCredentialRefused) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    worker = VQPUWorker(
        work_pool_name=config.work_pool,
        name=config.agent_id,
        agent_config=config,
        create_pool_if_not_found=True,
    )
    if args.pid_file:
        args.pid_file.write_text(f"{os.getpid()}\n")
    try:
        anyio.run(worker.start)
    finally:
        if args.pid_file:
            args.pid_file.unlink(missing_ok=True)
    return 0


def _log_to_stderr(level: str) -> None:
    # Prefect configures logging when it is imported; the agent's own loggers get their own handler.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    for name in ("agent", "flows"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False


def _render_job(args: argparse.Namespace) -> int:
    from agent.cluster import render_job

    site = load_site(args.site)
    print(render_job(site, scheduler_address=args.scheduler_address))
    return 0


def _status(args: argparse.Namespace) -> int:
    """The agent's status file under the site's run root, as it last wrote it (agent.engine.STATUS_FILE)."""
    from agent.engine import STATUS_FILE

    site = load_site(args.site)
    path = site.run_root / STATUS_FILE
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        print(f"error: {path} does not exist: no agent has run with this run root", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"error: cannot read {path}: {exc}", file=sys.stderr)
        return 1
    age = time.time() - float(status.get("written_at", 0))
    status["written_s_ago"] = round(age, 1)
    print(json.dumps(status, indent=2))
    if age > 30:
        print(
            f"warning: written {age:.0f} s ago: the agent is not running (it rewrites this every 2 s)", file=sys.stderr
        )
        return 3
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vqpu-agent", description="The HPC-vQPU login-node agent.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    start = commands.add_parser("start", help="claim and run tasks until SIGTERM")
    start.add_argument("--site", type=Path, default=None, help="site file (default: $VQPU_SITE)")
    start.add_argument("--url", default=None, help="control plane URL (default: $VQPU_URL)")
    start.add_argument("--key", default=None, help=argparse.SUPPRESS)  # visible to every account: warned about
    start.add_argument("--agent-id", default=None, help="default: $VQPU_AGENT_ID, else the site's, else SITE-HOST")
    start.add_argument("--pid-file", type=Path, default=None, help="write the agent's PID here while it runs")
    start.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    start.set_defaults(command=_start)

    status = commands.add_parser(
        "status", help="print the running agent's status: tasks in flight, how far the Prefect view is behind"
    )
    status.add_argument("--site", type=Path, required=True, help="site file (its run_root holds the status)")
    status.set_defaults(command=_status)

    from agent.cluster import PLACEHOLDER_SCHEDULER

    render = commands.add_parser("render-job", help="print the batch script a site would submit; starts nothing")
    render.add_argument("--site", type=Path, required=True, help="site file")
    render.add_argument(
        "--scheduler-address",
        default=PLACEHOLDER_SCHEDULER,
        help="the Dask scheduler address the workers would connect to (a placeholder by default)",
    )
    render.set_defaults(command=_render_job)
    return parser


if __name__ == "__main__":
    sys.exit(main())
