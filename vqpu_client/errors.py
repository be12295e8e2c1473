"""The client's exceptions: a small typed tree that mirrors the server's error codes.

Every answer of the server that is an error body becomes an `APIError` subclass chosen by its code
(falling back to its HTTP status), carrying the code, message, detail, status and correlation id.
What is not an answer of the server (it could not be reached, or kept failing) is a `TransportError`.
What a finished task says about itself (`wait()`, `result()`) is a `TaskError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vqpu_protocol.codes import ErrorCode

if TYPE_CHECKING:
    from vqpu_protocol.api.tasks import TaskView


class VQPUError(Exception):
    """Anything the client raises on purpose."""


class TransportError(VQPUError):
    """The server could not be reached or kept failing after the client's retries; nothing it sent is known."""


class APIError(VQPUError):
    """The server answered with its error body `{"error": {code, message, detail, correlation_id, ...}}`."""

    def __init__(
        self, code: str, message: str, *, status: int, detail: Any = None, correlation_id: str | None = None
    ) -> None:
        super().__init__(f"{code}: {message}" + (f" (correlation id {correlation_id})" if correlation_id else ""))
        self.code = code
        self.message = message
        self.status = status
        self.detail = detail
        self.correlation_id = correlation_id


class InvalidRequestError(APIError):
    """400: the request does not match the API (INVALID_REQUEST, INVALID_SHOTS, INVALID_OPTIONS, ...)."""


class AuthenticationError(APIError):
    """401: no key, or a key the server does not know."""


class PermissionDeniedError(APIError):
    """403: the key's role may not do this (an admin route, another user's task)."""


class NotFoundError(APIError):
    """404: no such device, epoch or task (or not yours)."""


class ConflictError(APIError):
    """409: the request conflicts with the current state."""


class IllegalTransitionError(ConflictError):
    """409 ILLEGAL_TRANSITION: not in the lifecycle table (e.g. cancelling a finished task)."""


class FencedError(ConflictError):
    """409 FENCED: a claim token that is no longer current."""


class IdempotencyConflictError(ConflictError):
    """409 IDEMPOTENCY_CONFLICT: the Idempotency-Key was used before with a different body."""


class ResultNotReadyError(ConflictError):
    """409 RESULT_NOT_READY: the task has not finished."""


class NoResultError(ConflictError):
    """409 NO_RESULT: the task finished without a result (it failed or was cancelled)."""


class PayloadTooLargeError(APIError):
    """413: the body or the circuit is larger than the server accepts."""


class NotAdmissibleError(APIError):
    """422 NOT_ADMISSIBLE: the circuit cannot run on the device; `violations` says why."""

    @property
    def violations(self) -> list[dict[str, Any]]:
        detail = self.detail
        found = detail.get("violations") if isinstance(detail, dict) else detail
        return [v for v in found if isinstance(v, dict)] if isinstance(found, list) else []


class LimitExceededError(InvalidRequestError):
    """422 TOO_LARGE or TOO_LONG: the task's price exceeds a limit (memory, expanded size, result size, wall
    time); nothing was stored. `limit` names the limit, `estimate` is the whole price (docs/admission.md)."""

    @property
    def limit(self) -> str | None:
        found = self.detail.get("limit") if isinstance(self.detail, dict) else None
        return found if isinstance(found, str) else None

    @property
    def estimate(self) -> dict[str, Any] | None:
        found = self.detail.get("estimate") if isinstance(self.detail, dict) else None
        return found if isinstance(found, dict) else None


class QueueFullError(APIError):
    """429 QUEUE_FULL: you have as many QUEUED tasks as the server allows; nothing was stored. Submit again
    after `retry_after_s` seconds (the server's Retry-After), or once some of your tasks have started."""

    retry_after_s: float | None = None


class UnavailableError(APIError):
    """503: the server is starting, draining, or its database does not answer (retried before raised)."""


class ServerError(APIError):
    """500 or another 5xx: a bug on the server; quote the correlation id."""


class TaskError(VQPUError):
    """A task ended other than COMPLETED; `task` is its final record."""

    def __init__(self, task: TaskView, message: str) -> None:
        super().__init__(message)
        self.task = task


class TaskFailedError(TaskError):
    """The task FAILED; `code` and `error` are the task's error document."""

    def __init__(self, task: TaskView) -> None:
        error = task.error
        self.code = error.code if error is not None else None
        self.error = error
        what = f"{error.code}: {error.message}" if error is not None else "no error document"
        super().__init__(task, f"task {task.id} failed: {what}")


class TaskCancelledError(TaskError):
    """The task was CANCELLED."""

    def __init__(self, task: TaskView) -> None:
        super().__init__(task, f"task {task.id} was cancelled")


class WaitTimeoutError(VQPUError, TimeoutError):
    """`wait(timeout=...)` ran out before the task finished; `task` is its last known record."""

    def __init__(self, task_id: str, timeout_s: float, task: TaskView | None) -> None:
        state = task.state if task is not None else "unknown"
        super().__init__(f"task {task_id} did not finish within {timeout_s} s (last seen {state})")
        self.task_id = task_id
        self.task = task


_BY_CODE: dict[str, type[APIError]] = {
    ErrorCode.ILLEGAL_TRANSITION: IllegalTransitionError,
    ErrorCode.FENCED: FencedError,
    ErrorCode.IDEMPOTENCY_CONFLICT: IdempotencyConflictError,
    ErrorCode.RESULT_NOT_READY: ResultNotReadyError,
    ErrorCode.NO_RESULT: NoResultError,
    ErrorCode.NOT_ADMISSIBLE: NotAdmissibleError,
    ErrorCode.TOO_LARGE: LimitExceededError,
    ErrorCode.TOO_LONG: LimitExceededError,
    ErrorCode.QUEUE_FULL: QueueFullError,
}
_BY_STATUS: dict[int, type[APIError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: InvalidRequestError,
    409: ConflictError,
    413: PayloadTooLargeError,
    415: InvalidRequestError,
    422: InvalidRequestError,
    429: QueueFullError,
    503: UnavailableError,
}


def api_error(status: int, code: str, message: str, detail: Any, correlation_id: str | None) -> APIError:
    """The exception for one error answer: by its code where the code has its own class, else by status."""
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status) or (ServerError if status >= 500 else APIError)
    return cls(code, message, status=status, detail=detail, correlation_id=correlation_id)


class UsageError(VQPUError, ValueError):
    """The call cannot be made as asked (found before anything is sent), e.g. a circuit without an OPENQASM header."""


class KeyFileError(UsageError):
    """A key file that cannot be trusted or read: not yours, open to other accounts, not a regular file, or not one key.

    `path` names the file; `mode` is its permission bits when they are the problem. The message never
    holds the file's content.
    """

    def __init__(self, path: str, message: str, mode: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.mode = mode
