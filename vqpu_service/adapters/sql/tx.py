"""Transactions and event writing, the same for both databases where it can be, explicit where not."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from vqpu_service.adapters.sql.engine import IMMEDIATE, is_sqlite
from vqpu_service.adapters.sql.schema import EventRow
from vqpu_service.domain.errors import Unavailable
from vqpu_service.domain.events import NewEvent

log = logging.getLogger(__name__)
EVENT_LOCK = 0x76717075  # 'vqpu': serialises event inserts so ids commit in id order (PostgreSQL)
NOTIFY_CHANNEL = "vqpu_events"


class Transactions:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sqlite = is_sqlite(engine)
        self.after_commit: list[Callable[[], None]] = []
        """Called after every committed transaction that wrote events (the local event pump)."""

    @contextmanager
    def session(self, *, write: bool) -> Iterator[Session]:
        """One transaction; a write on SQLite starts with BEGIN IMMEDIATE."""
        wrote = False
        try:
            with self.engine.connect() as conn:
                if write and self.sqlite:
                    conn = conn.execution_options(**{IMMEDIATE: True})
                with conn.begin(), Session(bind=conn, expire_on_commit=False, autoflush=False) as s:
                    yield s
                    s.flush()
                    wrote = bool(s.info.get("events"))
        except OperationalError as exc:
            raise Unavailable(f"the database cannot serve this request: {exc.orig}") from exc
        if wrote:
            for callback in self.after_commit:
                try:
                    callback()
                except Exception:  # the write is committed; a failing observer must not make it look failed
                    log.exception("after-commit callback failed")

    def lock_order(self, s: Session) -> None:
        """PostgreSQL: take the event lock now, before rows whose sequence numbers must commit in order
        (task seq, event id) are inserted. Re-entrant within the transaction."""
        if not self.sqlite and not s.info.get("event_lock"):
            s.exec(text("SELECT pg_advisory_xact_lock(:k)").bindparams(k=EVENT_LOCK))  # type: ignore[call-overload]
            s.info["event_lock"] = True  # held to the end of the transaction: one round trip is enough

    def write_events(self, s: Session, events: Sequence[NewEvent], now: datetime) -> None:
        if not events:
            return
        self.lock_order(s)
        for e in events:
            s.add(
                EventRow(
                    time=now,
                    type=str(e.type),
                    subject=e.subject,
                    task_id=e.task_id,
                    device_id=e.device_id,
                    owner=e.owner,
                    data=e.data,
                )
            )
        if not self.sqlite:
            s.exec(text("SELECT pg_notify(:c, '')").bindparams(c=NOTIFY_CHANNEL))  # type: ignore[call-overload]
        s.info["events"] = True
