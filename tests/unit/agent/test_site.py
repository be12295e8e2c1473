"""Site files (deployments/sites/*.yaml): the shipped ones load, wrong ones are refused naming the
field, and each site's cluster and batch script come out of it without starting anything."""

from __future__ import annotations

import asyncio
import copy
import os
import re
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from distributed import LocalCluster

from agent.cluster import cluster_spec, render_job
from agent.site import SiteConfig, SiteError, load_site, parse_site

SITES = Path(__file__).resolve().parents[3] / "deployments" / "sites"
SHIPPED = sorted(SITES.glob("*.yaml"))
API = "http://login-1:4200/api"

BATCH: dict[str, Any] = {
    "site": "test",
    "slots": 2,
    "run_root": "/shared/runs",
    "scheduler": {"kind": "slurm", "partition": "debug", "cores": 2, "processes": 2, "adapt": {"maximum_jobs": 1}},
}


def site(**changes: Any) -> dict[str, Any]:
    """BATCH with some settings replaced; `scheduler` changes are merged into its scheduler."""
    raw = copy.deepcopy(BATCH)
    for key, value in changes.items():
        if key == "scheduler":
            raw["scheduler"].update(value)
        else:
            raw[key] = value
    return raw


def refusal(raw: dict[str, Any]) -> str:
    with pytest.raises(SiteError) as caught:
        parse_site(raw, source="test.yaml")
    return str(caught.value)


# --- loading ------------------------------------------------------------------------------------


def test_the_three_documented_sites_are_shipped() -> None:
    assert {p.name for p in SHIPPED} >= {"local.yaml", "slurm-local.yaml", "setonix.example.yaml"}


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_site_loads(path: Path) -> None:
    loaded = load_site(path)
    assert loaded.run_root.is_absolute()
    assert path.read_text().startswith("#"), "a site file starts with a comment saying what it is for"


def test_shipped_sites_say_what_they_are() -> None:
    local = load_site(SITES / "local.yaml")
    assert local.scheduler.kind == "local" and local.slots == 2 and local.runner.mode == "fork"
    assert local.run_root == Path("~/.local/share/vqpu/runs").expanduser()

    slurm = load_site(SITES / "slurm-local.yaml")
    assert slurm.scheduler.kind == "slurm"
    assert slurm.scheduler.partition == "debug"
    assert (slurm.scheduler.cores, slurm.scheduler.processes, slurm.scheduler.memory) == (1, 1, "2GB")
    assert (slurm.scheduler.adapt.minimum_jobs, slurm.scheduler.adapt.maximum_jobs) == (0, 2)

    setonix = load_site(SITES / "setonix.example.yaml")
    assert setonix.scheduler.kind == "slurm" and setonix.resources.gpus == 1
    assert str(setonix.run_root).startswith("/scratch/")


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_no_shipped_site_puts_its_run_root_where_another_account_could_make_it_first(path: Path) -> None:
    loaded = load_site(path)
    home = Path("~").expanduser()
    if loaded.run_root_policy == "private":
        assert loaded.run_root.is_relative_to(home), f"{path.name}: run_root {loaded.run_root} is not under ~"
    else:
        assert "run_root_policy: shared-filesystem" in path.read_text() and str(loaded.run_root).startswith("/scratch/")
    log_directory = getattr(loaded.scheduler, "log_directory", None)
    for where in (loaded.run_root, log_directory):
        assert where is None or not where.is_relative_to("/tmp"), f"{path.name}: {where} is in /tmp"


def test_a_minimal_site_takes_the_defaults() -> None:
    loaded = parse_site({"site": "x", "slots": 1, "run_root": "/r", "scheduler": {"kind": "local"}})
    assert loaded.runner.mode == "fork" and loaded.resources.gpus == 0 and loaded.prefect.work_pool == "vqpu"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (site(slotz=3), "slotz"),
        (site(scheduler={"partitions": "gpu"}), "scheduler.partitions"),
        (site(resources={"gpu": 1}), "resources.gpu"),
        (site(runner={"mode": "fork", "pyhton": "/usr/bin/python3"}), "runner.pyhton"),
    ],
)
def test_unknown_fields_are_refused_by_name(raw: dict[str, Any], field: str) -> None:
    message = refusal(raw)
    assert re.search(rf"^\s+{re.escape(field)}: Extra inputs are not permitted", message, re.M), message
    assert message.startswith("test.yaml:")


def test_a_field_given_to_the_wrong_scheduler_is_refused() -> None:
    # `workers` belongs to the local scheduler; a Slurm site must say processes and adapt instead.
    assert "scheduler.workers" in refusal(site(scheduler={"workers": 4}))


def test_an_unknown_scheduler_kind_is_refused() -> None:
    message = refusal(site(scheduler={"kind": "lsf"}))
    assert "scheduler" in message and "lsf" in message


# --- conflicts ----------------------------------------------------------------------------------


SBATCH = {"kind": "sbatch", "partition": "debug"}


@pytest.mark.parametrize(
    ("raw", "field", "says"),
    [
        (
            site(scheduler={"kind": "sbatch", "partition": "debug", "cores": None}),
            "scheduler.cores",
            "Extra inputs",
        ),
        (
            {**site(), "scheduler": SBATCH, "runner": {"mode": "fork"}},
            "runner.mode",
            "set runner.mode: process",
        ),
        (
            {**site(), "scheduler": {"kind": "memory"}},  # fork is the default mode
            "runner.mode",
            "set runner.mode: process",
        ),
        (site(slots=3), "slots", "gives 2 Dask workers"),
        (site(resources={"cpus": 2}), "resources.cpus", "exceed scheduler.cores (2)"),
        (
            site(scheduler={"walltime": "01:00:00", "worker_lifetime": "60m"}),
            "worker_lifetime",
            "not shorter than walltime 01:00:00",
        ),
        (site(scheduler={"worker_lifetime": "2h"}), "worker_lifetime", "not shorter"),
        (site(scheduler={"adapt": {"minimum_jobs": 3, "maximum_jobs": 2}}), "minimum_jobs", "maximum_jobs"),
        (site(run_root="runs/here"), "run_root", "is relative"),
        (site(scheduler={"walltime": "1:00"}), "scheduler.walltime", "pattern"),
        (site(scheduler={"worker_lifetime": "55 minutes"}), "scheduler.worker_lifetime", "pattern"),
    ],
    ids=[
        "sbatch-takes-no-cores",
        "fork-on-sbatch",
        "fork-on-memory",
        "slots-beyond-adapt",
        "cpus-beyond-cores",
        "lifetime-equals-walltime",
        "lifetime-beyond-walltime",
        "min-jobs-above-max",
        "relative-run-root",
        "walltime-format",
        "lifetime-format",
    ],
)
def test_conflicts_are_refused_naming_the_field(raw: dict[str, Any], field: str, says: str) -> None:
    message = refusal(raw)
    assert field in message, message
    assert says in message, message


def test_process_mode_on_sbatch_is_accepted() -> None:
    loaded = parse_site({**site(), "scheduler": SBATCH, "runner": {"mode": "process"}})
    assert loaded.scheduler.kind == "sbatch"


def test_a_worker_lifetime_defaults_to_five_minutes_short_of_the_walltime() -> None:
    loaded = parse_site(site(scheduler={"walltime": "02:00:00"}))
    assert loaded.scheduler.kind == "slurm" and loaded.scheduler.lifetime() == "6900s"


def test_tilde_in_run_root_is_expanded() -> None:
    assert parse_site(site(run_root="~/runs")).run_root == Path("~/runs").expanduser()


# --- the file itself ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["- slots: 2\n- site: x\n", "just a string\n", "42\n", ""])
def test_yaml_that_is_not_a_mapping_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(text)
    with pytest.raises(SiteError, match=r"expected a mapping of settings, found \w+") as caught:
        load_site(path)
    assert str(path) in str(caught.value)


def test_a_file_that_is_not_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("site: [unclosed\n")
    with pytest.raises(SiteError, match="not YAML"):
        load_site(path)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SiteError, match="cannot read it"):
        load_site(tmp_path / "nowhere.yaml")


def test_a_load_error_names_the_file_and_every_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("site: x\nslots: 0\nrun_root: rel\nscheduler: {kind: local}\ncolour: blue\n")
    with pytest.raises(SiteError) as caught:
        load_site(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:")
    for field in ("slots", "run_root", "colour"):
        assert re.search(rf"^\s+{field}:", message, re.M), message


# --- the cluster a site gets --------------------------------------------------------------------


def test_a_local_site_gets_a_local_cluster_of_one_thread_workers() -> None:
    loaded = load_site(SITES / "local.yaml")
    cls, kwargs = cluster_spec(loaded)
    assert cls is LocalCluster
    assert kwargs["n_workers"] == loaded.slots == 2
    assert kwargs["threads_per_worker"] == 1 and kwargs["processes"] is True
    assert kwargs["host"] == "127.0.0.1"
    assert "env" not in kwargs  # the workers are given nothing: no Prefect runs on them
    assert "resources" not in kwargs


def test_a_local_gpu_site_offers_its_gpus_as_a_dask_resource() -> None:
    raw = {"site": "ws", "slots": 2, "run_root": "/r", "resources": {"gpus": 1}, "scheduler": {"kind": "local"}}
    _, kwargs = cluster_spec(parse_site(raw))
    assert kwargs["resources"] == {"GPU": 1}
    assert "env" not in kwargs


def test_local_workers_can_be_set_apart_from_slots() -> None:
    raw = {"site": "ws", "slots": 2, "run_root": "/r", "scheduler": {"kind": "local", "workers": 3}}
    assert cluster_spec(parse_site(raw))[1]["n_workers"] == 3


def test_a_slurm_site_gets_a_slurm_cluster_with_the_site_settings() -> None:
    from dask_jobqueue.slurm import SLURMCluster

    loaded = load_site(SITES / "setonix.example.yaml")
    cls, kwargs = cluster_spec(loaded, scheduler_host="10.0.0.5")
    assert cls is SLURMCluster
    assert kwargs["queue"] == "gpu" and "--account=pawsey0001-gpu" in kwargs["job_extra_directives"]
    assert kwargs["walltime"] == "01:00:00" and kwargs["job_cpu"] == 8
    assert "--gres=gpu:1" in kwargs["job_extra_directives"]
    assert kwargs["worker_extra_args"][:2] == ["--lifetime", "55m"]
    assert kwargs["scheduler_options"]["host"] == "10.0.0.5"
    assert "log_directory" not in kwargs  # dask-jobqueue would create it on the login node while rendering
    assert "adapt" not in kwargs and "minimum_jobs" not in kwargs


def test_a_pbs_site_gets_a_pbs_cluster_with_gpus_in_its_select() -> None:
    from dask_jobqueue.pbs import PBSCluster

    raw: dict[str, Any] = {
        "site": "pbs",
        "slots": 1,
        "run_root": "/r",
        "resources": {"gpus": 1},
        "scheduler": {"kind": "pbs", "queue": "gpuq", "account": "acct", "cores": 4, "processes": 1, "memory": "8GB"},
    }
    loaded = parse_site({**raw, "scheduler": {**raw["scheduler"], "adapt": {"maximum_jobs": 1}}})
    cls, kwargs = cluster_spec(loaded)
    assert cls is PBSCluster
    assert kwargs["queue"] == "gpuq"
    assert kwargs["resource_spec"].startswith("select=1:ncpus=4:mem=") and kwargs["resource_spec"].endswith(":ngpus=1")
    script = render_job(loaded)
    lines = script.splitlines()
    assert "#PBS -q gpuq" in lines and "#PBS -A acct" in lines
    assert "--resources GPU=1" in script


def test_gpus_with_several_workers_per_job_are_refused_naming_the_field() -> None:
    raw = site(resources={"gpus": 1}, scheduler={"cores": 2, "processes": 2})
    with pytest.raises(SiteError, match=r"\n  resources\.gpus: each Dask worker of a batch job would see all"):
        parse_site(raw)


def test_a_local_cluster_smaller_than_the_slots_is_refused_naming_the_field() -> None:
    with pytest.raises(SiteError, match=r"\n  slots: 3 tasks at once, but scheduler\.workers is 1"):
        parse_site({**site(), "slots": 3, "scheduler": {"kind": "local", "workers": 1}})


@pytest.mark.parametrize(
    ("walltime", "why"), [("00:99:00", "minutes and seconds below 60"), ("00:00:30", "shorter than a minute")]
)
def test_an_impossible_walltime_is_refused_naming_the_field(walltime: str, why: str) -> None:
    with pytest.raises(SiteError, match=rf"\n  scheduler\.walltime: .*{why}"):
        parse_site(site(scheduler={"walltime": walltime, "worker_lifetime": None}))


def test_the_default_worker_lifetime_ends_before_a_short_walltime() -> None:
    loaded = parse_site(site(scheduler={"walltime": "00:02:00", "worker_lifetime": None}))
    assert loaded.scheduler.kind == "slurm"
    assert loaded.scheduler.lifetime() == "108s"


@pytest.mark.parametrize("kind", ["sbatch", "memory"])
def test_sites_without_a_dask_cluster_say_so(kind: str) -> None:
    loaded = parse_site({**site(), "scheduler": {"kind": kind}, "runner": {"mode": "process"}})
    with pytest.raises(SiteError, match=rf"site 'test' runs no Dask cluster: its scheduler is {kind}"):
        cluster_spec(loaded)


# --- the batch script a site runs ---------------------------------------------------------------


@pytest.fixture
def no_listening_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening a port takes a bind (and a listen); the unit conftest already refuses connects and spawns."""

    def refused(*args: object) -> None:
        pytest.fail("rendering a job script must not open a port")

    monkeypatch.setattr(socket.socket, "bind", refused)
    monkeypatch.setattr(socket.socket, "listen", refused)


@pytest.fixture
def setonix_script(no_listening_socket: None) -> str:
    threads = threading.active_count()
    script = render_job(load_site(SITES / "setonix.example.yaml"))
    assert threading.active_count() == threads, "rendering started a thread (an event loop, a cluster)"
    return script


def test_setonix_job_asks_slurm_for_one_gpu_on_the_project(setonix_script: str) -> None:
    lines = setonix_script.splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert "#SBATCH --gres=gpu:1" in lines
    assert "#SBATCH --account=pawsey0001-gpu" in lines
    assert "#SBATCH -p gpu" in lines
    assert "#SBATCH -t 01:00:00" in lines
    assert "#SBATCH --cpus-per-task=8" in lines
    assert "#SBATCH --output=/scratch/pawsey0001/vqpu-agent/slurm-logs/%x-%j.out" in lines


def test_setonix_job_loads_modules_and_prologue_before_the_worker(setonix_script: str) -> None:
    lines = setonix_script.splitlines()
    worker = next(i for i, line in enumerate(lines) if "distributed.cli.dask_worker" in line)
    order = [
        "module load rocm/5.7.3",
        "module load python/3.11.6",
        "export OMP_NUM_THREADS=8",
        "export DASK_DISTRIBUTED__WORKER__DAEMON=False",
    ]
    at = [lines.index(line) for line in order]
    assert at == sorted(at) and at[-1] < worker, setonix_script
    assert max(i for i, line in enumerate(lines) if line.startswith("#SBATCH")) < at[0]


def test_setonix_worker_retires_before_the_walltime_and_offers_its_gpu(setonix_script: str) -> None:
    worker = next(line for line in setonix_script.splitlines() if "distributed.cli.dask_worker" in line)
    assert worker.startswith("/software/projects/pawsey0001/vqpu-agent/venv/bin/python -m distributed.cli.dask_worker")
    assert " tls://LOGIN-NODE:8786 " in worker
    assert "--lifetime 55m" in worker
    assert "--lifetime-stagger 150s" in worker
    assert "--resources GPU=1" in worker
    # One task at a time per worker: the runner child, not Dask threads, uses the job's 8 cores.
    assert "--nthreads 1" in worker


def test_render_job_takes_the_scheduler_address(no_listening_socket: None) -> None:
    script = render_job(load_site(SITES / "slurm-local.yaml"), scheduler_address="tls://h:1")
    assert " tls://h:1 " in script
    assert "--gres" not in script and "--resources" not in script
    assert "#SBATCH -p debug" in script.splitlines()


def test_a_slurm_qos_becomes_a_directive(no_listening_socket: None) -> None:
    script = render_job(parse_site(site(scheduler={"qos": "high"})))
    assert "#SBATCH --qos=high" in script.splitlines()


def test_a_batch_job_carries_nothing_of_prefect_even_where_the_agent_has_it(
    no_listening_socket: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Nothing on a worker talks to Prefect or imports it (the runner step is agent.warm.run_runner): neither
    # the script nor the environment the job is submitted with (sbatch hands it to the job) names Prefect.
    monkeypatch.setenv("PREFECT_API_URL", API)
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", "operator:secret")
    loaded = parse_site(site())
    script = render_job(loaded)
    assert "PREFECT" not in script
    _, kwargs = cluster_spec(loaded, private_dir=tmp_path)
    assert "PREFECT" not in "\n".join(kwargs["job_script_prologue"])
    submitted = _submitted_environment(kwargs["job_cls"])
    assert submitted["PATH"] == os.environ["PATH"]  # an allow-listed environment, not an empty one
    assert not [name for name in submitted if name.startswith("PREFECT_")], submitted


def _submitted_environment(job_cls: type) -> dict[str, str]:
    """The environment a batch job of `job_cls` would be submitted with, caught where it calls sbatch."""
    submitted: dict[str, str] = {}

    async def sbatch(cmd: list[str], **kwargs: Any) -> str:
        submitted.update(kwargs["env"])
        return "Submitted batch job 1"

    job = job_cls(scheduler="tls://h:1", name="w", cores=1, memory="1GB")
    job._call = sbatch
    asyncio.run(job._submit_job("job.sh"))
    return submitted


def test_a_local_site_runs_no_batch_jobs(no_listening_socket: None) -> None:
    with pytest.raises(SiteError, match="site 'local' runs no batch jobs: its scheduler is local"):
        render_job(load_site(SITES / "local.yaml"))


def test_a_memory_site_runs_no_batch_jobs() -> None:
    loaded = parse_site({**site(), "scheduler": {"kind": "memory"}, "runner": {"mode": "process"}})
    with pytest.raises(SiteError, match="runs no batch jobs: its scheduler is memory"):
        render_job(loaded)


def test_an_sbatch_site_renders_one_task_job(no_listening_socket: None) -> None:
    pytest.importorskip("agent.scheduler.sbatch", reason="the sbatch adapter is not written yet")
    loaded: SiteConfig = parse_site(
        {**site(), "scheduler": {**SBATCH, "account": "acct"}, "runner": {"mode": "process"}}
    )
    script = render_job(loaded)
    assert script.startswith("#!")
    assert "/shared/runs/TASK-ID" in script
    assert "acct" in script
