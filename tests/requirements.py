"""What some tests need from the machine: a PostgreSQL, a Slurm, or a clear skip (a failure where CI requires it)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from harness.postgres import postgres_unreachable


def require_postgres() -> None:
    """Skip when no PostgreSQL answers, unless VQPU_REQUIRE_POSTGRES=1 makes its absence a failure."""
    message = postgres_unreachable()
    if message is not None:
        if os.environ.get("VQPU_REQUIRE_POSTGRES") == "1":
            pytest.fail(message + "; VQPU_REQUIRE_POSTGRES=1 requires it")
        pytest.skip(message + "; set VQPU_TEST_POSTGRES to a server URL to run these tests")


def slurm_unavailable() -> str | None:
    """Why no Slurm controller answers here, or None when `sbatch` and `scontrol` exist and `scontrol ping` says UP."""
    missing = [tool for tool in ("sbatch", "scontrol", "scancel") if shutil.which(tool) is None]
    if missing:
        return f"Slurm is not installed ({', '.join(missing)} not on PATH)"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return "Slurm does not answer (`scontrol ping` took more than 10 s)"
    if ping.returncode != 0 or "is UP" not in ping.stdout:
        said = next((line.strip() for line in (ping.stdout + ping.stderr).splitlines() if line.strip()), "")
        return f"no Slurm controller answers (`scontrol ping`: {said or f'exit {ping.returncode}'})"
    return None


def require_slurm() -> None:
    """Skip when no Slurm controller answers, unless VQPU_REQUIRE_SLURM=1 makes its absence a failure."""
    message = slurm_unavailable()
    if message is not None:
        if os.environ.get("VQPU_REQUIRE_SLURM") == "1":
            pytest.fail(message + "; VQPU_REQUIRE_SLURM=1 requires it")
        pytest.skip(message + "; as root, `scripts/slurm-local.sh start` installs and starts a single-node Slurm")


def browser() -> str:
    """The headless Chromium (Debian's `chromium`) that page tests drive; a skip without one, unless
    VQPU_REQUIRE_BROWSER=1 makes its absence a failure."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "no headless browser (Debian's chromium) is installed"
        if os.environ.get("VQPU_REQUIRE_BROWSER") == "1":
            pytest.fail(message + "; VQPU_REQUIRE_BROWSER=1 requires it")
        pytest.skip(message + "; as root, `apt-get install -y chromium` installs it")
    return found
