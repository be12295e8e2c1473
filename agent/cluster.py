"""The Dask cluster an agent owns, built from its site file.

`cluster_spec` says which cluster class a site needs and with what arguments, without starting
anything; `start_cluster` starts it; `render_job` shows the batch script a site's jobs would run, so a
site file can be checked on a login node without submitting a job or opening a port.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import dask.config
from distributed import LocalCluster
from distributed.deploy.spec import SpecCluster
from distributed.security import Security

from agent.dask_security import (
    NO_HTTP_ROUTES_ENV,
    file_credentials,
    files_security,
    in_memory_credentials,
    private_job_class,
    serve_no_http,
)
from agent.environment import child_environment
from agent.site import (
    LocalScheduler,
    PbsScheduler,
    SbatchScheduler,
    SiteConfig,
    SiteError,
    SlurmScheduler,
)
from vqpu_protocol.rundir import UnsafeRunDir, private_dir

# Placeholders in a rendered script: the real values exist only once a cluster or a task does.
PLACEHOLDER_SCHEDULER = "tls://LOGIN-NODE:8786"
PRIVATE_DIR_PREFIX = ".dask-"
"""The agent's private directory for a batch cluster's credentials and job scripts, under the run root."""
PLACEHOLDER_TASK = "TASK-ID"

WORKER_NAME = "vqpu-worker"
WORKER_DIR_VARIABLE = "VQPU_WORKER_DIR"
"""The batch job's shell variable naming its worker's private directory."""

ADAPT_INTERVAL_S = 1
ONE_WORKER_PER_STEP = "1ms"
"""Dask's adaptive target is ceil(expected work / target duration), capped by the tasks in flight:
with a tiny target duration the cap decides, one worker per step."""

# A nanny's worker process is daemonic, and a daemonic process may not start children through
# multiprocessing: the warm runner (a fork server on each worker) needs this off.
_DAEMON_OFF = "DASK_DISTRIBUTED__WORKER__DAEMON=False"


def cluster_spec(
    site: SiteConfig,
    *,
    security: Security | None = None,
    private_dir: Path | None = None,
    scheduler_host: str | None = None,
) -> tuple[type, dict[str, Any]]:
    """The Dask cluster class for `site` and its constructor's keyword arguments; starts nothing.

    Every cluster speaks TLS only, with `security` on both ends (agent.dask_security; default: fresh
    in-memory credentials). A batch cluster writes its job scripts into `private_dir` and submits them
    with an allow-listed environment (without one, the spec is for inspection: `start_cluster` gives one).
    `scheduler_host` overrides the site's `scheduler.scheduler_host` (the address compute nodes reach
    the Dask scheduler at). Batch clusters get no `log_directory`: dask-jobqueue would create it when a
    job object is built, so the `--output`/`--error` directives are added here and `start_cluster`
    makes the directory.

    Nothing of Prefect reaches a worker: the runner step is a plain function (agent.warm.run_runner) that
    imports no Prefect, and the agent records its task run itself (agent.view). A batch job gets neither
    Prefect's address nor its credential; a LocalCluster's workers inherit the agent's environment, from
    which the agent withdrew its keys and Prefect's credential at start (agent.environment.confine_environment).
    """
    s = site.scheduler
    security = security if security is not None else in_memory_credentials()
    if isinstance(s, LocalScheduler):
        kwargs: dict[str, Any] = {
            "n_workers": s.workers or site.slots,
            # One task per worker: a runner step holds its worker for its whole run.
            "threads_per_worker": 1,
            "processes": True,
            "host": "127.0.0.1",
            "protocol": "tls://",
            "security": security,
            # No dashboard: it has no authentication of its own (see agent.dask_security), and Dask serves no
            # HTTP route here (serve_no_http). Its HTTP server still binds: on loopback and a free port, never
            # Dask's fixed 8787 (what None means), which a second agent or test run on the machine would hold.
            "dashboard_address": "127.0.0.1:0",
        }
        if private_dir is not None:
            # Dask's default is $TMPDIR/dask-scratch-space, which it adopts whoever made it: another account
            # could make it first and swap a worker's directory (the warm runner's socket and scratch live there).
            kwargs["local_directory"] = str(private_dir)
        if site.resources.gpus > 0:
            kwargs["resources"] = {"GPU": site.resources.gpus}
        return LocalCluster, kwargs
    if isinstance(s, SlurmScheduler | PbsScheduler):
        kwargs = _job_kwargs(site, s)
        host = scheduler_host or s.scheduler_host
        options: dict[str, Any] = {"dashboard": False, "dashboard_address": f"{host}:0" if host else ":0"}
        if host is not None:
            options["host"] = host
        kwargs["scheduler_options"] = options
        kwargs["security"] = security
        kwargs["protocol"] = "tls://"
        if private_dir is not None:
            kwargs["job_cls"] = private_job_class(_job_class(s), private_dir, child_environment())
        return _cluster_class(s), kwargs
    raise SiteError(f"site {site.site!r} runs no Dask cluster: its scheduler is {s.kind}")


def start_cluster(site: SiteConfig, *, private_dir: Path) -> SpecCluster:
    """Start the site's cluster: a LocalCluster with a fixed number of workers, or a batch cluster that
    adapts between the site's `adapt.minimum_jobs` and `adapt.maximum_jobs`. `private_dir` (0700, the
    agent's, on a file system the compute nodes share) holds a batch cluster's credentials and scripts."""
    s = site.scheduler
    serve_no_http()
    if isinstance(s, LocalScheduler):
        cls, kwargs = cluster_spec(site, security=in_memory_credentials(), private_dir=private_dir)
        # The nannies of a LocalCluster live in this process and read the setting each time they
        # (re)start a worker, so it is set here for the process, not for the construction only.
        dask.config.set({"distributed.worker.daemon": False})
        cluster: SpecCluster = cls(**kwargs)
        return cluster
    cls, kwargs = cluster_spec(site, security=file_credentials(private_dir), private_dir=private_dir)
    assert isinstance(s, SlurmScheduler | PbsScheduler)
    if s.log_directory is not None:
        # Slurm and PBS do not create the directory of a job's output file; the job would fail at start.
        _private_log_directory(Path(s.log_directory).expanduser())
    cluster = cls(**kwargs)
    try:
        cluster.adapt(
            minimum_jobs=s.adapt.minimum_jobs,
            maximum_jobs=s.adapt.maximum_jobs,
            # Each runner step holds its worker's only thread for its whole run, however short: ask for
            # one worker per step in flight (Dask's default sizes the cluster by expected task time, and
            # kept one worker for the agent's two slots of 0.1 s steps).
            target_duration=ONE_WORKER_PER_STEP,
            interval=f"{ADAPT_INTERVAL_S}s",
            wait_count=max(1, s.adapt.idle_s // ADAPT_INTERVAL_S),
        )
    except BaseException:
        cluster.close()
        raise
    return cluster


def render_job(site: SiteConfig, *, scheduler_address: str = PLACEHOLDER_SCHEDULER) -> str:
    """The batch script the site's jobs would run, rendered without starting a cluster or opening a port.

    For a Dask batch site it is one worker job that connects to `scheduler_address`; for an `sbatch`
    site it is one task's job, with `<run_root>/TASK-ID` standing for the task's run directory.
    """
    s = site.scheduler
    if isinstance(s, SlurmScheduler | PbsScheduler):
        job_cls = _job_class(s)
        # The credentials' real directory exists only once an agent starts; its files have these names.
        security = files_security(site.run_root / f"{PRIVATE_DIR_PREFIX}XXXXXXXX")
        job: Any = job_cls(
            scheduler=scheduler_address,
            name=WORKER_NAME,
            security=security,
            protocol="tls://",
            **_job_kwargs(site, s),
        )
        script: str = job.job_script()
        return script
    if isinstance(s, SbatchScheduler):
        # Written beside this module by the one-job-per-task adapter; imported late so that a Dask
        # site never needs it.
        from agent.scheduler.sbatch import job_name, render_script

        run_dir = site.run_root / PLACEHOLDER_TASK
        rendered: str = render_script(s, site.resources, run_dir, job_name(run_dir), s.python or sys.executable)
        return rendered
    raise SiteError(f"site {site.site!r} runs no batch jobs: its scheduler is {s.kind}")


def _private_log_directory(path: Path) -> None:
    """Made 0700 if missing; refused if another account owns it or could write in it: the jobs' output files
    are opened there by name, so a link planted in it would have a job write over what it points at."""
    try:
        private_dir(path)
    except UnsafeRunDir as exc:
        raise SiteError(f"scheduler.log_directory {path} {exc.strerror}") from None


def _job_class(s: SlurmScheduler | PbsScheduler) -> type:
    from dask_jobqueue.pbs import PBSJob
    from dask_jobqueue.slurm import SLURMJob

    cls: type = SLURMJob if isinstance(s, SlurmScheduler) else PBSJob
    return cls


def _cluster_class(s: SlurmScheduler | PbsScheduler) -> type:
    # Imported here: dask-jobqueue is only needed at sites with a batch scheduler.
    if isinstance(s, SlurmScheduler):
        from dask_jobqueue.slurm import SLURMCluster

        cls: type = SLURMCluster
        return cls
    from dask_jobqueue.pbs import PBSCluster

    cls = PBSCluster
    return cls


def _job_kwargs(site: SiteConfig, s: SlurmScheduler | PbsScheduler) -> dict[str, Any]:
    """What both a batch cluster and a single rendered job take (dask-jobqueue's Job keywords)."""
    gpus = site.resources.gpus
    directives = list(s.job_extra_directives)
    if isinstance(s, SlurmScheduler):
        if s.account is not None:
            # The long form, as the sbatch adapter writes it (dask-jobqueue's `account` would write -A).
            directives.append(f"--account={s.account}")
        if gpus > 0:
            # --gres counts per job, and a job runs `processes` workers of `gpus` GPUs each.
            directives.append(f"--gres=gpu:{gpus * s.processes}")
        if s.qos is not None:
            directives.append(f"--qos={s.qos}")
        if s.log_directory is not None:
            log_dir = Path(s.log_directory).expanduser()
            directives += [f"--output={log_dir}/%x-%j.out", f"--error={log_dir}/%x-%j.err"]
    elif s.log_directory is not None:
        # PBS names the files itself when given a directory (with the trailing slash).
        log_dir = Path(s.log_directory).expanduser()
        directives += [f"-o {log_dir}/", f"-e {log_dir}/"]

    worker_args = ["--lifetime", s.lifetime()]
    stagger = s.lifetime_stagger_s()
    if stagger > 0:
        # Workers started together (one adapt step) would otherwise all retire at the same moment.
        worker_args += ["--lifetime-stagger", f"{stagger}s"]
    if gpus > 0:
        worker_args += ["--resources", f"GPU={gpus}"]

    prologue = [f"module load {module}" for module in s.modules]
    prologue += s.prologue
    prologue.append(f"export {_DAEMON_OFF}")
    prologue += [f"export {name}={shlex.quote(value)}" for name, value in NO_HTTP_ROUTES_ENV.items()]
    # The worker's directory (its scratch, the warm runner's socket) is a fresh 0700 one on the node, not Dask's
    # default $TMPDIR/dask-scratch-space, which Dask adopts whoever made it; removed when the job ends.
    prologue += [
        f'{WORKER_DIR_VARIABLE}="$(mktemp -d "${{TMPDIR:-/tmp}}/vqpu-dask-XXXXXXXX")" || exit 1',
        f"trap 'rm -rf \"${WORKER_DIR_VARIABLE}\"' EXIT",
    ]

    kwargs: dict[str, Any] = {
        "job_name": f"vqpu-{site.site}",
        "walltime": s.walltime,
        # dask-jobqueue gives each worker cores/processes threads, i.e. that many tasks at once. A
        # runner step holds its worker for the whole run and its cores belong to the runner child, so
        # each worker gets one thread, and the job still asks the scheduler for all `s.cores` below.
        "cores": s.processes,
        "processes": s.processes,
        "memory": s.memory,
        "job_extra_directives": directives,
        "worker_extra_args": worker_args,
        "job_script_prologue": prologue,
        "python": s.python or sys.executable,
        "interface": s.interface,
        "local_directory": f'"${WORKER_DIR_VARIABLE}"',
    }
    if isinstance(s, SlurmScheduler):
        kwargs["queue"] = s.partition
        kwargs["job_cpu"] = s.cores
    else:
        kwargs["queue"] = s.queue
        kwargs["account"] = s.account
        kwargs["resource_spec"] = s.resource_spec or _pbs_resource_spec(s, gpus)
    return kwargs


def _pbs_resource_spec(s: PbsScheduler, gpus: int) -> str:
    """dask-jobqueue's default `select` line, but for the job's real core count and with its GPUs."""
    from dask.utils import parse_bytes
    from dask_jobqueue.pbs import pbs_format_bytes_ceil

    memory: str = cast(Callable[[int], str], pbs_format_bytes_ceil)(parse_bytes(s.memory))
    spec = f"select=1:ncpus={s.cores}:mem={memory}"
    if gpus > 0:
        spec += f":ngpus={gpus * s.processes}"
    return spec
