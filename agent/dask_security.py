"""How the agent's Dask clusters keep other accounts out: TLS with mutual authentication, nothing served
over plain HTTP, batch jobs written and submitted privately.

Dask accepts `run`, `run_on_scheduler` and task submission from any client that connects, so a cluster
that listens without authentication is code execution inside the agent for every account that can
reach its port (on a login node: every account; on a batch cluster: every job). Each agent start makes
its own self-signed certificate and key (`Security.temporary()`); the scheduler, its workers and the
agent's client each present it and accept only a peer that presents it too. A LocalCluster gets them in
memory (passed to its worker processes through a pipe; distributed writes them to a private temporary
file only to load them into an SSL context); a batch cluster's workers read them from files
in a directory private to the agent's account (0700, files 0600, created with O_EXCL) on the run root's
file system, which the compute nodes share. Their paths, not their contents, are on the workers'
command lines.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask.config
from distributed.security import Security

NO_HTTP_ROUTES: dict[str, list[str]] = {"distributed.scheduler.http.routes": [], "distributed.worker.http.routes": []}
"""Dask's HTTP servers (dashboard JSON, task and worker info, a proxy, metrics) have no authentication
of their own: each server still listens (Dask starts it unconditionally) but serves nothing."""

NO_HTTP_ROUTES_ENV = {"DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES": "[]", "DASK_DISTRIBUTED__WORKER__HTTP__ROUTES": "[]"}
"""The same, for workers started by a batch job (dask reads its configuration from the environment)."""

CREDENTIAL_FILES = ("ca.pem", "cert.pem", "key.pem")


def serve_no_http() -> None:
    """Set for this process, where a LocalCluster's nannies read it each time they start a worker."""
    dask.config.set(NO_HTTP_ROUTES)


def in_memory_credentials() -> Security:
    """A fresh certificate and key for one agent's LocalCluster, required for every connection."""
    security: Security = Security.temporary()  # type: ignore[no-untyped-call]
    return security


def private_directory(parent: Path, prefix: str) -> Path:
    """A new directory under `parent` that only this account can enter (mkdtemp: 0700, a fresh name)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


def write_private(path: Path, content: str) -> None:
    """Create `path` 0600 and write it; an existing file or a planted symlink is an error, never followed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(content)


def file_credentials(directory: Path) -> Security:
    """A fresh certificate and key written into `directory` (private, made by `private_directory`), and the
    Security that names those files: what a batch cluster's scheduler and its remote workers both load."""
    worker: dict[str, str] = in_memory_credentials().get_tls_config_for_role("worker")  # type: ignore[no-untyped-call]
    ca, cert, key = (directory / name for name in CREDENTIAL_FILES)
    write_private(ca, worker["ca_file"])
    write_private(cert, worker["cert"])
    write_private(key, worker["key"])
    return files_security(directory)


def files_security(directory: Path) -> Security:
    """TLS for every role from the credential files in `directory` (which need not exist yet)."""
    ca, cert, key = (str(directory / name) for name in CREDENTIAL_FILES)
    security: Security = Security(  # type: ignore[no-untyped-call]
        require_encryption=True,
        tls_ca_file=ca,
        tls_client_cert=cert,
        tls_client_key=key,
        tls_scheduler_cert=cert,
        tls_scheduler_key=key,
        tls_worker_cert=cert,
        tls_worker_key=key,
    )
    return security


def private_job_class(base: type[Any], directory: Path, environment: dict[str, str]) -> type[Any]:
    """dask-jobqueue's Job for `base` (SLURMJob, PBSJob), but with its batch script written 0600 into
    `directory` instead of a predictable name in /tmp (where another account could plant the file first
    and edit the script before it is submitted), and submitted with `environment`, an allow-listed one,
    instead of the agent's (sbatch hands its whole environment to the job)."""

    class PrivateJob(base):  # type: ignore[misc]
        @contextlib.contextmanager
        def job_file(self) -> Iterator[str]:
            fd, path = tempfile.mkstemp(suffix=".sh", prefix="job-", dir=directory)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(self.job_script())
                yield path
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)

        async def _submit_job(self, script_filename: str) -> str:
            out: str = await self._call([*shlex.split(self.submit_command), script_filename], env=environment)
            return out

    PrivateJob.__name__ = PrivateJob.__qualname__ = f"Private{base.__name__}"
    return PrivateJob
