"""LISTEN for the NOTIFY that every event-writing PostgreSQL transaction sends, and poke the pump.

This is how a server hears at once about events that another server process committed; the pump's
periodic poll stays the safety net, so a lost connection costs latency, never events.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg
from sqlalchemy.engine import make_url

from vqpu_service.adapters.sql.tx import NOTIFY_CHANNEL

log = logging.getLogger(__name__)


def libpq_conninfo(sqlalchemy_url: str) -> str:
    """`postgresql+psycopg://...` (or plain `postgresql://...`) as a URI libpq accepts."""
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresListener:
    def __init__(
        self,
        url: str,
        poke: Callable[[], None],
        *,
        wake_s: float = 0.5,
        backoff_s: tuple[float, float] = (0.1, 10.0),
    ) -> None:
        self._conninfo = libpq_conninfo(url)
        self._poke = poke
        self._wake_s = wake_s  # how long stop() may wait for the thread to notice
        self._backoff_min, self._backoff_max = backoff_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()
        """Set while a connection is LISTENing (cleared when it drops)."""
        self.notifications = 0

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the listener is already started")
        self._thread = threading.Thread(target=self._run, name="pg-listen", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("the PostgreSQL listener did not stop within %.1f s", timeout_s)

    def _run(self) -> None:
        backoff = self._backoff_min
        while not self._stop.is_set():
            try:
                self._listen()
                return  # stopped on request
            except Exception as exc:  # any failure of the connection: reconnect, never die
                if self.listening.is_set():  # it was up: a fresh failure, retry quickly
                    backoff = self._backoff_min
                self.listening.clear()
                if self._stop.is_set():
                    return
                log.warning("PostgreSQL LISTEN connection failed (%s); reconnecting in %.1f s", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self._backoff_max)

    def _listen(self) -> None:
        timeout = max(1, round(self._wake_s * 4))
        with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=timeout) as conn:
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            self.listening.set()
            # Events may have been committed while no connection was listening: read them now.
            self._poke()
            while not self._stop.is_set():
                for _ in conn.notifies(timeout=self._wake_s):
                    self.notifications += 1
                    self._poke()
                    if self._stop.is_set():
                        break
        self.listening.clear()
