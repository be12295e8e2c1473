"""What the agent hands its children and its clusters: an allow-listed environment, TLS-only Dask with the
agent's own credentials, private batch scripts, and a key file only its account can read."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from dask_jobqueue.slurm import SLURMJob

from agent.bootstrap import AgentConfigError, agent_config
from agent.cluster import cluster_spec, render_job
from agent.dask_security import file_credentials, private_directory, private_job_class, write_private
from agent.environment import child_environment, confine_environment
from agent.site import load_site, parse_site

SITES = Path(__file__).resolve().parents[3] / "deployments" / "sites"

LOGIN_SHELL = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/home/agent",
    "SLURM_JOB_ID": "42",
    "CUDA_VISIBLE_DEVICES": "0",
    "OMP_NUM_THREADS": "4",
    "LC_ALL": "C.UTF-8",
    "VQPU_AGENT_KEY": "agent-secret",
    "PREFECT_API_AUTH_STRING": "operator:secret",
    "AWS_SECRET_ACCESS_KEY": "cloud-secret",
    "GITHUB_TOKEN": "token",
    "SSH_AUTH_SOCK": "/tmp/ssh-agent.sock",
}


def test_a_child_gets_what_it_needs_to_run_and_none_of_the_login_shells_credentials() -> None:
    env = child_environment(source=LOGIN_SHELL)
    assert env == {
        "PATH": "/usr/bin:/bin",
        "HOME": "/home/agent",
        "SLURM_JOB_ID": "42",
        "CUDA_VISIBLE_DEVICES": "0",
        "OMP_NUM_THREADS": "4",
        "LC_ALL": "C.UTF-8",
    }


def test_what_a_child_is_given_on_purpose_comes_on_top_of_the_allow_list() -> None:
    env = child_environment({"PREFECT_API_URL": "http://p/api"}, source=LOGIN_SHELL)
    assert env["PREFECT_API_URL"] == "http://p/api"
    assert "PREFECT_API_AUTH_STRING" not in env


def test_the_agent_keeps_only_what_it_and_its_workers_run_on_in_its_own_environment() -> None:
    environ = {
        **LOGIN_SHELL,
        "VQPU_AGENT_KEY_FILE": "/home/agent/.vqpu/agent.key",
        "VQPU_URL": "https://cp",
        "PREFECT_API_URL": "http://p/api",
        "PREFECT_API_KEY": "cloud-key",
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": "postgresql+asyncpg://prefect:pw@db/prefect",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "DASK_DISTRIBUTED__WORKER__DAEMON": "False",
        "HTTPS_PROXY": "http://proxy:3128",
    }
    removed = confine_environment(environ)
    # Prefect's credentials go too: Prefect read them when the agent imported it, and a LocalCluster's workers,
    # which inherit this environment, run nothing of Prefect's.
    assert removed == [
        "AWS_SECRET_ACCESS_KEY",
        "GITHUB_TOKEN",
        "PREFECT_API_AUTH_STRING",
        "PREFECT_API_KEY",
        "PREFECT_SERVER_DATABASE_CONNECTION_URL",
        "SSH_AUTH_SOCK",
        "VQPU_AGENT_KEY",
        "VQPU_AGENT_KEY_FILE",
    ]
    assert {
        "PATH",
        "VQPU_URL",
        "PREFECT_API_URL",
        "PREFECT_LOGGING_LEVEL",
        "DASK_DISTRIBUTED__WORKER__DAEMON",
        "HTTPS_PROXY",
    } <= set(environ)


def test_a_local_cluster_speaks_tls_with_its_own_credentials_and_serves_no_dashboard() -> None:
    _, kwargs = cluster_spec(load_site(SITES / "local.yaml"))
    assert kwargs["protocol"] == "tls://"
    assert kwargs["security"].require_encryption is True
    assert "BEGIN CERTIFICATE" in kwargs["security"].tls_ca_file  # in memory: made at start, never on disk
    assert kwargs["dashboard_address"] == "127.0.0.1:0"  # loopback, a free port: no route is served there
    # Each start makes new credentials: a certificate of an earlier agent opens nothing.
    _, again = cluster_spec(load_site(SITES / "local.yaml"))
    assert again["security"].tls_ca_file != kwargs["security"].tls_ca_file


def test_a_rendered_batch_job_names_its_credential_files_and_holds_none_of_them() -> None:
    site = load_site(SITES / "slurm-local.yaml")
    script = render_job(site)
    assert "tls://LOGIN-NODE:8786" in script
    assert "--protocol tls://" in script
    private = f"{site.run_root}/.dask-XXXXXXXX"
    for flag, name in (("--tls-ca-file", "ca.pem"), ("--tls-cert", "cert.pem"), ("--tls-key", "key.pem")):
        assert f"{flag} {private}/{name}" in script
    assert "BEGIN" not in script
    assert "DASK_DISTRIBUTED__WORKER__HTTP__ROUTES" in script  # the worker's HTTP server serves nothing
    assert "PREFECT_API_AUTH_STRING" not in script  # nor Prefect's (tests/unit/agent/test_site.py: nothing of Prefect)


def test_batch_credentials_are_written_private_and_never_over_a_planted_file(tmp_path: Path) -> None:
    private = private_directory(tmp_path, ".dask-")
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    security = file_credentials(private)
    for name in ("ca.pem", "cert.pem", "key.pem"):
        assert stat.S_IMODE((private / name).stat().st_mode) == 0o600
    assert security.require_encryption and security.tls_worker_key == str(private / "key.pem")
    planted = tmp_path / "planted"
    (tmp_path / "elsewhere").write_text("x")
    planted.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError):
        write_private(planted, "secret")
    assert (tmp_path / "elsewhere").read_text() == "x"


def test_a_batch_job_script_is_written_0600_into_the_private_directory_and_removed_after(tmp_path: Path) -> None:
    private = private_directory(tmp_path, ".dask-")
    job_cls = private_job_class(SLURMJob, private, {"PATH": "/usr/bin"})
    job = job_cls(scheduler="tls://h:1", name="w", cores=1, memory="1GB")
    with job.job_file() as path:
        assert Path(path).parent == private
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert Path(path).read_text() == job.job_script()
    assert not Path(path).exists()


def test_a_slurm_sites_cluster_spec_submits_with_an_allow_listed_environment(tmp_path: Path) -> None:
    raw = {"site": "s", "slots": 1, "run_root": str(tmp_path), "scheduler": {"kind": "slurm"}}
    _, kwargs = cluster_spec(parse_site(raw), private_dir=tmp_path)
    assert kwargs["protocol"] == "tls://" and kwargs["security"].require_encryption
    assert kwargs["scheduler_options"]["dashboard"] is False
    assert kwargs["job_cls"].__name__ == "PrivateSLURMJob"


def _site_file(tmp_path: Path) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text((SITES / "local.yaml").read_text())
    return path


def _key_file(tmp_path: Path, mode: int) -> Path:
    path = tmp_path / "agent.key"
    path.write_text("the-agent-key\n")
    path.chmod(mode)
    return path


def test_the_agent_key_comes_from_a_private_key_file(tmp_path: Path) -> None:
    env = {"VQPU_URL": "http://cp", "PREFECT_API_URL": "http://p/api"}
    env["VQPU_AGENT_KEY_FILE"] = str(_key_file(tmp_path, 0o600))
    assert agent_config(_site_file(tmp_path), env=env).key == "the-agent-key"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_key_file_other_accounts_can_read_is_refused_naming_its_mode(tmp_path: Path, mode: int) -> None:
    env = {"VQPU_URL": "http://cp", "PREFECT_API_URL": "http://p/api"}
    env["VQPU_AGENT_KEY_FILE"] = str(_key_file(tmp_path, mode))
    with pytest.raises(AgentConfigError, match=f"mode {mode:04o} lets other accounts read it"):
        agent_config(_site_file(tmp_path), env=env)


def test_a_key_file_reached_through_a_symlink_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "link.key"
    link.symlink_to(_key_file(tmp_path, 0o600))
    env = {"VQPU_URL": "http://cp", "PREFECT_API_URL": "http://p/api", "VQPU_AGENT_KEY_FILE": str(link)}
    with pytest.raises(AgentConfigError, match="cannot open it"):
        agent_config(_site_file(tmp_path), env=env)


def test_a_batch_log_directory_another_account_could_write_is_refused(tmp_path: Path) -> None:
    from agent.cluster import _private_log_directory
    from agent.site import SiteError

    fresh = tmp_path / "logs" / "slurm"
    _private_log_directory(fresh)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(SiteError, match=r"log_directory .*shared.*mode 0777"):
        _private_log_directory(shared)
