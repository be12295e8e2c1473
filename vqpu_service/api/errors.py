"""One error shape everywhere: `{"error": {code, message, detail, correlation_id, timestamp}}`."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vqpu_protocol.codes import ErrorCode, code_for_fields
from vqpu_service.domain.errors import QueueFull, ServiceError

log = logging.getLogger("vqpu_service.api")
HEADER = "X-Correlation-ID"


def error_response(
    status: int,
    code: ErrorCode,
    message: str,
    detail: Any,
    correlation_id: str,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {
        "error": {
            "code": code,
            "message": message,
            "detail": detail,
            "correlation_id": correlation_id,
            "timestamp": datetime.now(UTC).isoformat(),
        }
    }
    return JSONResponse(body, status_code=status, headers={**(headers or {}), HEADER: correlation_id})


def correlation_id(request: Request) -> str:
    return str(getattr(request.state, "correlation_id", None) or uuid.uuid4().hex)


def install(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError) -> JSONResponse:
        return error_response(
            exc.status, exc.code, exc.message, exc.detail, correlation_id(request), _retry(request, exc)
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()]
        code = _validation_code(request, problems)
        status = 422 if code is ErrorCode.INVALID_RESULT else 400
        fields = sorted({".".join(map(str, p["loc"][1:])) or "body" for p in problems if p["loc"][:1] == ["body"]})
        message = "the request does not match the API schema" + (f": {', '.join(fields[:5])}" if fields else "")
        return error_response(status, code, message, problems, correlation_id(request))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, ErrorCode.INVALID_REQUEST)
        # Starlette's own headers stay (a 405 says which methods are allowed in `Allow`).
        return error_response(exc.status_code, code, str(exc.detail), None, correlation_id(request), exc.headers)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        cid = correlation_id(request)
        log.exception("unhandled error (correlation id %s)", cid)
        return error_response(500, ErrorCode.INTERNAL, "internal error; quote the correlation id", None, cid)


def _retry(request: Request, exc: ServiceError) -> dict[str, str] | None:
    """A 429 says when to come back (RFC 9110 Retry-After, in seconds)."""
    if not isinstance(exc, QueueFull):
        return None
    return {"Retry-After": str(request.app.state.container.settings.queue_full_retry_after_s)}


_HTTP_CODES = {
    400: ErrorCode.INVALID_REQUEST,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
}
INVALID_CODE = "x-vqpu-invalid-code"
"""A route's `openapi_extra` key: the code of a body that fails validation (e.g. INVALID_SNAPSHOT)."""


def _validation_code(request: Request, problems: list[dict[str, Any]]) -> ErrorCode:
    route = request.scope.get("route")
    body_problems = [p["loc"] for p in problems if p["loc"][:1] == ["body"]]
    declared = (getattr(route, "openapi_extra", None) or {}).get(INVALID_CODE)
    if declared is not None and body_problems and len(body_problems) == len(problems):
        return ErrorCode(declared)
    fields = (str(loc[1]) if len(loc) > 1 else "" for loc in body_problems)
    return code_for_fields(fields, ErrorCode.INVALID_REQUEST) if body_problems else ErrorCode.INVALID_REQUEST


class Guard:
    """ASGI middleware: a correlation id on every request, 400 for a path or query holding NUL, and 413
    for bodies over the limit (counted as they stream, so a missing or lying Content-Length does not
    get past it)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        cid = headers.get(HEADER.lower().encode(), b"").decode("latin-1")[:128] or uuid.uuid4().hex
        scope.setdefault("state", {})["correlation_id"] = cid
        bad_target = _unsafe_target(scope)
        if bad_target is not None:
            await error_response(400, ErrorCode.UNSAFE_TEXT, bad_target, None, cid)(scope, receive, send)
            return
        too_large = error_response(
            413,
            ErrorCode.PAYLOAD_TOO_LARGE,
            f"request bodies are limited to {self.limit} bytes",
            {"limit": self.limit},
            cid,
        )
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await too_large(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:  # FastAPI re-raises HTTPException from body reading as it is
                    raise HTTPException(413, f"request bodies are limited to {self.limit} bytes")
            return message

        async def tagged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                if not any(k.lower() == HEADER.lower().encode() for k, _ in headers):
                    headers.append((HEADER.lower().encode(), cid.encode()))
            await send(message)

        await self.app(scope, limited_receive, tagged_send)


def _unsafe_target(scope: Scope) -> str | None:
    """Why the request's path or query cannot be used (NUL reaches no database), or None."""
    if "\x00" in scope.get("path", ""):
        return "the request path contains a NUL character"
    if b"\x00" in unquote_to_bytes(scope.get("query_string", b"")):
        return "the query string contains a NUL character"
    return None
