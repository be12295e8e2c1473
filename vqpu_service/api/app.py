"""The FastAPI application over a wired Container; the lifespan belongs to the composition root."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI

from vqpu_service import __version__
from vqpu_service.api import admin, agent, devices, errors, events, tasks
from vqpu_service.container import Container


def create_app(
    container: Container, lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None
) -> FastAPI:
    app = FastAPI(
        title="HPC-vQPU control plane",
        version=__version__,
        description="Virtual QPUs exported from a batch-scheduled HPC site (DESIGN §5).",
        lifespan=lifespan,
    )
    app.state.container = container
    errors.install(app)
    for module in (tasks, devices, agent, admin, events):
        app.include_router(module.router)
    app.add_middleware(errors.Guard, max_body_bytes=container.settings.max_body_bytes)
    return app
