"""Starting the runner the way a scheduler job does: a fresh interpreter on a run directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The repository root: `python -m runner` started there imports this working tree's runner."""


def run_runner_process(
    run_dir: Path, *prefix: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m runner RUN_DIR` in a fresh interpreter, as a scheduler job would start it."""
    return subprocess.run(
        [*prefix, sys.executable, "-m", "runner", str(run_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
