"""What the agent's children may see of its environment: an allow-list, never a copy.

The agent holds credentials (its control-plane key, Prefect's) that no runner, Dask worker or batch job
needs. Every process the agent starts on behalf of a task gets an environment built from the names
below plus what that process is given on purpose; anything else a login shell carried (keys, tokens,
cloud credentials) stays behind.
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

SECRETS = ("VQPU_AGENT_KEY", "VQPU_AGENT_KEY_FILE", "VQPU_KEY", "VQPU_KEY_FILE", "VQPU_ADMIN_KEY", "VQPU_USER_KEY")
"""Credentials of this service (or where to find them) that the agent process reads once and then drops
from its environment."""


def allowed(name: str) -> bool:
    return name in ALLOWED or name.startswith(ALLOWED_PREFIXES)


def child_environment(
    extra: Mapping[str, str] | None = None, source: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The allow-listed part of `source` (default: this process's environment), then `extra` on top."""
    env = {k: v for k, v in (os.environ if source is None else source).items() if allowed(k)}
    env.update(extra or {})
    return env


def withdraw_secrets(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Remove the service's credentials from this process's environment (the agent keeps them in memory
    only), so that nothing it starts afterwards can inherit them: Dask's nannies start workers with the
    agent's own environment. Returns the names removed."""
    env = os.environ if environ is None else environ
    return [name for name in SECRETS if env.pop(name, None) is not None]
