"""The CLI's exit statuses, and every failure as one exit status and one error body.

    0  done
    1  the task failed or was cancelled, or a replay's counts differ from the original's
    2  the request cannot be done as asked: bad arguments or input, or the server refused it (4xx)
    3  the server could not be reached, or failed (5xx)
    4  gave up waiting (--timeout); the task goes on
    130  interrupted (Ctrl-C)

The error body is the server's own shape, `{"error": {code, message, detail, correlation_id,
timestamp}}`, so a script reads one shape whether the server or the CLI found the problem; a
problem found without asking the server has `correlation_id: null`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any

from vqpu_client import errors
from vqpu_client.cli.render import visible


class Exit(IntEnum):
    OK = 0
    TASK_FAILED = 1
    USAGE = 2
    SERVER = 3
    TIMEOUT = 4
    INTERRUPTED = 130


class CliCode(StrEnum):
    """Codes of the problems the CLI finds itself (the server's codes are vqpu_protocol.codes.ErrorCode)."""

    USAGE = "USAGE"  # bad arguments, an unreadable file, a circuit without an OPENQASM header
    UNREACHABLE = "UNREACHABLE"  # no answer from the server, after the client's retries
    WAIT_TIMEOUT = "WAIT_TIMEOUT"  # --timeout ran out before the task finished
    TASK_CANCELLED = "TASK_CANCELLED"
    TASK_FAILED = "TASK_FAILED"  # a FAILED task without an error document
    REPLAY_MISMATCH = "REPLAY_MISMATCH"  # the replay's counts are not the original's
    KEY_ON_COMMAND_LINE = "KEY_ON_COMMAND_LINE"  # a warning: --key shows the key to every account on the machine


class CliError(Exception):
    """A problem the CLI found itself: its exit status, code, message and detail."""

    def __init__(self, exit_status: Exit, code: str, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.exit_status = exit_status
        self.code = code
        self.message = message
        self.detail = detail


def usage(message: str, detail: Any = None) -> CliError:
    return CliError(Exit.USAGE, CliCode.USAGE, message, detail)


@dataclass(frozen=True)
class Failure:
    exit_status: Exit
    body: dict[str, Any]

    @property
    def message(self) -> str:
        """For a person: the usage and the message for bad arguments, else `CODE: message`.

        One line each, escaped: the code and message may be the server's, and hold another user's text.
        """
        info = self.body["error"]
        if info["code"] != CliCode.USAGE:
            return visible(f"{info['code']}: {info['message']}")
        usage_line = info["detail"].get("usage") if isinstance(info["detail"], dict) else None
        return visible(info["message"]) if usage_line is None else f"{visible(info['message'])}\n{usage_line}"


def failure(exc: BaseException) -> Failure | None:
    """The exit status and error body of an exception the CLI expects; None for a bug (let it raise)."""
    if isinstance(exc, CliError):
        return _failure(exc.exit_status, exc.code, exc.message, exc.detail)
    if isinstance(exc, errors.APIError):
        status = Exit.SERVER if exc.status >= 500 else Exit.USAGE
        if isinstance(exc, errors.NoResultError):  # the task ended without a result: it failed or was cancelled
            status = Exit.TASK_FAILED
        return _failure(status, exc.code, exc.message, exc.detail, exc.correlation_id, http_status=exc.status)
    if isinstance(exc, errors.TransportError):
        return _failure(Exit.SERVER, CliCode.UNREACHABLE, str(exc))
    if isinstance(exc, errors.WaitTimeoutError):
        state = exc.task.state if exc.task is not None else None
        return _failure(Exit.TIMEOUT, CliCode.WAIT_TIMEOUT, str(exc), {"task_id": exc.task_id, "state": state})
    if isinstance(exc, errors.TaskFailedError):
        error = exc.error
        if error is None:
            return _failure(Exit.TASK_FAILED, CliCode.TASK_FAILED, str(exc), {"task_id": exc.task.id})
        return _failure(Exit.TASK_FAILED, error.code, f"task {exc.task.id} failed: {error.message}", error.detail)
    if isinstance(exc, errors.TaskCancelledError):
        return _failure(Exit.TASK_FAILED, CliCode.TASK_CANCELLED, str(exc), {"task_id": exc.task.id})
    if isinstance(exc, errors.KeyFileError):
        mode = None if exc.mode is None else f"{exc.mode:04o}"
        return _failure(Exit.USAGE, CliCode.USAGE, str(exc), {"path": exc.path, "mode": mode})
    if isinstance(exc, errors.UsageError):
        return _failure(Exit.USAGE, CliCode.USAGE, str(exc))
    return None


def _failure(
    status: Exit,
    code: str,
    message: str,
    detail: Any = None,
    correlation_id: str | None = None,
    *,
    http_status: int | None = None,
) -> Failure:
    info: dict[str, Any] = {
        "code": str(code),
        "message": message,
        "detail": detail,
        "correlation_id": correlation_id,
        "timestamp": datetime.now(UTC).isoformat(),
    }
    if http_status is not None:
        info["status"] = http_status
    return Failure(status, {"error": info})
