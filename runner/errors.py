"""Typed runner failures; each maps to an exit code and an `error.json` code.

RunnerError                 exit 1 (crash; code RUNNER_CRASH)
 ├── InvalidPayload         exit 2: the run dir can never succeed as it is (permanent)
 └── SimulationFailed       exit 3: the payload was valid but the simulation failed
"""

from __future__ import annotations

from typing import Any


class RunnerError(Exception):
    exit_code = 1

    def __init__(self, code: str, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "detail": self.detail}


class InvalidPayload(RunnerError):
    """Codes: MISSING_FILE, INVALID_JSON, INVALID_TASK, INVALID_SNAPSHOT, SNAPSHOT_MISMATCH,
    UNKNOWN_DIALECT, INVALID_SHOTS, PARSE_ERROR, NOT_ADMISSIBLE, INVALID_OPTIONS."""

    exit_code = 2


class SimulationFailed(RunnerError):
    """Codes: SIMULATION_ERROR, GPU_UNAVAILABLE, OUT_OF_MEMORY."""

    exit_code = 3
