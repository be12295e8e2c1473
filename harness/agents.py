"""Real `vqpu-agent start` processes, for the end-to-end tests, the benchmarks and the local stack.

An agent is started as an operator starts it (the console script's module, a site file, a pid
file), waited for until the control plane has seen it, and stopped by the PID in its pid file with
SIGTERM (it drains, then exits 0) or killed with SIGKILL for recovery scenes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

from harness.servers import log_tail

ROOT = Path(__file__).resolve().parent.parent
SITES = ROOT / "deployments" / "sites"


def site_file(workdir: Path, base: str, **overrides: Any) -> Path:
    """A copy of deployments/sites/BASE.yaml with some settings replaced (run_root, slots, ...)."""
    site = yaml.safe_load((SITES / f"{base}.yaml").read_text())
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(site.get(key), dict):
            site[key] = {**site[key], **value}
        else:
            site[key] = value
    path = workdir / f"{base}-{os.getpid()}-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(site, sort_keys=False))
    return path


class AgentProcess:
    """One `vqpu-agent start`. A context manager: started (and seen by the control plane), then stopped."""

    def __init__(
        self,
        workdir: Path,
        site: Path,
        *,
        url: str,
        key: str,
        prefect_api_url: str,
        agent_id: str,
        admin_key: str | None = None,
        env: Mapping[str, str] | None = None,
        log_level: str = "info",
        key_in_environment: bool = False,
    ) -> None:
        """The key reaches the agent in a 0600 file (VQPU_AGENT_KEY_FILE), as a site should give it, or with
        `key_in_environment` in VQPU_AGENT_KEY."""
        self.workdir = workdir
        self.site = site
        self.url = url
        self.key = key
        self.prefect_api_url = prefect_api_url
        self.agent_id = agent_id
        self.admin_key = admin_key
        self.env = dict(env or {})
        self.log_level = log_level
        self.key_in_environment = key_in_environment
        self.pid_file = workdir / f"agent-{agent_id}.pid"
        self.log_file = workdir / f"agent-{agent_id}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None

    def start(self, timeout_s: float = 120.0) -> AgentProcess:
        cmd = [
            sys.executable,
            "-m",
            "agent.cli",
            "start",
            "--site",
            str(self.site),
            "--agent-id",
            self.agent_id,
            "--pid-file",
            str(self.pid_file),
            "--log-level",
            self.log_level,
        ]
        env = {
            **os.environ,
            "DO_NOT_TRACK": "1",
            "VQPU_URL": self.url,
            **(
                {"VQPU_AGENT_KEY": self.key}
                if self.key_in_environment
                else {"VQPU_AGENT_KEY_FILE": str(self._key_file())}  # a file only this account can read
            ),
            "PREFECT_API_URL": self.prefect_api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            **self.env,
        }
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
        self._wait_ready(timeout_s)
        return self

    def _key_file(self) -> Path:
        path = self.workdir / f"agent-{self.agent_id}.key"
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.key + "\n")
        return path

    def _wait_ready(self, timeout_s: float) -> None:
        """Ready once its log says it serves (the engine started after the cluster and the deployment)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"agent {self.agent_id} exited {self.proc.returncode}; its log:\n{self.log_tail()}")
            serving = self.log_file.exists() and f"agent {self.agent_id} serving" in self.log_file.read_text(
                errors="replace"
            )
            if serving and (self.admin_key is None or self._seen()):
                return
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"agent {self.agent_id} was not ready within {timeout_s} s; its log:\n{self.log_tail()}")

    def _seen(self) -> bool:
        try:
            r = httpx.get(
                f"{self.url}/v1/admin/agents", headers={"Authorization": f"Bearer {self.admin_key}"}, timeout=5
            )
        except httpx.TransportError:
            return False
        return r.status_code == 200 and any(a["agent_id"] == self.agent_id for a in r.json()["agents"])

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM to the PID in its pid file; the exit status (killed, and an error, if it hangs)."""
        if self.proc is None:
            raise RuntimeError(f"agent {self.agent_id} was never started")
        if self.proc.poll() is None:
            pid = int(self.pid_file.read_text()) if self.pid_file.exists() else self.proc.pid
            os.kill(pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
                raise RuntimeError(
                    f"agent {self.agent_id} ignored SIGTERM for {timeout_s} s; its log:\n{self.log_tail()}"
                ) from None
        self.returncode = self.proc.returncode
        return self.returncode

    def kill(self) -> None:
        """SIGKILL: the agent dies without draining (a crash, for recovery tests)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.returncode = self.proc.returncode if self.proc else None

    def log_tail(self, lines: int = 60) -> str:
        return log_tail(self.log_file, lines)

    def __enter__(self) -> AgentProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
