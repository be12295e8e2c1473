"""Reading `GET /v1/events`: a server-sent-events decoder, linear in what it is fed and bounded in what it keeps.

The server sends `id`, `event` and `data` per event (data is the event as one line of JSON) and
comment lines (`: keep-alive`, `: evicted ...`). `Lines` cuts the raw bytes into lines and keeps at
most `MAX_LINE_BYTES` of an unfinished one: a longer line ends the stream with `StreamBroken` as soon
as it passes the limit, before more of it is held; `Decoder` bounds an event's data the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from pydantic import ValidationError

from vqpu_protocol.api.tasks import EventView

MAX_LINE_BYTES = 1 << 20
"""The longest line, and the most data one event may carry (the server's events are a few hundred bytes)."""
EVENT_STREAM = "text/event-stream"
_LINE_END = re.compile(rb"\r\n|\r|\n")


class StreamBroken(Exception):
    """The stream sent something that is not the server's event stream; reconnecting is the remedy."""


@dataclass
class Lines:
    """Feed it the stream's bytes as they arrive; it yields each complete line (without its line ending).

    Holds at most `limit` bytes of an unfinished line (plus the chunk being cut): a line that grows
    past it raises `StreamBroken` at once, whatever the rest of it would have been.
    """

    limit: int = MAX_LINE_BYTES
    _partial: bytearray = field(default_factory=bytearray)
    _after_cr: bool = False

    def feed(self, chunk: bytes) -> Iterator[str]:
        start = 1 if self._after_cr and chunk.startswith(b"\n") else 0  # a CRLF split between two chunks
        self._after_cr = False
        for end in _LINE_END.finditer(chunk, start):
            piece = chunk[start : end.start()]
            self._check(len(self._partial) + len(piece))
            line = bytes(self._partial) + piece if self._partial else piece
            self._partial.clear()
            start = end.end()
            self._after_cr = end.group() == b"\r" and start == len(chunk)
            yield line.decode("utf-8", errors="replace")
        rest = len(chunk) - start
        self._check(len(self._partial) + rest)
        self._partial += chunk[start:]

    def _check(self, size: int) -> None:
        if size > self.limit:
            raise StreamBroken(f"an event-stream line of more than {self.limit} bytes")


@dataclass
class Decoder:
    """Feed it lines (without their line ending); it yields each complete event."""

    evicted: bool = False
    _data: list[str] | None = None
    _size: int = 0

    def feed(self, line: str) -> Iterator[EventView]:
        if len(line) > MAX_LINE_BYTES:
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
            self._size += len(value) + 1  # + the newline that joins it: a million empty `data:` lines count too
            if self._size > MAX_LINE_BYTES:
                raise StreamBroken(f"an event of more than {MAX_LINE_BYTES} characters of data")
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
