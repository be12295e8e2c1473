"""Another account on the same machine: runs code as an unprivileged uid that owns nothing of ours.

The security tests attack the agent as a site's other users would: from a uid that is not the agent's,
with no capabilities and no supplementary groups (`setpriv`), reaching only what the machine lets any
account reach: every port on 127.0.0.1, every file that is not private, every shared directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

INTRUDER_UID = 64_123
"""A uid made for the tests: in no group, named in no passwd entry, owning nothing until an attack
creates it."""


def intruder_unavailable() -> str | None:
    """Why this process cannot act as another account, or None."""
    if os.geteuid() != 0:
        return "switching to another uid needs root (the tests' second account is made with setpriv)"
    if shutil.which("setpriv") is None:
        return "setpriv is not installed (util-linux)"
    return None


@dataclass
class Intruder:
    """Runs commands as `uid`, with an environment of its own (no variable of the test process leaks)."""

    uid: int = INTRUDER_UID
    home: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="vqpu-intruder-")))

    def __post_init__(self) -> None:
        os.chown(self.home, self.uid, self.uid)
        os.chmod(self.home, 0o700)

    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "TMPDIR": str(self.home),
            "PYTHONDONTWRITEBYTECODE": "1",
            "DO_NOT_TRACK": "1",
            "LANG": "C.UTF-8",
        }

    def argv(self, command: list[str]) -> list[str]:
        return [
            "setpriv",
            f"--reuid={self.uid}",
            f"--regid={self.uid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
            *command,
        ]

    def run(self, command: list[str], *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run `command` as the intruder; its output is captured, its exit status is the caller's to judge."""
        return subprocess.run(
            self.argv(command), env=self.env(), cwd="/", capture_output=True, text=True, timeout=timeout, check=False
        )

    def python(self, code: str, *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run Python `code` with this project's interpreter (its packages are readable by every account)."""
        return self.run([sys.executable, "-c", code], timeout=timeout)

    def close(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)
