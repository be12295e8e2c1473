"""`vqpu`: the users' command line — devices and their epochs, submit, watch, results, cancel, replay.

Every command reaches the service through `vqpu_client.Client`; `--json` makes stdout machine
output and errors JSON on stderr. Exit statuses are in `vqpu_client.cli.exits` (and docs/cli.md).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence

from vqpu_client import Client
from vqpu_client.cli import devices, replay, tasks
from vqpu_client.cli.arguments import Command, build_parser
from vqpu_client.cli.context import Context
from vqpu_client.cli.exits import CliCode, Exit, failure
from vqpu_client.cli.render import Output

KEY_ON_COMMAND_LINE = (
    "--key puts your API key in this process's command line, which every account on this machine can read "
    "(ps, /proc/PID/cmdline); set VQPU_KEY, or keep the key in a file only you can read and pass "
    "--key-file PATH or set VQPU_KEY_FILE"
)

COMMANDS: dict[str, Command] = {
    "devices list": devices.list_devices,
    "devices show": devices.show,
    "devices epochs": devices.epochs,
    "devices diff": devices.diff_epochs,
    "submit": tasks.submit,
    "status": tasks.status,
    "watch": tasks.watch,
    "result": tasks.result,
    "cancel": tasks.cancel,
    "replay": replay.replay,
}


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    make_client: Callable[[str, str], Client] = Client,
) -> int:
    """Run one command; its exit status (the console script passes it to the shell)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    out = Output(as_json="--json" in argv)  # known before parsing, so that a usage error is JSON too
    ctx: Context | None = None
    try:
        args = build_parser(environ, COMMANDS).parse_args(argv)
        out = Output(as_json=args.json)
        if args.key is not None:
            out.warning(CliCode.KEY_ON_COMMAND_LINE, KEY_ON_COMMAND_LINE)
        ctx = Context(args, out, make_client, environ)
        return int(args.run(ctx))
    except KeyboardInterrupt:
        if out.stderr.isatty():
            out.note("")  # below the ^C the terminal echoed
        return Exit.INTERRUPTED
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else Exit.USAGE
    except BrokenPipeError:  # `vqpu watch | head`: the reader left; say nothing more to it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return Exit.OK
    except Exception as exc:
        found = failure(exc)
        if found is None:
            raise
        out.error(found.body, found.message)
        return found.exit_status
    finally:
        if ctx is not None:
            ctx.close()
