"""The FastAPI application over a wired Container; the lifespan belongs to the composition root."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from vqpu_service import __version__
from vqpu_service.api import admin, agent, devices, errors, events, tasks
from vqpu_service.container import Container


def create_app(
    container: Container, lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None
) -> FastAPI:
    app = FastAPI(
        title="HPC-vQPU control plane",
        version=__version__,
        description=(
            "Virtual QPUs exported from a batch-scheduled HPC site. Every error answers "
            '`{"error": {code, message, detail, correlation_id, timestamp}}`; bodies are JSON '
            "(`Content-Type: application/json`)."
        ),
        lifespan=lifespan,
    )
    app.state.container = container
    errors.install(app)
    for module in (tasks, devices, agent, admin, events):
        app.include_router(module.router)
    app.add_middleware(errors.Guard, max_body_bytes=container.settings.max_body_bytes)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document without the 422 `HTTPValidationError` it adds to every route: this API
    answers a request that fails validation with 400 and the one error body; a route that does
    send 422 declares it itself."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                default = operation.get("responses", {}).get("422", {})
                if "HTTPValidationError" in str(default):
                    del operation["responses"]["422"]
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema
