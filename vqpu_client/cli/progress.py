"""A long wait, shown as it goes, on stderr (stdout keeps only the result).

On a terminal: one status line, rewritten in place every half second and at each event (state,
elapsed time, the latest event). Elsewhere (a log file, a pipe): one plain line per event, so a log
shows the queue, claim and schedule as they happened. `--quiet` shows nothing, nor does `--json` unless
stderr is a terminal (a script reading stderr gets only the JSON error body). What comes from the
server is shown escaped (`render.visible`): only the display's own erase-line sequence reaches the
terminal.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

from vqpu_client.cli.events import describe
from vqpu_client.cli.render import visible
from vqpu_protocol.api.tasks import EventView

ERASE_LINE = "\r\x1b[2K"
TICK_S = 0.5


class Progress:
    def __init__(
        self,
        label: str,
        stream: TextIO,
        *,
        enabled: bool = True,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = visible(label)
        self.stream = stream
        self.enabled = enabled
        self.tty = stream.isatty() if tty is None else tty
        self.clock = clock
        self.state = "QUEUED"
        self.latest = "waiting for the event stream"
        self._started = clock()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def elapsed(self) -> float:
        return self.clock() - self._started

    def status_line(self, width: int | None = None) -> str:
        """The terminal's line: `t-1  RUNNING  3.5 s  claimed by site-agent (attempt 1, epoch 0)`."""
        text = f"{self.label}  {self.state}  {self.elapsed():.1f} s  {self.latest}"
        return text if width is None or len(text) < width else text[: max(width - 2, 0)] + "…"

    def on_event(self, event: EventView) -> None:
        """Given to `Client.wait(on_event=...)`: each event of the task as it arrives."""
        state = event.data.get("state")
        with self._lock:
            self.state = visible(state) if isinstance(state, str) else self.state
            self.latest = visible(describe(event))
            if not self.enabled:
                return
            if self.tty:
                self._draw()
            else:
                self.stream.write(f"{self.label}  +{self.elapsed():.1f} s  {visible(event.type)}  {self.latest}\n")
                self.stream.flush()

    def __enter__(self) -> Progress:
        if self.enabled and self.tty:
            self._ticker = threading.Thread(target=self._tick, name="vqpu-progress", daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            with self._lock:
                self._draw()
                self.stream.write("\n")
                self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(TICK_S):
            with self._lock:
                self._draw()

    def _draw(self) -> None:
        width = shutil.get_terminal_size((100, 24)).columns
        self.stream.write(ERASE_LINE + self.status_line(width))
        self.stream.flush()
