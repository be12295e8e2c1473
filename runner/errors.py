"""Typed runner failures; each maps to an exit code and an `error.json` document.

RunnerError                 exit 1 (crash; code RUNNER_CRASH)
 ├── InvalidPayload         exit 2: the run dir can never succeed as it is (permanent)
 └── SimulationFailed       exit 3: the payload was valid but the simulation failed
"""

from __future__ import annotations

from typing import Any

from vqpu_protocol.codes import ErrorCode, ExitCode
from vqpu_protocol.errors import ErrorDocument


class RunnerError(Exception):
    exit_code = ExitCode.CRASH

    def __init__(self, code: ErrorCode, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail

    def to_document(self) -> ErrorDocument:
        return ErrorDocument(code=self.code, message=self.message, detail=self.detail)


class InvalidPayload(RunnerError):
    """Codes: MISSING_FILE, INVALID_JSON, INVALID_TASK, INVALID_OPTIONS, INVALID_SNAPSHOT,
    SNAPSHOT_MISMATCH, UNKNOWN_DIALECT, INVALID_SHOTS, PARSE_ERROR,
    NOT_ADMISSIBLE (an include other than the standard library's among them), NO_MEASUREMENTS,
    TOO_LARGE (counts that could exceed MAX_COUNTS_CHARS: refused before simulating)."""

    exit_code = ExitCode.INVALID_PAYLOAD


class SimulationFailed(RunnerError):
    """Codes: SIMULATION_ERROR, GPU_UNAVAILABLE, OUT_OF_MEMORY (over the slot's memory: priced before
    simulating, or met by the memory limit), TIME_LIMIT_EXCEEDED (written by runner.limits' watchdog)."""

    exit_code = ExitCode.SIMULATION_FAILED
