"""Every error code any process reports, and the runner's exit codes. Standard library only."""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum, StrEnum


class ErrorCode(StrEnum):
    # --- the REST API (the status each is sent with is in parentheses) -------------------------
    INVALID_REQUEST = "INVALID_REQUEST"  # (400) the body or a parameter does not match the API
    MALFORMED_JSON = "MALFORMED_JSON"  # (400) the body is not JSON
    UNSAFE_TEXT = "UNSAFE_TEXT"  # (400) a string holds NUL or a lone surrogate, or JSON nests too deep
    INVALID_OPTIONS = "INVALID_OPTIONS"  # (400) run options the runner would refuse
    INVALID_SHOTS = "INVALID_SHOTS"  # (400) shots outside 1..max_shots
    UNKNOWN_DIALECT = "UNKNOWN_DIALECT"  # (400)
    INVALID_SNAPSHOT = "INVALID_SNAPSHOT"  # (400) a device snapshot fails validation
    INVALID_SETTINGS = "INVALID_SETTINGS"  # server start-up: a setting is bad (exit status 2)
    UNAUTHENTICATED = "UNAUTHENTICATED"  # (401)
    FORBIDDEN = "FORBIDDEN"  # (403)
    NOT_FOUND = "NOT_FOUND"  # (404)
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"  # (405)
    CONFLICT = "CONFLICT"  # (409)
    ILLEGAL_TRANSITION = "ILLEGAL_TRANSITION"  # (409) not in the lifecycle table
    FENCED = "FENCED"  # (409) a claim token that is no longer current
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"  # (409) same Idempotency-Key, different body
    RESULT_NOT_READY = "RESULT_NOT_READY"  # (409) the task is not finished yet
    NO_RESULT = "NO_RESULT"  # (409) the task finished without a result
    DEVICE_EXISTS = "DEVICE_EXISTS"  # (409) registering a device id twice
    KEY_EXISTS = "KEY_EXISTS"  # `vqpu-server keys create` with a name in use
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"  # (413)
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"  # (415) a body that is not application/json
    NOT_ADMISSIBLE = "NOT_ADMISSIBLE"  # (422) the circuit cannot run on the device; violations in detail
    TOO_LARGE = "TOO_LARGE"  # (422) a priced size over a limit (memory, gates, result): detail names it
    TOO_LONG = "TOO_LONG"  # (422) the task's estimated run time exceeds its wall-time limit; detail has both
    INVALID_RESULT = "INVALID_RESULT"  # (422) a completed report whose result is not vqpu.result/1
    QUEUE_FULL = "QUEUE_FULL"  # (429) the owner has as many QUEUED tasks as allowed; Retry-After says when to retry
    UNAVAILABLE = "UNAVAILABLE"  # (503)
    INTERNAL = "INTERNAL"  # (500) a bug: quote the correlation id

    # --- a task's failure (the `error` of a FAILED task) ---------------------------------------
    NOT_ADMISSIBLE_AT_CLAIM = "NOT_ADMISSIBLE_AT_CLAIM"  # the epoch bound at claim no longer admits it
    FORCE_FAILED = "FORCE_FAILED"  # an admin force-failed the task
    EXECUTION_ERROR = "EXECUTION_ERROR"  # the agent could not execute it (its Prefect or scheduler failed)
    TIME_LIMIT_EXCEEDED = "TIME_LIMIT_EXCEEDED"  # the run reached its wall-time limit (detail: limit_s, used_s)

    # --- the runner's error.json (exit 2: the run directory can never succeed as it is) --------
    MISSING_FILE = "MISSING_FILE"
    INVALID_JSON = "INVALID_JSON"
    INVALID_TASK = "INVALID_TASK"
    SNAPSHOT_MISMATCH = "SNAPSHOT_MISMATCH"
    PARSE_ERROR = "PARSE_ERROR"
    NO_MEASUREMENTS = "NO_MEASUREMENTS"
    # (exit 3: the payload was valid, the simulation failed)
    SIMULATION_ERROR = "SIMULATION_ERROR"
    GPU_UNAVAILABLE = "GPU_UNAVAILABLE"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    # (exit 1)
    RUNNER_CRASH = "RUNNER_CRASH"

    # --- what reading a run directory's outcome can find besides the runner's own documents ----
    RESULT_MALFORMED = "RESULT_MALFORMED"  # result.json / error.json exists but is not a valid document


class ExitCode(IntEnum):
    """`python -m runner RUN_DIR` exit statuses."""

    DONE = 0
    CRASH = 1
    INVALID_PAYLOAD = 2
    SIMULATION_FAILED = 3


FIELD_CODES: dict[str, ErrorCode] = {
    "options": ErrorCode.INVALID_OPTIONS,
    "shots": ErrorCode.INVALID_SHOTS,
    "dialect": ErrorCode.UNKNOWN_DIALECT,
    "result": ErrorCode.INVALID_RESULT,
}
"""A document whose only problems lie in one of these top-level fields gets that field's code."""


def code_for_fields(fields: Iterable[str], default: ErrorCode) -> ErrorCode:
    """The specific code of the one field every validation problem lies in, else `default`."""
    found = {FIELD_CODES.get(f) for f in fields}
    only = found.pop() if len(found) == 1 else None
    return default if only is None else only
