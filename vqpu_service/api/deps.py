"""Request-scoped dependencies: the composition root's container and the caller's principal.

They are `async def` on purpose: FastAPI runs a plain `def` dependency in its thread pool, a thread
hop per dependency per request, while these only read memory (and stat the keys file).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from vqpu_service.container import Container
from vqpu_service.domain.errors import Forbidden
from vqpu_service.domain.model import Principal


async def container(request: Request) -> Container:
    c: Container = request.app.state.container
    return c


bearer = HTTPBearer(auto_error=False, description="an API key from `vqpu-server keys create`")


async def principal(
    request: Request, _declared: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
) -> Principal:
    # The HTTPBearer dependency declares the scheme in OpenAPI; the key ring reads the header itself,
    # so that every way of getting it wrong has the same typed 401.
    return (await container(request)).keys.authenticate(request.headers.get("authorization"))


async def admin(who: Annotated[Principal, Depends(principal)]) -> Principal:
    if not who.is_admin:
        raise Forbidden(f"this needs an admin key; {who.name} is a {who.role}")
    return who


Who = Annotated[Principal, Depends(principal)]
Admin = Annotated[Principal, Depends(admin)]
Box = Annotated[Container, Depends(container)]
