"""/v1/admin and /v1/health."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from vqpu_protocol.wire import Request, Response, SafeStr


class AdminAction(Request):
    reason: Annotated[SafeStr, Field(min_length=1, max_length=500)] = "admin action"


class Health(Response):
    status: str
    version: str
    last_event_id: int
