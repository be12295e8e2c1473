"""What every route shares: JSON bodies decoded safely (or refused), and its error answers documented.

`JsonRoute` sees a request's body before FastAPI does: a body that is not `application/json` is
415, and a JSON body holding NUL, a lone surrogate or nesting deeper than the protocol allows is
400, before any validation or storage. The decoded value is left where Starlette's `Request.json()`
caches it, so the body is decoded once.
"""

from __future__ import annotations

import email.message
import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from vqpu_protocol.codes import ErrorCode
from vqpu_protocol.errors import ErrorBody
from vqpu_protocol.wire import UnsafeText, decode_json
from vqpu_service.domain.errors import InvalidRequest, UnsupportedMediaType

_DESCRIPTIONS = {
    400: "the request does not match the API: malformed JSON, a wrong type or range, unsafe text",
    401: "no API key, or an unknown one",
    403: "the key's role does not allow this",
    404: "no such task, device or epoch (or not yours)",
    409: "the request contradicts the stored state",
    413: "the body or circuit is over the configured limit",
    415: "the body is not application/json",
    422: "well-formed but refused: not admissible on the device, over a size or time limit (TOO_LARGE, "
    "TOO_LONG), or not a valid result of this task",
    429: "QUEUE_FULL: the owner has as many QUEUED tasks as allowed; retry after the Retry-After header's seconds",
    503: "the service is starting or its database does not answer",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error statuses a route really sends, each with the one error body.
    Every route can answer 400 (parameters) and 401 (keys); only `/v1/health` needs no key."""
    return {s: {"model": ErrorBody, "description": _DESCRIPTIONS[s]} for s in sorted({400, *statuses})}


def with_key(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return errors(401, *statuses)


def with_body(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return with_key(413, 415, *statuses)


class JsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def decode_then_handle(request: Request) -> Response:
            body = await request.body()
            if body:
                _require_json(request.headers.get("content-type"))
                try:
                    request._json = decode_json(body)  # Starlette's cache: FastAPI's request.json() reads it
                except json.JSONDecodeError as exc:
                    raise InvalidRequest(
                        f"the request body is not valid JSON: {exc.msg} at position {exc.pos}",
                        code=ErrorCode.MALFORMED_JSON,
                    ) from None
                except UnsafeText as exc:
                    raise InvalidRequest(str(exc), code=ErrorCode.UNSAFE_TEXT) from None
            return await handler(request)

        return decode_then_handle


def _require_json(content_type: str | None) -> None:
    if content_type:
        message = email.message.Message()
        message["content-type"] = content_type
        subtype = message.get_content_subtype()
        if message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json")):
            return
    raise UnsupportedMediaType(
        f"send the body as JSON with the header 'Content-Type: application/json' (got {content_type or 'none'!r})",
        {"content_type": content_type},
    )
