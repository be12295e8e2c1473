"""In-process fan-out of committed events to SSE subscribers (D9; docs/api.md, events).

Publication happens on the event loop and must never wait for a subscriber: each one has a bounded
queue, and one whose queue is full is evicted (it reconnects with Last-Event-ID and replays from the
store) instead of slowing every other subscriber and the pump that feeds them.
"""

from __future__ import annotations

import asyncio

from vqpu_service.domain.events import DEVICE_EVENTS, Event
from vqpu_service.ports import EventFilter


def matches(flt: EventFilter, event: Event) -> bool:
    """The store's EventFilter semantics (SqlStore.events_after), applied to one event in memory."""
    if flt.task_id is not None and event.task_id != flt.task_id:
        return False
    if flt.device_id is not None and event.device_id != flt.device_id:
        return False
    if flt.types is not None and event.type not in flt.types:
        return False
    return flt.owner is None or event.owner == flt.owner or event.type in DEVICE_EVENTS


class Subscription:
    """One subscriber's bounded queue. `closed` is set when the broker drops it (eviction or unsubscribe)."""

    def __init__(self, flt: EventFilter, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("a subscription needs room for at least one event")
        self.filter = flt
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.closed = asyncio.Event()
        self.evicted = False

    def matches(self, event: Event) -> bool:
        return matches(self.filter, event)


class Broker:
    """Not thread-safe by design: every method runs on the event loop thread (the pump publishes there)."""

    def __init__(self) -> None:
        self._subs: dict[Subscription, None] = {}  # insertion-ordered set
        self.published = 0
        """Events offered to the broker."""
        self.delivered = 0
        """Events enqueued to a subscriber (one per matching subscriber)."""
        self.evicted = 0
        """Subscribers dropped because their queue was full."""

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def subscribe(self, flt: EventFilter, maxsize: int) -> Subscription:
        sub = Subscription(flt, maxsize)
        self._subs[sub] = None
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Idempotent; also fine for a subscription the broker already evicted."""
        self._subs.pop(sub, None)
        sub.closed.set()

    def publish(self, event: Event) -> None:
        self.published += 1
        for sub in list(self._subs):  # eviction mutates the dict
            if not sub.matches(event):
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                self._evict(sub)
            else:
                self.delivered += 1

    def close(self) -> None:
        """Drop every subscriber (server shutdown): their streams end at their next wake-up."""
        for sub in list(self._subs):
            self.unsubscribe(sub)

    def _evict(self, sub: Subscription) -> None:
        self._subs.pop(sub, None)
        sub.evicted = True
        sub.closed.set()
        self.evicted += 1
