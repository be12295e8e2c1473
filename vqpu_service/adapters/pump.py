"""The event pump: the single path by which committed events reach the broker (D9).

It reads the event table after the last id it has seen, so what subscribers observe is exactly what
was committed, in id order (ids commit in id order on both databases). A poke after a local commit,
or a PostgreSQL NOTIFY from another process, wakes it at once; the periodic poll makes it correct
without either (another server, or an admin CLI writing the same SQLite file).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from vqpu_service.adapters.broker import Broker
from vqpu_service.domain.events import Event
from vqpu_service.ports import EventFilter, Store

log = logging.getLogger(__name__)

PAGE = 500
ALL = EventFilter()


class EventPump:
    def __init__(self, store: Store, broker: Broker, on_event: Callable[[Event], None], poll_interval_s: float) -> None:
        if poll_interval_s <= 0:
            raise ValueError("poll_interval_s must be positive")
        self._store = store
        self._broker = broker
        self._on_event = on_event
        self._poll_s = poll_interval_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._done = asyncio.Event()
        self.started = asyncio.Event()
        """Set once the pump knows where it starts; events committed later are all delivered."""
        self.last_id: int | None = None
        """The id of the last event published; None until the pump has started."""

    def poke(self) -> None:
        """Wake the pump now. Thread-safe and never raises: Transactions.after_commit calls it after a
        commit, where an exception would make a committed write look failed to its caller."""
        loop = self._loop
        if loop is None:  # not running yet: run() starts from the committed position anyway
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed (shutdown): nobody is listening
            loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            self.last_id = await self._start_position()
            self.started.set()
            while not self._stopping:
                with contextlib.suppress(TimeoutError):  # the periodic poll
                    await asyncio.wait_for(self._wake.wait(), self._poll_s)
                self._wake.clear()  # before reading: a commit during the read pokes another round
                if self._stopping:
                    break
                await self._drain()
        finally:
            self._loop = None
            self._done.set()

    async def stop(self) -> None:
        """Ask run() to return and wait until it has (at once if it never started)."""
        self._stopping = True
        self._wake.set()
        if self._loop is not None:
            await self._done.wait()

    async def _start_position(self) -> int:
        while True:
            try:
                # asyncio's default executor, not anyio's request limiter: the pump must keep up even
                # when request threads are all busy.
                return await asyncio.to_thread(self._store.last_event_id)
            except Exception:  # the database may be briefly unavailable at startup: retry, do not die
                log.warning("event pump cannot read the last event id; retrying", exc_info=True)
                await asyncio.sleep(self._poll_s)

    async def _drain(self) -> None:
        assert self.last_id is not None
        while True:
            try:
                page = await asyncio.to_thread(self._store.events_after, self.last_id, ALL, PAGE)
            except Exception:  # a transient store error: the next poll or poke reads from the same id
                log.warning("event pump cannot read events after %d; retrying", self.last_id, exc_info=True)
                return
            for event in page:
                self._broker.publish(event)
                try:
                    self._on_event(event)
                except Exception:  # a failing hook must not stop the projection for everyone else
                    log.exception("event hook failed on event %d", event.id)
                self.last_id = event.id
            if len(page) < PAGE:
                return
