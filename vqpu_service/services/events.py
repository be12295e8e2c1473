"""The event log as the API reads it: pages after an id (SSE replay) and the last id (health)."""

from __future__ import annotations

from vqpu_service.domain.events import Event
from vqpu_service.ports import EventFilter, Store


class EventService:
    def __init__(self, store: Store) -> None:
        self._store = store

    def after(self, last_id: int, flt: EventFilter, limit: int) -> list[Event]:
        """Committed events after `last_id` that pass `flt` (whose tenancy the caller has set), oldest first."""
        return self._store.events_after(last_id, flt, limit)

    def last_id(self) -> int:
        return self._store.last_event_id()
