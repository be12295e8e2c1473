"""The sbatch adapter's pure parts: the batch script it renders, and how Slurm's records become evidence."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from agent.scheduler.base import JobState
from agent.scheduler.sbatch import evidence_from_fields, parse_fields, render_script, slurm_duration
from agent.site import SbatchScheduler, TaskResources

RUN_DIR = Path("/scratch/vqpu runs/task-1.1")
PYTHON = "/opt/vqpu/bin/python"


def settings(**fields: object) -> SbatchScheduler:
    return SbatchScheduler.model_validate({"kind": "sbatch", **fields})


def render(site: SbatchScheduler | None = None, resources: TaskResources | None = None, cwd: Path | None = None) -> str:
    site, resources = site or settings(), resources or TaskResources()
    return render_script(site, resources, RUN_DIR, "vqpu-task-1.1", PYTHON, "vqpu-agent:site-a", cwd=cwd)


def directives(script: str) -> list[str]:
    return [line.removeprefix("#SBATCH ") for line in script.splitlines() if line.startswith("#SBATCH")]


def test_the_script_is_a_bash_script_whose_last_line_runs_the_runner_on_the_quoted_run_dir() -> None:
    script = render()
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert lines[-1] == f"exec {PYTHON} -m runner '/scratch/vqpu runs/task-1.1'"
    assert shlex.split(lines[-1]) == ["exec", PYTHON, "-m", "runner", str(RUN_DIR)]


def test_the_job_is_named_commented_and_writes_its_output_into_the_run_dir() -> None:
    found = directives(render())
    assert "--job-name=vqpu-task-1.1" in found
    assert "--comment=vqpu-agent:site-a" in found
    assert "--chdir='/scratch/vqpu runs/task-1.1'" in found
    assert "--output='/scratch/vqpu runs/task-1.1/slurm-%j.out'" in found
    assert "--error='/scratch/vqpu runs/task-1.1/slurm-%j.out'" in found


def test_a_log_directory_takes_the_output_and_a_percent_in_it_stays_literal() -> None:
    found = directives(render(settings(log_directory="/logs/100%")))
    assert "--output=/logs/100%%/vqpu-task-1.1-%j.out" in found


def test_cpus_memory_and_walltime_come_from_the_resources_and_the_site() -> None:
    found = directives(render(settings(walltime="1-02:00:00"), TaskResources(cpus=4, memory_mb=8192)))
    assert "--cpus-per-task=4" in found
    assert "--mem=8192M" in found
    assert "--time=1-02:00:00" in found


def test_a_gpu_task_asks_for_gres_and_a_cpu_task_does_not() -> None:
    assert "--gres=gpu:2" in directives(render(resources=TaskResources(gpus=2)))
    assert not any(d.startswith("--gres") for d in directives(render()))


def test_account_partition_and_qos_appear_only_when_the_site_sets_them() -> None:
    found = directives(render(settings(account="proj 42", partition="gpu", qos="high")))
    assert {"--account='proj 42'", "--partition=gpu", "--qos=high"} <= set(found)
    bare = directives(render())
    assert not any(d.startswith(("--account", "--partition", "--qos", "--mem")) for d in bare)


def test_extra_directives_are_kept_verbatim_after_the_others() -> None:
    found = directives(render(settings(job_extra_directives=["--constraint=a100", "#SBATCH --exclusive"])))
    assert found[-2:] == ["--constraint=a100", "--exclusive"]


def test_modules_and_prologue_run_after_the_directives_and_before_the_runner() -> None:
    script = render(settings(modules=["cuda/12.2"], prologue=["export OMP_NUM_THREADS=1"]))
    lines = script.splitlines()
    last_directive = max(i for i, line in enumerate(lines) if line.startswith("#SBATCH"))
    module = lines.index("module load cuda/12.2")
    prologue = lines.index("export OMP_NUM_THREADS=1")
    runner = next(i for i, line in enumerate(lines) if line.startswith("exec "))
    assert last_directive < module < prologue < runner


def test_the_runner_starts_in_the_given_cwd() -> None:
    lines = render(cwd=Path("/home/me/hpc vqpu")).splitlines()
    assert lines[-2:] == ["cd '/home/me/hpc vqpu'", f"exec {PYTHON} -m runner '/scratch/vqpu runs/task-1.1'"]


def test_a_line_break_in_a_path_is_refused_rather_than_injected_into_the_script() -> None:
    with pytest.raises(ValueError, match="line break"):
        render_script(settings(), TaskResources(), Path("/runs/x\n#SBATCH --x"), "vqpu-x", PYTHON)


def test_walltimes_in_seconds_become_slurm_durations() -> None:
    assert slurm_duration(90) == "00:01:30"
    assert slurm_duration(86_400 + 3600) == "1-01:00:00"


# --- Slurm's records as evidence --------------------------------------------------------------

SHOW = (
    "JobId=7 JobName=vqpu-task 1 UserId=root(0) JobState={state} Reason={reason} ExitCode={code} "
    "NodeList=vm BatchHost=vm TRES=cpu=1,mem=1G,node=1 WorkDir=/runs/task 1 Comment=vqpu-agent:a StdOut=/runs/x"
)


def show(state: str, code: str = "0:0", reason: str = "None") -> dict[str, str]:
    return parse_fields(SHOW.format(state=state, code=code, reason=reason))


def test_values_with_spaces_survive_parsing() -> None:
    fields = show("RUNNING")
    assert fields["JobName"] == "vqpu-task 1"
    assert fields["WorkDir"] == "/runs/task 1"
    assert fields["TRES"] == "cpu=1,mem=1G,node=1"


def test_an_active_job_has_no_evidence() -> None:
    for state in ("PENDING", "RUNNING", "COMPLETING", "SUSPENDED"):
        assert evidence_from_fields(show(state), "7") is None


@pytest.mark.parametrize(
    ("state", "code", "expected", "exit_code"),
    [
        ("COMPLETED", "0:0", JobState.COMPLETED, 0),
        ("FAILED", "2:0", JobState.COMPLETED, 2),  # the runner exited 2: the run dir says why
        ("FAILED", "0:9", JobState.COMPLETED, -9),  # killed by a signal, as Python reports it
        ("FAILED", "0:0", JobState.FAILED, None),  # never launched the runner
        ("CANCELLED", "0:15", JobState.CANCELLED, -15),
        ("CANCELLED", "0:0", JobState.CANCELLED, None),  # cancelled while pending
        ("TIMEOUT", "0:15", JobState.FAILED, -15),
        ("NODE_FAIL", "0:0", JobState.FAILED, None),
        ("OUT_OF_MEMORY", "0:9", JobState.FAILED, -9),
    ],
)
def test_slurm_states_map_to_evidence(state: str, code: str, expected: JobState, exit_code: int | None) -> None:
    evidence = evidence_from_fields(show(state, code, reason="NonZeroExitCode"), "7")
    assert evidence is not None
    assert (evidence.state, evidence.exit_code, evidence.scheduler_state) == (expected, exit_code, state)
    assert (evidence.node, evidence.job_id, evidence.reason) == ("vm", "7", "NonZeroExitCode")


def test_a_jobcomp_line_gives_the_same_evidence() -> None:
    line = (
        "JobId=9 UserId=root(0) GroupId=root(0) Name=vqpu-t JobState=FAILED Partition=debug "
        "NodeList=vm NodeCnt=1 DerivedExitCode=0:0 ExitCode=3:0 "
    )
    evidence = evidence_from_fields(parse_fields(line), "9")
    assert evidence is not None
    assert (evidence.state, evidence.exit_code, evidence.node) == (JobState.COMPLETED, 3, "vm")
