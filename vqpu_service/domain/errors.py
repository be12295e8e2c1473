"""Every error the control plane reports, as one tree; the API gives each one wire shape.

ServiceError
├── InvalidRequest        400  malformed or out-of-range input
│   ├── NotAdmissible     422  the circuit cannot run on the device (violations in detail)
│   └── InvalidResult     422  a completed report whose result is not a vqpu.result/1 document
├── Unauthenticated       401  no key, or an unknown one
├── Forbidden             403  the key's role or tenancy does not allow this
├── NotFound              404  unknown task, device, epoch
├── Conflict              409  the request contradicts stored state
│   ├── IllegalTransition      not in the lifecycle table (terminal states absorb)
│   ├── Fenced                 a report or heartbeat with a claim token that is no longer current
│   └── IdempotencyConflict    the same Idempotency-Key with a different body
├── PayloadTooLarge       413  a body, circuit or snapshot over the configured limit
├── UnsupportedMediaType  415  a body that is not application/json
├── QueueFull             429  the owner already has as many QUEUED tasks as allowed (Retry-After)
└── Unavailable           503  the store cannot serve right now
"""

from __future__ import annotations

from typing import Any

from vqpu_protocol.codes import ErrorCode


class ServiceError(Exception):
    code = ErrorCode.INTERNAL
    status = 500

    def __init__(self, message: str, detail: Any = None, *, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        if code is not None:
            self.code = code


class InvalidRequest(ServiceError):
    code, status = ErrorCode.INVALID_REQUEST, 400


class NotAdmissible(InvalidRequest):
    code, status = ErrorCode.NOT_ADMISSIBLE, 422


class InvalidResult(InvalidRequest):
    code, status = ErrorCode.INVALID_RESULT, 422


class Unauthenticated(ServiceError):
    code, status = ErrorCode.UNAUTHENTICATED, 401


class Forbidden(ServiceError):
    code, status = ErrorCode.FORBIDDEN, 403


class NotFound(ServiceError):
    code, status = ErrorCode.NOT_FOUND, 404


class Conflict(ServiceError):
    code, status = ErrorCode.CONFLICT, 409


class IllegalTransition(Conflict):
    code = ErrorCode.ILLEGAL_TRANSITION


class Fenced(Conflict):
    code = ErrorCode.FENCED


class IdempotencyConflict(Conflict):
    code = ErrorCode.IDEMPOTENCY_CONFLICT


class PayloadTooLarge(ServiceError):
    code, status = ErrorCode.PAYLOAD_TOO_LARGE, 413


class QueueFull(ServiceError):
    code, status = ErrorCode.QUEUE_FULL, 429


class UnsupportedMediaType(ServiceError):
    code, status = ErrorCode.UNSUPPORTED_MEDIA_TYPE, 415


class Unavailable(ServiceError):
    code, status = ErrorCode.UNAVAILABLE, 503
