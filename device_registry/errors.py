"""Errors raised by the device registry.

RegistryError
 ├── SnapshotError        a snapshot failed validation (carries the list of problems)
 ├── ImportFailed         calibration data could not be converted
 └── UnknownDevice        the catalogue has no device of that name
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


class RegistryError(Exception):
    """Translated at each boundary: the API answers INVALID_SNAPSHOT / NOT_FOUND, the runner exits 2."""


class SnapshotError(RegistryError, ValueError):
    def __init__(self, message: str, problems: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []

    @classmethod
    def from_validation(cls, exc: ValidationError) -> SnapshotError:
        problems = [
            {"loc": ".".join(str(p) for p in err["loc"]) or "snapshot", "msg": _clean(err["msg"])}
            for err in exc.errors(include_url=False)
        ]
        head = "; ".join(f"{p['loc']}: {p['msg']}" for p in problems[:5])
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        return cls(f"invalid device snapshot: {head}{more}", problems)


class ImportFailed(RegistryError, ValueError):
    pass


class UnknownDevice(RegistryError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown device"


def _clean(msg: str) -> str:
    return msg.removeprefix("Value error, ")
