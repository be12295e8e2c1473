"""The command line: `vqpu [--url U] [--key-file F] [--json] [--quiet] COMMAND ...`, and run options from flags.

The key comes from the environment (`VQPU_KEY`, `VQPU_KEY_FILE`) or `--key-file`; `--key` still works,
unlisted and with a warning, because every account on the machine can read a process's arguments.

The global options may come before or after the command (`vqpu --json devices list` and `vqpu devices
list --json` are the same). Bad arguments raise the CLI's usage error instead of exiting, so that
they are reported like every other error (as JSON with --json) with exit status 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from pydantic import ValidationError

from vqpu_client.cli.exits import usage
from vqpu_protocol.rundir import NOISE_KINDS, NoiseModelName, RunOptions

DEFAULT_URL = "http://127.0.0.1:8000"
Command = Callable[..., int]


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise usage(f"{self.prog}: {message}", {"usage": self.format_usage().strip()})


def build_parser(environ: Mapping[str, str], commands: Mapping[str, Command]) -> Parser:
    """`commands` maps each command's name (`devices list`, `submit`, ...) to the function that runs it."""
    top = Parser(
        prog="vqpu",
        description="Run circuits on the HPC-vQPU service and inspect its devices.",
        epilog="Your API key comes from VQPU_KEY, or from a file only you can read, named by --key-file or "
        "VQPU_KEY_FILE (never put it on the command line: every account on the machine can read that).",
    )
    _globals(top, environ, suppress=False)
    shared = argparse.ArgumentParser(add_help=False)
    _globals(shared, environ, suppress=True)
    sub = top.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(parent: Any, name: str, help_: str, key: str | None = None) -> Parser:
        p: Parser = parent.add_parser(name, help=help_, description=help_, parents=[shared])
        p.set_defaults(run=commands[key or name])
        return p

    _device_commands(sub, command)
    _task_commands(sub, command)
    return top


def _device_commands(sub: Any, command: Callable[..., Parser]) -> None:
    devices = sub.add_parser("devices", help="devices, their epochs and what changed between two")
    dsub = devices.add_subparsers(dest="devices_command", metavar="SUBCOMMAND", required=True)
    command(dsub, "list", "every device at its current epoch", "devices list")
    show = command(
        dsub, "show", "one device's snapshot: size, native gates, what is out, calibration medians", "devices show"
    )
    show.add_argument("device", metavar="DEVICE")
    show.add_argument("--epoch", type=_natural, help="that epoch (default: the current one)")
    epochs = command(dsub, "epochs", "a device's epochs, oldest first", "devices epochs")
    epochs.add_argument("device", metavar="DEVICE")
    diff = command(
        dsub, "diff", "what changed from epoch A to epoch B, and which queued tasks B would refuse", "devices diff"
    )
    diff.add_argument("device", metavar="DEVICE")
    diff.add_argument("a", metavar="A", type=_natural)
    diff.add_argument("b", metavar="B", type=_natural)


def _task_commands(sub: Any, command: Callable[..., Parser]) -> None:
    submit = command(
        sub,
        "submit",
        "submit an OpenQASM 2 or 3 file (dialect from its header; - reads stdin), or Sampler or Estimator PUBs "
        "as one task (--pubs FILE)",
    )
    submit.add_argument("file", metavar="FILE", nargs="?")
    submit.add_argument(
        "--pubs",
        metavar="FILE",
        help='a JSON file holding a PUB task\'s `pubs` document ({"kind": "sampler" or "estimator", '
        '"pubs": [...]}); instead of FILE; - reads stdin',
    )
    submit.add_argument("--device", required=True, help="a device id (vqpu devices list)")
    submit.add_argument(
        "--shots",
        type=_positive,
        help="a circuit's shots (required); with --pubs, a sampler's default shots per PUB (none for an estimator)",
    )
    submit.add_argument("--seed", type=_natural, help="same seed, same epoch: same counts")
    submit.add_argument("--epoch", type=_natural, help="pin this epoch (default: the one current at claim)")
    submit.add_argument("--tag", action="append", default=[], help="a tag (repeatable)")
    _run_options(submit)
    submit.add_argument("--idempotency-key", help="the same key and request again give the same task")
    _waiting(submit, "wait for the task to finish and print its result")

    status = command(sub, "status", "a task's record: state, epochs, agent, error")
    status.add_argument("task", metavar="TASK")
    watch = command(sub, "watch", "the live event stream, one line per event (Ctrl-C stops)")
    watch.add_argument(
        "task", metavar="TASK", nargs="?", help="only this task's events, from its first; ends when the task does"
    )
    watch.add_argument("--device", help="only this device's events")
    watch.add_argument(
        "--since",
        type=_natural,
        metavar="EVENT_ID",
        help="replay from after this event id (default: a task's whole history, else from now)",
    )
    result = command(sub, "result", "a completed task's counts (per PUB and binding, or evs) and provenance")
    result.add_argument("task", metavar="TASK")
    _waiting(result, "wait for the task to finish first")
    cancel = command(sub, "cancel", "cancel a task (a running one stops once its agent hears of it)")
    cancel.add_argument("task", metavar="TASK")
    replay = command(
        sub, "replay", "rerun a COMPLETED task on its epoch with its seed; exit 1 unless the counts are identical"
    )
    replay.add_argument("task", metavar="TASK")
    replay.add_argument("--timeout", type=_seconds, help="give up waiting after this many seconds (exit 4)")


def _globals(p: argparse.ArgumentParser, environ: Mapping[str, str], *, suppress: bool) -> None:
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    p.add_argument(
        "--url",
        default=default(environ.get("VQPU_URL") or DEFAULT_URL),
        help=f"the control plane (env VQPU_URL; default {DEFAULT_URL})",
    )
    p.add_argument(
        "--key-file",
        metavar="PATH",
        default=default(None),
        help="read your API key from this file, which must be yours and mode 0600 (env VQPU_KEY_FILE)",
    )
    # Kept for old scripts, out of --help: every account on the machine can read it (see docs/cli.md).
    p.add_argument("--key", default=default(None), help=argparse.SUPPRESS)
    p.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="machine output: JSON on stdout, errors as JSON on stderr",
    )
    p.add_argument(
        "-q", "--quiet", action="store_true", default=default(False), help="no progress display on stderr while waiting"
    )


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--noise-model",
        choices=[m.value for m in NoiseModelName],
        help="how noise comes from the calibration (default paper)",
    )
    p.add_argument(
        "--noise-scale",
        action="append",
        default=[],
        type=_scale,
        metavar="KIND=X",
        help=f"multiply a noise channel by X (repeatable); KIND: {', '.join(NOISE_KINDS)}",
    )
    p.add_argument(
        "--noise-disable",
        action="append",
        default=[],
        choices=NOISE_KINDS,
        metavar="KIND",
        help="remove a noise channel (repeatable)",
    )
    p.add_argument("--memory", action="store_true", help="return every shot's outcome (result --json shows it)")


def _waiting(p: argparse.ArgumentParser, help_: str) -> None:
    p.add_argument("--wait", action="store_true", help=help_)
    p.add_argument("--timeout", type=_seconds, help="with --wait: give up after this many seconds (exit 4)")


def run_options(args: argparse.Namespace) -> RunOptions | None:
    """The run options the flags ask for, validated as the server would (None: the defaults)."""
    given: dict[str, Any] = {}
    if args.noise_model is not None:
        given["noise_model"] = args.noise_model
    noise: dict[str, Any] = {}
    if args.noise_scale:
        kinds = [kind for kind, _ in args.noise_scale]
        repeated = sorted({k for k in kinds if kinds.count(k) > 1})
        if repeated:
            raise usage(f"--noise-scale names {', '.join(repeated)} more than once")
        noise["scale"] = dict(args.noise_scale)
    if args.noise_disable:
        noise["disable"] = list(args.noise_disable)
    if noise:
        given["noise"] = noise
    if args.memory:
        given["memory"] = True
    if not given:
        return None
    try:
        return RunOptions.model_validate(given)
    except ValidationError as exc:
        problems = [_problem(e) for e in exc.errors(include_url=False)]
        raise usage("invalid run options: " + "; ".join(problems), {"problems": problems}) from None


def _problem(error: Mapping[str, Any]) -> str:
    where = ".".join(str(p) for p in error.get("loc", ()))
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _scale(text: str) -> tuple[str, float]:
    kind, sep, value = text.partition("=")
    if not sep or kind not in NOISE_KINDS:
        raise argparse.ArgumentTypeError(f"expected KIND=X with KIND one of {', '.join(NOISE_KINDS)}, got {text!r}")
    try:
        return kind, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{kind}: {value!r} is not a number") from None


def _natural(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def _positive(text: str) -> int:
    value = _natural(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value
