"""Every error the control plane reports, as one tree; the API gives each one wire shape (DESIGN §5).

ServiceError
├── InvalidRequest        400  malformed or out-of-range input
│   └── NotAdmissible     422  the circuit cannot run on the device (violations in detail)
├── Unauthenticated       401  no key, or an unknown one
├── Forbidden             403  the key's role or tenancy does not allow this
├── NotFound              404  unknown task, device, epoch
├── Conflict              409  the request contradicts stored state
│   ├── IllegalTransition      not in the lifecycle table (terminal states absorb)
│   ├── Fenced                 a report or heartbeat with a claim token that is no longer current
│   └── IdempotencyConflict    the same Idempotency-Key with a different body
├── PayloadTooLarge       413  a body, circuit or snapshot over the configured limit
└── Unavailable           503  the store cannot serve right now
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    code = "INTERNAL"
    status = 500

    def __init__(self, message: str, detail: Any = None, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        if code is not None:
            self.code = code


class InvalidRequest(ServiceError):
    code, status = "INVALID_REQUEST", 400


class NotAdmissible(InvalidRequest):
    code, status = "NOT_ADMISSIBLE", 422


class Unauthenticated(ServiceError):
    code, status = "UNAUTHENTICATED", 401


class Forbidden(ServiceError):
    code, status = "FORBIDDEN", 403


class NotFound(ServiceError):
    code, status = "NOT_FOUND", 404


class Conflict(ServiceError):
    code, status = "CONFLICT", 409


class IllegalTransition(Conflict):
    code = "ILLEGAL_TRANSITION"


class Fenced(Conflict):
    code = "FENCED"


class IdempotencyConflict(Conflict):
    code = "IDEMPOTENCY_CONFLICT"


class PayloadTooLarge(ServiceError):
    code, status = "PAYLOAD_TOO_LARGE", 413


class Unavailable(ServiceError):
    code, status = "UNAVAILABLE", 503
