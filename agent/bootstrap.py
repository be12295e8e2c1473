"""The agent's composition root: its configuration from flags and the environment, the scheduler
adapter its site names, and a running engine with everything it holds."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from prefect.client.orchestration import PrefectClient

from agent.control_plane import ControlPlane
from agent.engine import Engine, EngineSettings
from agent.environment import confine_environment
from agent.prefect_bridge import PrefectBridge, unavailable
from agent.run_root import RunRootError, ensure_run_root
from agent.scheduler.base import Resources, Scheduler
from agent.site import SiteConfig, load_site
from agent.view import PrefectView

REPO_ROOT = Path(__file__).resolve().parent.parent


class AgentConfigError(Exception):
    """The agent cannot start with this configuration; the message says what to set."""


@dataclass(frozen=True)
class AgentConfig:
    site: SiteConfig
    url: str
    key: str
    agent_id: str
    work_pool: str
    prefect_api_url: str


def agent_config(
    site_path: str | Path | None,
    *,
    url: str | None = None,
    key: str | None = None,
    agent_id: str | None = None,
    work_pool: str | None = None,
    env: Mapping[str, str] = os.environ,
) -> AgentConfig:
    """Flags win over the environment: --site/VQPU_SITE, --url/VQPU_URL, --key/the file VQPU_AGENT_KEY_FILE
    names (private to this account)/VQPU_AGENT_KEY (setting both variables is refused), --agent-id/
    VQPU_AGENT_ID; Prefect's API from PREFECT_API_URL."""
    site_file = site_path or env.get("VQPU_SITE")
    if not site_file:
        raise AgentConfigError("no site file: pass --site FILE or set VQPU_SITE (see deployments/sites/)")
    site = load_site(Path(site_file))
    url = url or env.get("VQPU_URL")
    if env.get("VQPU_AGENT_KEY") and env.get("VQPU_AGENT_KEY_FILE"):
        raise AgentConfigError("both VQPU_AGENT_KEY and VQPU_AGENT_KEY_FILE are set: unset one")
    key = key or _key_from_file(env.get("VQPU_AGENT_KEY_FILE")) or env.get("VQPU_AGENT_KEY")
    prefect_api_url = env.get("PREFECT_API_URL")
    missing = [
        name
        for name, value in (
            ("VQPU_URL (or --url)", url),
            ("VQPU_AGENT_KEY_FILE or VQPU_AGENT_KEY (or --key)", key),
            ("PREFECT_API_URL", prefect_api_url),
        )
        if not value
    ]
    if missing:
        raise AgentConfigError(f"set {', '.join(missing)}")
    assert url and key and prefect_api_url
    return AgentConfig(
        site=site,
        url=url,
        key=key,
        agent_id=agent_id or env.get("VQPU_AGENT_ID") or site.agent_name(),
        work_pool=work_pool or site.prefect.work_pool,
        prefect_api_url=prefect_api_url,
    )


def _key_from_file(path: str | None) -> str | None:
    """The key in `path`, which must be a regular file of this account's that no other account can read
    (as OpenSSH asks of a private key): anything else is refused, naming the path and what is wrong."""
    if not path:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise AgentConfigError(f"VQPU_AGENT_KEY_FILE {path}: cannot open it ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise AgentConfigError(f"VQPU_AGENT_KEY_FILE {path}: not a regular file")
        if st.st_uid != os.geteuid():
            raise AgentConfigError(f"VQPU_AGENT_KEY_FILE {path}: owned by uid {st.st_uid}, not this account")
        if st.st_mode & 0o077:
            raise AgentConfigError(
                f"VQPU_AGENT_KEY_FILE {path}: mode {stat.S_IMODE(st.st_mode):04o} lets other accounts read it; "
                "chmod 600 it"
            )
        key = fh.read(4096).decode("utf-8", "replace").strip()
    if not key:
        raise AgentConfigError(f"VQPU_AGENT_KEY_FILE {path}: empty")
    return key


def build_scheduler(config: AgentConfig) -> Scheduler:
    site = config.site
    kind = site.scheduler.kind
    python = getattr(site.scheduler, "python", None)
    if kind in ("local", "slurm", "pbs"):
        from agent.scheduler.dask import DaskAdapter

        return DaskAdapter(site, cwd=REPO_ROOT)
    if kind == "sbatch":
        from agent.scheduler.sbatch import SbatchAdapter

        assert site.scheduler.kind == "sbatch"
        return SbatchAdapter(site.scheduler, agent_id=config.agent_id, python=python, cwd=REPO_ROOT)
    from agent.scheduler.memory import MemoryScheduler

    return MemoryScheduler(python=python, cwd=REPO_ROOT)


def engine_settings(site: SiteConfig) -> EngineSettings:
    r = site.resources
    return EngineSettings(
        slots=site.slots,
        run_root=site.run_root,
        claim_wait_s=site.claim_wait_s,
        heartbeat_s=site.heartbeat_s,
        grace_s=site.grace_s,
        resources=Resources(cpus=r.cpus, gpus=r.gpus, memory_mb=r.memory_mb),
        devices=site.devices,
        retention=site.retention,
        limits=site.site_limits(),
    )


@asynccontextmanager
async def running_engine(
    config: AgentConfig, prefect: PrefectClient, base_job_template: dict[str, Any]
) -> AsyncIterator[Engine]:
    """Everything the engine needs, started; released in reverse order when the block ends.

    First the run root is checked (agent/run_root.py: refused, naming the path and the reason, if another
    account owns or can write it or a directory above it), and the process's umask becomes 077, so that
    what the agent and every process it starts (Dask workers, runners, batch jobs: Slurm passes the umask
    on) create is private to the agent's account from the first byte."""
    try:
        ensure_run_root(config.site.run_root, config.site.run_root_policy)
    except RunRootError as exc:
        logging.getLogger("agent").error("refusing to start: %s", exc)
        raise AgentConfigError(str(exc)) from None
    # From here on the key lives in this process's memory only, and the environment holds only what the agent
    # and its LocalCluster's workers need: Dask's nannies start workers with the agent's own environment.
    confine_environment()
    umask = os.umask(0o077)
    try:
        capacity = config.site.slot_capacity()
        async with ControlPlane(
            config.url, config.key, config.agent_id, capacity=capacity, heartbeat_s=config.site.heartbeat_s
        ) as control_plane:
            scheduler = build_scheduler(config)
            await scheduler.start()
            try:
                bridge = PrefectBridge(
                    prefect,
                    config.work_pool,
                    config.site.prefect.deployment,
                    config.agent_id,
                    include_counts=config.site.prefect.artifacts_include_counts,
                )
                try:
                    await bridge.ensure_deployment(base_job_template)
                except Exception as exc:
                    if not unavailable(exc):
                        raise
                    logging.getLogger("agent").warning(
                        "Prefect does not answer (%s): claiming and running start anyway; the work pool and the "
                        "vqpu-execute deployment are made when it does",
                        exc,
                    )
                view = PrefectView(bridge, config.site.run_root, control_plane.task_url)
                yield Engine(engine_settings(config.site), control_plane, scheduler, view)
            finally:
                with anyio.CancelScope(shield=True):  # a cancelled agent must still release its cluster's jobs
                    await scheduler.close()
    finally:
        os.umask(umask)
