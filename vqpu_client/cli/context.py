"""What every command gets: its arguments, where to write, and the client (made on first use)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from vqpu_client import Client, keys
from vqpu_client.cli.exits import usage
from vqpu_client.cli.progress import Progress
from vqpu_client.cli.render import Output
from vqpu_protocol.api.tasks import TaskView


@dataclass
class Context:
    args: argparse.Namespace
    out: Output
    make_client: Callable[[str, str], Client] = Client
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    _client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            key = keys.resolve(self.environ, key=self.args.key, key_file=self.args.key_file)
            if not key:
                raise usage(f"no API key: set {keys.KEY_ENV}, or {keys.KEY_FILE_ENV} or --key-file to a private file")
            self._client = self.make_client(self.args.url, key)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def wait(self, task_id: str, timeout_s: float | None) -> TaskView:
        """Wait for the task with the progress display on stderr; its final record.

        With --json, stderr carries only the JSON error body unless a person watches it (a terminal).
        """
        stderr = self.out.stderr
        shown = not self.args.quiet and (not self.out.as_json or stderr.isatty())
        with Progress(task_id, stderr, enabled=shown) as progress:
            return self.client.wait(task_id, timeout_s=timeout_s, on_event=progress.on_event)

    def read_circuit(self, path: str) -> str:
        """The file's text, or stdin's for `-`."""
        if path == "-":
            return self.stdin.read()
        try:
            return Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise usage(f"cannot read {path}: {exc}", {"path": path}) from None
