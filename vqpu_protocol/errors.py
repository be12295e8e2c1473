"""The one error shape: the API's error body, and the error document of a run directory or report."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from vqpu_protocol.limits import MAX_TEXT_CHARS
from vqpu_protocol.wire import Document, Response, SafeStr

Code = Annotated[SafeStr, Field(min_length=1, max_length=64, pattern=r"^[A-Z][A-Z0-9_]*$")]


class ErrorInfo(Response):
    code: str = Field(description="a stable, machine-readable code (see the error-code table)")
    message: str = Field(description="what went wrong, for a person")
    detail: Any = Field(None, description="structured context: violations, the offending fields, ...")
    correlation_id: str = Field(description="quote it when asking an operator; also the X-Correlation-ID header")
    timestamp: str = Field(description="when the server answered (ISO 8601, UTC)")


class ErrorBody(Response):
    """Every 4xx and 5xx answer of the REST API."""

    error: ErrorInfo


class ErrorDocument(Document):
    """Why a task failed: the runner's `error.json`, the `error` of a failed report and of a FAILED task."""

    code: Code
    message: Annotated[SafeStr, Field(max_length=MAX_TEXT_CHARS)]
    detail: Any = None
