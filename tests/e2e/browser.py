"""A real headless Chromium (Debian's `chromium`, found by tests.requirements.browser) that a test drives as a
person would: it loads pages, types into them and presses keys, and reads back what they show.

It speaks the DevTools protocol to the browser's one page, over the websocket the browser serves on loopback
(`--remote-debugging-port=0`: the browser picks a free port and writes it to `DevToolsActivePort` in its
profile), with the synchronous client of `websockets` (which Prefect itself requires). The browser runs in its
own process group with a throwaway profile; `stop()` sends SIGTERM to its PID and requires the whole group to
be gone afterwards (what is left is killed, and an error says so).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from harness.servers import group_alive


class Chromium:
    def __init__(self, executable: str, workdir: Path, *, width: int = 1440, height: int = 1400) -> None:
        self.executable = executable
        self.workdir = workdir
        self.profile = workdir / "chromium-profile"
        self.log_file = workdir / "chromium.log"
        self.size = (width, height)
        self.proc: subprocess.Popen[bytes] | None = None
        self._ws: ClientConnection | None = None
        self._ids = itertools.count(1)

    def start(self, timeout_s: float = 30.0) -> Chromium:
        self.profile.mkdir(parents=True, exist_ok=True)
        command = [
            self.executable,
            "--headless",
            "--no-sandbox",  # root in a container has no user namespaces for the sandbox
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={self.profile}",
            f"--window-size={self.size[0]},{self.size[1]}",
            "about:blank",
        ]
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        try:
            port = self._devtools_port(timeout_s)
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
            page = next(t for t in targets if t["type"] == "page")
            self._ws = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
            self.call("Page.enable")
        except BaseException:
            self.stop()
            raise
        return self

    def _devtools_port(self, timeout_s: float) -> int:
        assert self.proc is not None
        active = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}; its log:\n{self._log_tail()}")
            with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
                return int(active.read_text().splitlines()[0])
            time.sleep(0.05)
        raise RuntimeError(
            f"chromium did not open its DevTools port within {timeout_s} s; its log:\n{self._log_tail()}"
        )

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command and its result (the events the page sends meanwhile are dropped)."""
        assert self._ws is not None, "the browser is not started"
        call_id = next(self._ids)
        self._ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv(timeout=60))
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    def navigate(self, url: str) -> None:
        answer = self.call("Page.navigate", url=url)
        if answer.get("errorText"):
            raise RuntimeError(f"{url}: {answer['errorText']}")

    def evaluate(self, expression: str) -> Any:
        """What a JavaScript expression evaluates to in the page (awaited if it is a promise)."""
        answer = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in answer:
            raise RuntimeError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def url(self) -> str:
        return str(self.evaluate("location.href"))

    def text(self) -> str:
        """What the page shows, as a person reads it (its body's rendered text)."""
        return str(self.evaluate("document.body ? document.body.innerText : ''") or "")

    def wait_until(self, what: str, shown: Callable[[str], bool], timeout_s: float = 30.0) -> str:
        """The page's text once `shown(text)` holds; an AssertionError with the page's URL and text if it
        does not within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            text = self.text()
            if shown(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"the page did not show {what} within {timeout_s} s; at {self.url()}:\n{text}")
            time.sleep(0.2)

    def settle(self, quiet_s: float = 1.0, timeout_s: float = 15.0) -> str:
        """The page's text once it has not changed for `quiet_s` (what it fetches has arrived and rendered)."""
        deadline = time.monotonic() + timeout_s
        text, since = self.text(), time.monotonic()
        while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
            time.sleep(0.1)
            now = self.text()
            if now != text:
                text, since = now, time.monotonic()
        return text

    def type_text(self, selector: str, text: str) -> None:
        """Focus the element `selector` names and type `text` into it, as keystrokes would."""
        if not self.evaluate(f"(e => e ? (e.focus(), true) : false)(document.querySelector({json.dumps(selector)}))"):
            raise AssertionError(f"no {selector} on {self.url()}")
        self.call("Input.insertText", text=text)

    def click(self, text: str) -> None:
        """A mouse click at the middle of the first thing on the page that shows just `text` (its innermost
        element: a tab, a button, a link)."""
        where = self.evaluate(
            f"""(() => {{
                const text = {json.dumps(text)};
                const shows = e => e.innerText && e.innerText.trim() === text && e.getClientRects().length;
                let e = [...document.body.querySelectorAll("*")].find(shows);
                if (!e) return null;
                for (let inner = [...e.children].find(shows); inner; inner = [...e.children].find(shows)) e = inner;
                e.scrollIntoView({{block: "center"}});
                const r = e.getBoundingClientRect();
                return [r.x + r.width / 2, r.y + r.height / 2];
            }})()"""
        )
        if where is None:
            raise AssertionError(f"nothing to click showing {text!r} on {self.url()}")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=where[0], y=where[1], button="left", clickCount=1)

    def press_enter(self) -> None:
        for kind in ("keyDown", "keyUp"):
            extra = {"text": "\r"} if kind == "keyDown" else {}
            self.call("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter", windowsVirtualKeyCode=13, **extra)

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM to the browser's PID; its exit status. Raises if it or any process of its group is left
        (they are killed first)."""
        if self._ws is not None:
            with contextlib.suppress(Exception):
                self._ws.close()
            self._ws = None
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(self.proc)
                raise RuntimeError(f"chromium ignored SIGTERM for {timeout_s} s and was killed") from None
        deadline = time.monotonic() + 5  # its helpers (zygote, renderer, GPU) exit after the browser
        while group_alive(self.proc.pid):
            if time.monotonic() > deadline:
                _kill_group(self.proc)
                raise RuntimeError("chromium exited but left processes of its group behind; they were killed")
            time.sleep(0.05)
        return self.proc.returncode

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def __enter__(self) -> Chromium:
        return self.start()

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.stop()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
