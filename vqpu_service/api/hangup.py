"""Whether a request's client is still connected, readable from any thread: a CLAIM's transaction asks
just before it commits, so that a long poll whose agent died while it waited hands that agent nothing.

A task waits on the request's receive channel. The body has been read before the endpoint runs, so what
the server sends next is `http.disconnect`: the client hung up (Starlette's `Request.is_disconnected`
reads the same message, but only when asked, and only on the event loop)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.requests import Request


class Connection:
    def __init__(self, request: Request) -> None:
        self._receive = request.receive
        self._gone = False

    def gone(self) -> bool:
        """True once the client has hung up (or died: the kernel closes its sockets)."""
        return self._gone

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self._gone = True


@contextlib.asynccontextmanager
async def watched(request: Request) -> AsyncIterator[Connection]:
    """The request's connection, watched until the block ends."""
    connection = Connection(request)
    watcher = asyncio.create_task(connection._watch(), name="hangup-watch")
    try:
        yield connection
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
