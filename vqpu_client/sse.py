"""Reading `GET /v1/events`: a server-sent-events decoder, linear in what it is fed.

The server sends `id`, `event` and `data` per event (data is the event as one line of JSON) and
comment lines (`: keep-alive`, `: evicted ...`). A line longer than `MAX_LINE_CHARS` ends the stream
with an error instead of growing without bound.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import ValidationError

from vqpu_protocol.api.tasks import EventView

MAX_LINE_CHARS = 1 << 20
EVENT_STREAM = "text/event-stream"


class StreamBroken(Exception):
    """The stream sent something that is not the server's event stream; reconnecting is the remedy."""


@dataclass
class Decoder:
    """Feed it lines (without their line ending); it yields each complete event."""

    evicted: bool = False
    _data: list[str] | None = None
    _size: int = 0

    def feed(self, line: str) -> Iterator[EventView]:
        if len(line) > MAX_LINE_CHARS:
            raise StreamBroken(f"an event-stream line of {len(line)} characters")
        if line == "":
            if self._data is not None:
                data, self._data, self._size = "\n".join(self._data), None, 0
                yield _event(data)
            return
        if line.startswith(":"):
            if line.startswith(": evicted"):
                self.evicted = True
            return
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._size += len(value)
            if self._size > MAX_LINE_CHARS:
                raise StreamBroken("an event of more than 1 MiB")
            (self._data if self._data is not None else self._start()).append(value)
        # `id`, `event` and `retry` repeat what data holds (id, type) or do not apply here.

    def _start(self) -> list[str]:
        self._data = []
        return self._data


def _event(data: str) -> EventView:
    try:
        return EventView.model_validate(json.loads(data))
    except (ValueError, ValidationError) as exc:
        raise StreamBroken(f"an event whose data is not an event: {exc}") from None
