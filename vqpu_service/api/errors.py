"""One error shape everywhere: `{"error": {code, message, detail, correlation_id, timestamp}}`."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vqpu_service.domain.errors import ServiceError

log = logging.getLogger("vqpu_service.api")
HEADER = "X-Correlation-ID"


def error_response(status: int, code: str, message: str, detail: Any, correlation_id: str) -> JSONResponse:
    body = {
        "error": {
            "code": code,
            "message": message,
            "detail": detail,
            "correlation_id": correlation_id,
            "timestamp": datetime.now(UTC).isoformat(),
        }
    }
    return JSONResponse(body, status_code=status, headers={HEADER: correlation_id})


def correlation_id(request: Request) -> str:
    return str(getattr(request.state, "correlation_id", None) or uuid.uuid4().hex)


def install(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.detail, correlation_id(request))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()]
        malformed = any(p["type"] == "json_invalid" for p in problems)
        return error_response(
            400,
            "MALFORMED_JSON" if malformed else "INVALID_REQUEST",
            "the request body is not valid JSON" if malformed else "the request does not match the API schema",
            problems,
            correlation_id(request),
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}.get(
            exc.status_code, "HTTP_ERROR"
        )
        return error_response(exc.status_code, code, str(exc.detail), None, correlation_id(request))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        cid = correlation_id(request)
        log.exception("unhandled error (correlation id %s)", cid)
        return error_response(500, "INTERNAL", "internal error; quote the correlation id", None, cid)


class Guard:
    """ASGI middleware: a correlation id on every request, and 413 for bodies over the limit (counted as
    they stream, so a missing or lying Content-Length does not get past it)."""

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
        too_large = error_response(
            413, "PAYLOAD_TOO_LARGE", f"request bodies are limited to {self.limit} bytes", {"limit": self.limit}, cid
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
