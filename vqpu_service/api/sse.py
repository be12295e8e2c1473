"""Server-sent events: replay from the store after Last-Event-ID, then follow the broker.

The order is what makes a reconnect lossless: subscribe first, so nothing committed from then on can
be missed; replay from the store, which may overlap what the subscription has already queued; then
follow the subscription, skipping ids already sent. Ids commit in id order, so "greater than the last
id sent" is exactly "not yet sent".
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio

from vqpu_protocol.limits import MAX_SERIAL
from vqpu_service.adapters.broker import Broker
from vqpu_service.domain.errors import InvalidRequest
from vqpu_service.domain.events import Event
from vqpu_service.ports import EventFilter

PAGE = 500
KEEPALIVE = ": keep-alive\n\n"
EVICTED = ": evicted: slow consumer, reconnect with Last-Event-ID\n\n"
_DIGITS = re.compile(r"[0-9]{1,19}")  # bounded before int(): a huge number is refused, never converted


def frame(event: Event) -> str:
    data = json.dumps(event.to_wire(), separators=(",", ":"))  # one line: JSON escapes newlines
    return f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n"


def parse_last_event_id(header: str | None, query: int | None) -> int:
    """The Last-Event-ID header (sent by a reconnecting EventSource) wins over the query parameter."""
    if header is not None and header.strip():
        text = header.strip()
        if not _DIGITS.fullmatch(text) or int(text) > MAX_SERIAL:
            raise InvalidRequest(f"Last-Event-ID must be a non-negative event id, not {header!r}")
        return int(text)
    if query is None:
        return 0
    if query < 0 or query > MAX_SERIAL:
        raise InvalidRequest(f"last_event_id must be a non-negative event id, not {query}")
    return query


Replay = Callable[[int, EventFilter, int], list[Event]]
"""Committed events after an id that pass a filter, at most so many, oldest first (`EventService.after`)."""


async def event_stream(
    replay: Replay,
    broker: Broker,
    flt: EventFilter,
    last_event_id: int,
    *,
    keepalive_s: float,
    maxsize: int,
    is_disconnected: Callable[[], Awaitable[bool]],
) -> AsyncIterator[str]:
    sub = broker.subscribe(flt, maxsize)
    try:
        last = last_event_id
        while True:
            page = await anyio.to_thread.run_sync(replay, last, flt, PAGE)
            for event in page:
                yield frame(event)
                last = event.id
            if len(page) < PAGE:
                break
            if await is_disconnected():
                return
        while True:
            if sub.closed.is_set():
                if sub.evicted:
                    yield EVICTED
                return
            queued = await _next(sub.queue, keepalive_s)
            if queued is None:
                # Only when idle: a busy stream notices a gone client when its write fails.
                if await is_disconnected():
                    return
                yield KEEPALIVE
                continue
            if queued.id <= last:  # already sent by the replay
                continue
            yield frame(queued)
            last = queued.id
    finally:
        broker.unsubscribe(sub)


async def _next(queue: asyncio.Queue[Event], timeout_s: float) -> Event | None:
    """The next queued event, or None after `timeout_s` without one."""
    try:
        return queue.get_nowait()  # the common case under load, without a timer per event
    except asyncio.QueueEmpty:
        pass
    try:
        return await asyncio.wait_for(queue.get(), timeout_s)
    except TimeoutError:
        return None
