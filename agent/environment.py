"""What the agent's children may see of its environment: an allow-list, never a copy.

The agent holds credentials (its control-plane key, Prefect's) that no runner, Dask worker or batch job
needs; it keeps them in memory and out of its own environment (`confine_environment`). Every process the
agent starts on behalf of a task gets an environment built from the names below plus what that process is
given on purpose; anything else a login shell carried (keys, tokens, cloud credentials) stays behind.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

ALLOWED = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TERM",
        "HOSTNAME",
        "TMPDIR",
        "VIRTUAL_ENV",
        "PYTHONPATH",
        "PYTHONHASHSEED",
        "LD_LIBRARY_PATH",
        "LIBRARY_PATH",
        "MODULEPATH",
        "LOADEDMODULES",
        "DO_NOT_TRACK",
        "SLURM_CONF",
    }
)
"""Names a program needs to start and find its libraries, the site's module system and Slurm's config."""

ALLOWED_PREFIXES = (
    "LC_",
    # The scheduler's own job variables (job id, node list, allocated GPUs) and accelerator selection.
    "SLURM_",
    "PBS_",
    "CUDA_",
    "NVIDIA_",
    "ROCR_",
    "HIP_",
    # Thread counts and the numerical libraries' kernel choice (see the env skill: OPENBLAS_CORETYPE).
    "OMP_",
    "MKL_",
    "OPENBLAS_",
)


def allowed(name: str) -> bool:
    return name in ALLOWED or name.startswith(ALLOWED_PREFIXES)


def child_environment(
    extra: Mapping[str, str] | None = None, source: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The allow-listed part of `source` (default: this process's environment), then `extra` on top."""
    env = {k: v for k, v in (os.environ if source is None else source).items() if allowed(k)}
    env.update(extra or {})
    return env


AGENT_NAMES = frozenset(
    {
        # How the agent reaches the control plane and Prefect: proxies and certificate bundles.
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "XDG_RUNTIME_DIR",
        "XDG_CONFIG_HOME",
        "XDG_CACHE_HOME",
        "XDG_DATA_HOME",
        "VQPU_URL",
        "VQPU_SITE",
        "VQPU_AGENT_ID",
    }
)
AGENT_PREFIXES = ("PREFECT_", "DASK_", "PYTHON")
"""Beyond a child's allow-list, what the agent process itself runs on: Prefect's and Dask's settings, the
interpreter's. A LocalCluster's workers inherit them; of these they use Dask's (nothing on a worker imports
Prefect: agent.warm.run_runner is the whole runner step there)."""

WITHDRAWN = frozenset(
    {
        # Prefect's client credentials: Prefect read them into its settings when the agent imported it, and its
        # client sends them from there.
        "PREFECT_API_AUTH_STRING",
        "PREFECT_API_KEY",
        # A Prefect server's own secrets, which the agent, a client, never needs.
        "PREFECT_SERVER_API_AUTH_STRING",
        "PREFECT_API_DATABASE_CONNECTION_URL",
        "PREFECT_API_DATABASE_PASSWORD",
        "PREFECT_SERVER_DATABASE_CONNECTION_URL",
        "PREFECT_SERVER_DATABASE_PASSWORD",
    }
)
"""Secrets among the agent's own settings, removed from its environment all the same: a LocalCluster's workers
would inherit them, and no worker needs them. Only the agent's memory holds them from then on (Prefect's
settings), as it holds the agent key."""


def confine_environment(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Reduce this process's environment to what the agent and the Dask workers it starts on this machine
    need: a LocalCluster's nannies start workers with the agent's own environment, so whatever else the
    operator's login shell carried (cloud tokens, other services' keys, the agent key itself, which the agent
    has read by now) is removed, and so are Prefect's credentials (WITHDRAWN), which Prefect has read by now
    (call this after importing Prefect). Returns the names removed."""
    env = os.environ if environ is None else environ
    removed = [name for name in env if name in WITHDRAWN or not _agent_runs_on(name)]
    for name in removed:
        del env[name]
    return sorted(removed)


def _agent_runs_on(name: str) -> bool:
    return allowed(name) or name in AGENT_NAMES or name.startswith(AGENT_PREFIXES)
