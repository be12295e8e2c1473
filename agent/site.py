"""A site's agent configuration (`deployments/sites/*.yaml`): a strict pydantic model with field
descriptions, loaded from YAML; unknown or conflicting options are refused naming the field."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agent.deadline import KILL_GRACE_S
from vqpu_protocol.api.agent import SlotCapacity
from vqpu_protocol.limits import MAX_RUNTIME_S
from vqpu_protocol.rundir import RunLimits, RuntimeLimit
from vqpu_protocol.wire import Id

_DURATION = re.compile(r"^(?:(\d+)-)?(\d{1,2}):(\d{2}):(\d{2})$")
_LIFETIME = re.compile(r"^(\d+)([smh])$")


def _absolute(path: Path) -> Path:
    path = path.expanduser()
    if not path.is_absolute():
        raise ValueError(f"{path} is relative; give an absolute path (~ is expanded)")
    return path


class SiteError(Exception):
    """A site file cannot be used: the message names the file and each offending field."""


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def walltime_seconds(text: str) -> int:
    """Slurm's `[D-]HH:MM:SS` in seconds."""
    m = _DURATION.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not a walltime of the form [D-]HH:MM:SS")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    if (hours > 23 and days) or minutes > 59 or seconds > 59:
        raise ValueError(f"{text!r} is not a walltime of the form [D-]HH:MM:SS (minutes and seconds below 60)")
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def lifetime_seconds(text: str) -> int:
    """Dask's worker `--lifetime` (`55m`, `3300s`, `2h`) in seconds."""
    m = _LIFETIME.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not a duration such as 55m, 3300s or 2h")
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]


Walltime = Annotated[str, Field(pattern=_DURATION.pattern, examples=["01:00:00", "1-00:00:00"])]
Lifetime = Annotated[str, Field(pattern=_LIFETIME.pattern, examples=["55m"])]


class RunnerSettings(Model):
    mode: Literal["fork", "process"] = Field(
        "fork",
        description="fork: each run is a killable child forked from a warm, pre-imported runner process on the "
        "Dask worker (about 25 ms per run); process: a fresh `python -m runner` per run (about 0.8 s per run)",
    )


class TaskResources(Model):
    cpus: Annotated[int, Field(ge=1, le=1024)] = Field(1, description="CPU cores per runner process")
    gpus: Annotated[int, Field(ge=0, le=16)] = Field(
        0, description="GPUs per runner process (Dask resource `GPU`, Slurm `--gres=gpu:N`)"
    )
    memory_mb: Annotated[int, Field(ge=64)] | None = Field(
        None,
        description="memory per runner process, in MiB: the runner's memory limit (task.json limits.memory_bytes, "
        "Aer's max_memory_mb, its RLIMIT_DATA) and what each claim says a slot holds; sbatch's --mem when set. "
        "Default: the batch job's memory / processes (slurm, pbs); this machine's memory / slots (local, memory, "
        "and sbatch, where you should set it: the login node's memory says nothing about the compute nodes')",
    )
    gpu_memory_mb: Annotated[int, Field(ge=64)] | None = Field(
        None,
        description="GPU memory per runner process (all of its GPUs together), in MiB; only with gpus. "
        "Default: not stated (the agent cannot see the compute nodes' GPUs)",
    )
    max_runtime_s: RuntimeLimit | None = Field(
        None,
        description="the site's wall-time ceiling for one run, in seconds: a task's own limit is lowered to it, "
        "and a run that reaches it fails TIME_LIMIT_EXCEEDED. Default: 24 h (local, memory); the walltime less "
        f"the {KILL_GRACE_S:g} s kill grace (sbatch); nine tenths of the shortest worker lifetime less that grace "
        "(slurm, pbs: a run must end before its worker retires)",
    )


class Adapt(Model):
    minimum_jobs: Annotated[int, Field(ge=0)] = Field(0, description="batch jobs kept even when idle")
    maximum_jobs: Annotated[int, Field(ge=1)] = Field(1, description="batch jobs at most")
    idle_s: Annotated[int, Field(ge=1, le=86400)] = Field(
        120, description="an idle worker beyond minimum_jobs is retired after this long (a new one takes seconds)"
    )

    @model_validator(mode="after")
    def _ordered(self) -> Adapt:
        if self.minimum_jobs > self.maximum_jobs:
            raise ValueError(f"minimum_jobs: {self.minimum_jobs} is larger than maximum_jobs ({self.maximum_jobs})")
        return self


class LocalScheduler(Model):
    """A Dask LocalCluster on this machine (a laptop, the embedded stack)."""

    kind: Literal["local"]
    workers: Annotated[int, Field(ge=1, le=256)] | None = Field(
        None, description="Dask worker processes (one runner each); default: the agent's slots"
    )


class BatchSettings(Model):
    """What every batch job of a site carries."""

    account: str | None = Field(None, description="the allocation charged (Slurm --account, PBS -A)")
    walltime: Walltime = Field("01:00:00", description="each batch job's walltime")
    modules: list[str] = Field([], description="`module load` lines run first in each job")
    prologue: list[str] = Field([], description="shell lines run in each job before the worker starts")
    job_extra_directives: list[str] = Field([], description="extra #SBATCH / #PBS lines, verbatim")
    python: str | None = Field(
        None,
        description="the Python on the compute nodes (it runs the Dask worker, or the runner for sbatch); "
        "default: the agent's",
    )
    log_directory: Path | None = Field(None, description="where batch jobs write stdout/stderr (absolute; ~ expanded)")

    @field_validator("log_directory", mode="after")
    @classmethod
    def _absolute_logs(cls, path: Path | None) -> Path | None:
        return None if path is None else _absolute(path)

    @field_validator("walltime", mode="after")
    @classmethod
    def _a_real_walltime(cls, text: str) -> str:
        seconds = walltime_seconds(text)
        if seconds < 60:
            raise ValueError(f"{text} is shorter than a minute")
        return text


class DaskBatchScheduler(BatchSettings):
    processes: Annotated[int, Field(ge=1, le=256)] = Field(1, description="Dask workers per batch job")
    cores: Annotated[int, Field(ge=1, le=4096)] = Field(1, description="cores per batch job")
    memory: str = Field("4GB", description="memory per batch job (Dask notation)")
    adapt: Adapt = Field(default_factory=Adapt, description="how many batch jobs the cluster keeps")
    worker_lifetime: Lifetime | None = Field(
        None,
        description="retire each worker this long after it starts, so a job is replaced before its walltime "
        "ends; default: 5 minutes short of the walltime",
    )
    interface: str | None = Field(None, description="network interface the workers listen on (e.g. ib0)")
    scheduler_host: str | None = Field(
        None, description="address the compute nodes reach the Dask scheduler at; default: this host"
    )

    @model_validator(mode="after")
    def _lifetime_within_walltime(self) -> DaskBatchScheduler:
        if self.worker_lifetime is not None and lifetime_seconds(self.worker_lifetime) >= walltime_seconds(
            self.walltime
        ):
            raise ValueError(f"worker_lifetime: {self.worker_lifetime} is not shorter than walltime {self.walltime}")
        return self

    def lifetime(self) -> str:
        """The worker lifetime: as set, or the walltime less a margin (5 minutes, a tenth of short walltimes)."""
        if self.worker_lifetime is not None:
            return self.worker_lifetime
        walltime = walltime_seconds(self.walltime)
        return f"{walltime - min(300, walltime // 10)}s"

    def lifetime_stagger_s(self) -> int:
        """Dask's `--lifetime-stagger`: a tenth of the lifetime, but never so much that a late worker outlives
        its job's walltime (workers started together would otherwise all retire at the same moment)."""
        lifetime = lifetime_seconds(self.lifetime())
        margin = walltime_seconds(self.walltime) - lifetime
        return max(0, min(lifetime // 10, margin // 2))

    def shortest_lifetime_s(self) -> int:
        """The shortest life a worker may get: the lifetime less its stagger."""
        return lifetime_seconds(self.lifetime()) - self.lifetime_stagger_s()


class SlurmScheduler(DaskBatchScheduler):
    """dask-jobqueue SLURMCluster: long-lived batch jobs that each run Dask workers."""

    kind: Literal["slurm"]
    partition: str | None = Field(None, description="Slurm partition (queue)")
    qos: str | None = Field(None, description="Slurm QOS")


class PbsScheduler(DaskBatchScheduler):
    """dask-jobqueue PBSCluster."""

    kind: Literal["pbs"]
    queue: str | None = Field(None, description="PBS queue")
    resource_spec: str | None = Field(None, description="PBS -l resource spec, e.g. select=1:ncpus=8:ngpus=1")


class SbatchScheduler(BatchSettings):
    """One `sbatch` job per task, for sites whose compute nodes may not connect back to the login node."""

    kind: Literal["sbatch"]
    partition: str | None = Field(None, description="Slurm partition (queue)")
    qos: str | None = Field(None, description="Slurm QOS")
    poll_s: Annotated[float, Field(gt=0, le=60)] = Field(0.1, description="how often job states are polled")


class MemoryScheduler(Model):
    """The in-memory scheduler: runs the runner as a local process; for tests."""

    kind: Literal["memory"]


SchedulerSettings = Annotated[
    LocalScheduler | SlurmScheduler | PbsScheduler | SbatchScheduler | MemoryScheduler,
    Field(discriminator="kind"),
]


MIB = 1024 * 1024
DEFAULT_RUNTIME_CEILING_S = 24 * 3600.0
"""The wall-time ceiling of a site that sets none and has no walltime or worker lifetime to bound it."""


def node_memory_bytes() -> int:
    """This machine's physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


RunRootPolicy = Literal["private", "shared-filesystem"]


class Retention(Model):
    """How long finished run directories stay under run_root (agent/retention.py)."""

    keep_days: Annotated[float, Field(gt=0, le=3650)] = Field(
        14,
        description="a finished run directory (its claim note records how the claim ended, or it has no note) is "
        "removed, or bundled, this many days after its last change; an open claim's is never touched",
    )
    mode: Literal["delete", "bundle"] = Field(
        "delete",
        description="delete: remove it; bundle: first keep its task.json, snapshot.json and result.json or "
        "error.json as RUN_ROOT/.bundles/TASK-ID.ATTEMPT.tar.gz (0600), enough to replay the run",
    )
    bundle_keep_days: Annotated[float, Field(gt=0, le=36500)] | None = Field(
        None, description="with mode bundle: remove bundles older than this; default: keep them"
    )

    @model_validator(mode="after")
    def _bundles_only_when_bundling(self) -> Retention:
        if self.bundle_keep_days is not None and self.mode != "bundle":
            raise ValueError(f"bundle_keep_days: set, but mode is {self.mode!r}: bundles are made only in mode bundle")
        return self


class PrefectSettings(Model):
    work_pool: Id = Field("vqpu", description="the Prefect work pool of type `vqpu` the agent serves")
    deployment: Id = Field("vqpu-execute", description="the deployment every task's flow run is created from")
    artifacts_include_counts: bool = Field(
        False,
        description="publish each completed task's counts as a table artifact of its flow run; off by default: "
        "counts are the tenant's results, and everyone with the site's Prefect credential reads every artifact",
    )


class SiteConfig(Model):
    """One agent at one site."""

    site: Id = Field(description="the site's name, shown in agent ids and the Prefect UI")
    agent_id: Id | None = Field(None, description="the id the control plane knows this agent by; default SITE-HOST")
    slots: Annotated[int, Field(ge=1, le=1024)] = Field(
        description="tasks run at once; the agent never claims more than it has free slots"
    )
    devices: list[Id] | None = Field(None, description="claim only tasks for these devices; default: any")
    run_root: Path = Field(
        description="where run directories are made: a filesystem the compute nodes see at the same path; "
        "created 0700 if missing; it must belong to the agent's account and be writable by no one else"
    )
    run_root_policy: RunRootPolicy = Field(
        "private",
        description="private: every directory above run_root belongs to root or the agent's account and none is "
        "writable by others unless sticky (like /tmp); shared-filesystem: the directories above may belong to "
        "others (a project directory on a shared filesystem whose group you trust); run_root itself must still "
        "be the agent's and writable by no one else",
    )
    retention: Retention = Field(
        default_factory=Retention, description="when finished run directories are removed or bundled"
    )
    claim_wait_s: Annotated[float, Field(ge=0, le=30)] = Field(20.0, description="long-poll wait of one CLAIM")
    heartbeat_s: Annotated[float, Field(gt=0, le=300)] = Field(
        1.0,
        description="heartbeat interval: a cancel on the control plane reaches the runner within about this long; "
        "keep it well inside the control plane's liveness window",
    )
    grace_s: Annotated[float, Field(ge=0, le=3600)] = Field(
        30.0, description="on SIGTERM, how long in-flight tasks may finish before they are cancelled and handed back"
    )
    resources: TaskResources = Field(default_factory=TaskResources, description="what each task's runner gets")
    runner: RunnerSettings = Field(default_factory=RunnerSettings)
    prefect: PrefectSettings = Field(default_factory=PrefectSettings)
    scheduler: SchedulerSettings = Field(description="where runner steps execute")

    @field_validator("run_root", mode="after")
    @classmethod
    def _absolute_root(cls, path: Path) -> Path:
        return _absolute(path)

    @model_validator(mode="after")
    def _consistent(self) -> SiteConfig:
        s = self.scheduler
        if isinstance(s, LocalScheduler) and s.workers is not None and s.workers < self.slots:
            raise ValueError(f"slots: {self.slots} tasks at once, but scheduler.workers is {s.workers}")
        if isinstance(s, SbatchScheduler | MemoryScheduler) and self.runner.mode == "fork":
            raise ValueError(
                f"runner.mode: 'fork' needs a warm Dask worker; the {s.kind!r} scheduler starts a fresh process "
                "per task: set runner.mode: process"
            )
        if isinstance(s, SlurmScheduler | PbsScheduler):
            capacity = s.adapt.maximum_jobs * s.processes
            if self.slots > capacity:
                raise ValueError(
                    f"slots: {self.slots} tasks at once, but scheduler.adapt.maximum_jobs x scheduler.processes "
                    f"gives {capacity} Dask workers"
                )
            if self.resources.gpus and s.processes > 1:
                raise ValueError(
                    "resources.gpus: each Dask worker of a batch job would see all of the job's GPUs; "
                    "with GPUs use scheduler.processes: 1 (one worker per job)"
                )
            if self.resources.cpus * (s.processes) > s.cores:
                raise ValueError(
                    f"resources.cpus: {s.processes} worker(s) x {self.resources.cpus} cpus exceed "
                    f"scheduler.cores ({s.cores})"
                )
        self._runtime_fits()
        if self.resources.gpu_memory_mb is not None and self.resources.gpus == 0:
            raise ValueError("resources.gpu_memory_mb: set, but resources.gpus is 0")
        return self

    def _runtime_fits(self) -> None:
        """A run at the site's ceiling, plus the kill grace, must fit in what runs it: a worker's shortest life
        (a Dask batch site; see docs/agent.md, "Worker lifetime"), or the walltime (sbatch)."""
        ceiling, s = self.resources.max_runtime_s, self.scheduler
        if ceiling is None:
            if isinstance(s, SlurmScheduler | PbsScheduler) and s.shortest_lifetime_s() <= 2 * KILL_GRACE_S:
                raise ValueError(f"scheduler.worker_lifetime: {s.lifetime()} leaves no time for a run")
            return
        if isinstance(s, SlurmScheduler | PbsScheduler) and ceiling + KILL_GRACE_S >= s.shortest_lifetime_s():
            raise ValueError(
                f"resources.max_runtime_s: {ceiling:g} s plus the {KILL_GRACE_S:g} s kill grace does not fit in the "
                f"shortest worker lifetime ({s.shortest_lifetime_s()} s: worker_lifetime {s.lifetime()} less its "
                "stagger): a run could never end before its worker retires"
            )
        if isinstance(s, SbatchScheduler) and ceiling + KILL_GRACE_S > walltime_seconds(s.walltime):
            raise ValueError(
                f"resources.max_runtime_s: {ceiling:g} s plus the {KILL_GRACE_S:g} s kill grace exceeds "
                f"scheduler.walltime ({s.walltime})"
            )

    # --- what one slot holds -------------------------------------------------------------------

    def runtime_ceiling_s(self) -> float:
        """The longest any run may take here: resources.max_runtime_s, or its default (see the field)."""
        if self.resources.max_runtime_s is not None:
            return self.resources.max_runtime_s
        s = self.scheduler
        if isinstance(s, SlurmScheduler | PbsScheduler):
            bound = float(max(1, int(0.9 * s.shortest_lifetime_s() - KILL_GRACE_S)))
        elif isinstance(s, SbatchScheduler):
            bound = walltime_seconds(s.walltime) - KILL_GRACE_S
        else:
            bound = DEFAULT_RUNTIME_CEILING_S
        return min(bound, MAX_RUNTIME_S)

    def slot_memory_bytes(self) -> int:
        """Host memory of one slot: resources.memory_mb, or its default (see the field)."""
        if self.resources.memory_mb is not None:
            return self.resources.memory_mb * MIB
        s = self.scheduler
        if isinstance(s, SlurmScheduler | PbsScheduler):
            from dask.utils import parse_bytes  # dask-jobqueue's own reading of `memory`

            return max(1, int(parse_bytes(s.memory)) // s.processes)
        return max(1, node_memory_bytes() // self.slots)

    def slot_capacity(self) -> SlotCapacity:
        """What every CLAIM says one slot holds."""
        gpu = self.resources.gpu_memory_mb
        return SlotCapacity(
            memory_bytes=self.slot_memory_bytes(),
            gpu_memory_bytes=None if gpu is None else gpu * MIB,
            max_runtime_s=self.runtime_ceiling_s(),
        )

    def site_limits(self) -> RunLimits:
        """The bounds of any run here: the site's wall-time ceiling and one slot's memory."""
        capacity = self.slot_capacity()
        return RunLimits(
            max_runtime_s=capacity.max_runtime_s,
            memory_bytes=capacity.memory_bytes,
            gpu_memory_bytes=capacity.gpu_memory_bytes,
        )

    def agent_name(self) -> str:
        return self.agent_id or f"{self.site}-{socket.gethostname()}"[:128]


def run_limits(site: RunLimits, task_max_runtime_s: float | None) -> RunLimits:
    """task.json `limits` of one run: the site's, with the task's own wall-time limit where it is lower (the
    control plane has already lowered it to its ceiling for the task's owner; an older one sends none)."""
    ceiling = site.max_runtime_s
    if task_max_runtime_s is None:
        return site
    limit = task_max_runtime_s if ceiling is None else min(task_max_runtime_s, ceiling)
    return site.model_copy(update={"max_runtime_s": limit})


def load_site(path: Path) -> SiteConfig:
    """Read and validate a site file; SiteError names the file and every offending field."""
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SiteError(f"site file {path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise SiteError(f"site file {path}: not YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise SiteError(f"site file {path}: expected a mapping of settings, found {type(raw).__name__}")
    return parse_site(raw, source=str(path))


def parse_site(raw: dict[str, Any], source: str = "site") -> SiteConfig:
    try:
        site = SiteConfig.model_validate(raw)
    except ValidationError as exc:
        raise SiteError(f"{source}:\n" + "\n".join(f"  {_explain(e)}" for e in exc.errors())) from None
    return site


_NAMED = re.compile(r"^([a-z_]+(?:\.[a-z_]+)*): (.*)$", re.DOTALL)


def _explain(error: Any) -> str:
    """`field.path: message`. A cross-field check names its field first in its message
    ("slots: ..."); that name joins the path pydantic gives (the model the check belongs to)."""
    # pydantic puts the union member's tag into the path (scheduler.slurm.partition): drop it
    parts = [str(p) for p in error["loc"]]
    if len(parts) >= 2 and parts[0] == "scheduler" and parts[1] in {"local", "slurm", "pbs", "sbatch", "memory"}:
        parts.pop(1)
    message = str(error["msg"]).removeprefix("Value error, ")
    named = _NAMED.match(message)
    if named is not None and error["type"] == "value_error":
        first = named.group(1)
        parts = first.split(".") if parts == [] or first.startswith(f"{parts[0]}.") else [*parts, *first.split(".")]
        message = named.group(2)
    return f"{'.'.join(parts) or '(top level)'}: {message}"
