"""What the admissibility check reports: a typed violation per reason, with its line and qubits."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ViolationCode(StrEnum):
    UNKNOWN_GATE = "UNKNOWN_GATE"
    QUBIT_OUT_OF_RANGE = "QUBIT_OUT_OF_RANGE"
    QUBIT_OFFLINE = "QUBIT_OFFLINE"
    NO_COUPLING = "NO_COUPLING"
    PARSE_ERROR = "PARSE_ERROR"
    UNKNOWN_DIALECT = "UNKNOWN_DIALECT"
    INCLUDE_NOT_ALLOWED = "INCLUDE_NOT_ALLOWED"
    UNSUPPORTED_CONTROL_FLOW = "UNSUPPORTED_CONTROL_FLOW"
    """A control-flow construct (`if`, `for`, `while`, `switch`) the device does not execute."""
    PARAMETER_MISMATCH = "PARAMETER_MISMATCH"
    """A PUB's `parameter_values` do not give one value per `input` its circuit declares."""


@dataclass(frozen=True)
class Violation:
    code: ViolationCode
    line: int | None
    """1-based line of the statement's first character; None for the program as a whole."""
    message: str
    operands: tuple[int, ...] = ()
    """The physical qubits concerned, in the order the statement names them."""
    gate: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": str(self.code),
            "line": self.line,
            "gate": self.gate,
            "operands": list(self.operands),
            "message": self.message,
        }


class Rejection(Exception):
    """Why the statement being read cannot run; the checker records it at that statement's line."""

    def __init__(
        self, code: ViolationCode, message: str, operands: tuple[int, ...] = (), gate: str | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.operands, self.gate = code, message, operands, gate


def parse_error(message: str, operands: tuple[int, ...] = ()) -> Rejection:
    return Rejection(ViolationCode.PARSE_ERROR, message, operands)
