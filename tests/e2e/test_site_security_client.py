"""The `vqpu` command line on a shared login node, tried as the machine's other accounts and the service's
other tenants would: another account reads every process's command line, so the key must not be
there; another tenant writes tags an admin's terminal will show, so text output must not pass
what a terminal acts on.

The CLI runs as its users run it (`python -m vqpu_client.cli`, its own process) against a real
`vqpu-server`; the other account is `harness.intruder` (an unprivileged uid made with setpriv).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.circuits import BELL
from harness.intruder import Intruder
from harness.servers import ServerProcess, make_keys
from vqpu_service.domain.model import Role

pytestmark = pytest.mark.slow

VQPU = [sys.executable, "-m", "vqpu_client.cli"]
DEVICE = "line-16"
HOSTILE_TAG = "\x1b[2J\x1b]0;pwned\x07"
"""Clears the screen and retitles the window of whoever's terminal shows it raw."""
BIDI_TAG = "fine\u202edesrever"
"""A right-to-left override: the rest of the line shows reversed."""


class Site:
    def __init__(self, process: ServerProcess, keys: dict[str, str]) -> None:
        self.process, self.keys = process, keys

    @property
    def url(self) -> str:
        return self.process.url

    def env(self, **extra: str) -> dict[str, str]:
        """The CLI's environment: the server's URL and `extra`, no key unless `extra` names one."""
        base = {k: v for k, v in os.environ.items() if k not in ("VQPU_KEY", "VQPU_KEY_FILE")}
        return {**base, "VQPU_URL": self.url, "DO_NOT_TRACK": "1", **extra}

    def submit(self, who: str, tags: list[str]) -> str:
        """A task that stays QUEUED (no agent serves this server), as `who` submits it over HTTP."""
        body = {"device": DEVICE, "circuit": BELL, "dialect": "qasm3", "shots": 10, "tags": tags}
        r = httpx.post(
            f"{self.url}/v1/tasks", json=body, headers={"Authorization": f"Bearer {self.keys[who]}"}, timeout=30
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    workdir = tmp_path_factory.mktemp("site-client")
    keys = make_keys(workdir / "keys.json", user=Role.USER, tenant=Role.USER, admin=Role.ADMIN)
    with ServerProcess(workdir, f"sqlite:///{workdir / 'cp.db'}", workdir / "keys.json") as process:
        yield Site(process, keys)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every account may enter (a home directory is often 0755): only a file's own mode guards it."""
    path = Path(tempfile.mkdtemp(prefix="vqpu-keys-"))
    path.chmod(0o755)
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


def _key_file(directory: Path, key: str, mode: int) -> Path:
    path = directory / "vqpu.key"
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, f"{key}\n".encode())
    os.close(fd)
    path.chmod(mode)
    return path


def _vqpu(site: Site, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VQPU, *args], capture_output=True, text=True, env=env, timeout=120)


def _reads(intruder: Intruder, path: str) -> str | None:
    """What the intruder reads at `path` (NULs as spaces), or None when the machine refuses it."""
    code = (
        "import json, sys\n"
        f"try:\n    data = open({path!r}, 'rb').read().replace(b'\\0', b' ').decode(errors='replace')\n"
        "except OSError:\n    data = None\n"
        "print(json.dumps(data))\n"
    )
    done = intruder.python(code)
    assert done.returncode == 0, done.stderr
    found: str | None = json.loads(done.stdout)
    return found


class Watching:
    """`vqpu watch TASK` on a task that never ends: a long-running CLI process to look at from outside."""

    def __init__(self, site: Site, task_id: str, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [*VQPU, *args, "watch", task_id], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        self.first = self.proc.stdout.readline() if ready else ""
        assert "TASK_SUBMITTED" in self.first, (self.first, self.stop())
        assert self.proc.poll() is None

    def stop(self) -> str:
        """Ctrl-C it; its stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err


def test_another_tenants_tags_reach_an_admins_terminal_escaped_and_json_keeps_them_exact(site: Site) -> None:
    task_id = site.submit("tenant", [HOSTILE_TAG, BIDI_TAG])
    admin = site.env(VQPU_KEY=site.keys["admin"])

    shown = _vqpu(site, "status", task_id, env=admin)
    assert shown.returncode == 0, shown.stderr
    acted_on = sorted({ch for ch in shown.stdout if not ch.isprintable() and ch != "\n"})
    assert acted_on == [], f"the terminal would act on {acted_on!r}"
    assert "tags       \\x1b[2J\\x1b]0;pwned\\x07, fine\\u202edesrever" in shown.stdout.splitlines()

    exact = _vqpu(site, "status", task_id, "--json", env=admin)
    assert json.loads(exact.stdout)["tags"] == [HOSTILE_TAG, BIDI_TAG]
    assert all(ch.isprintable() or ch == "\n" for ch in exact.stdout)  # as JSON escapes: exact, and inert


def test_a_key_file_other_accounts_can_read_is_refused_naming_its_mode_and_a_private_one_works(
    site: Site, intruder: Intruder, shared_dir: Path
) -> None:
    key = site.keys["user"]
    task_id = site.submit("user", ["mine"])
    exposed = _key_file(shared_dir, key, 0o644)
    assert _reads(intruder, str(exposed)) == f"{key}\n"  # why it is refused: anyone could take it

    refused = _vqpu(site, "--key-file", str(exposed), "status", task_id, env=site.env())
    assert (refused.returncode, refused.stdout) == (2, "")
    assert f"key file {exposed} has mode 0644" in refused.stderr and key not in refused.stderr
    from_env = _vqpu(site, "status", task_id, env=site.env(VQPU_KEY_FILE=str(exposed)))
    assert from_env.returncode == 2 and "mode 0644" in from_env.stderr

    private = _key_file(shared_dir, key, 0o600)
    assert _reads(intruder, str(private)) is None
    works = _vqpu(site, "--key-file", str(private), "status", task_id, env=site.env())
    assert works.returncode == 0, works.stderr
    assert f"task       {task_id}" in works.stdout and works.stderr == ""


def test_a_key_given_as_an_argument_is_read_by_another_account_and_the_cli_warns_about_it(
    site: Site, intruder: Intruder
) -> None:
    key = site.keys["user"]
    task_id = site.submit("user", ["argv"])
    watching = Watching(site, task_id, site.env(), "--key", key)
    try:
        seen = _reads(intruder, f"/proc/{watching.proc.pid}/cmdline")
    finally:
        err = watching.stop()
    assert seen is not None and key in seen  # what --key costs: every account on the machine has the key
    assert "vqpu: warning: --key puts your API key in this process's command line" in err


def test_a_key_from_the_environment_or_a_private_key_file_is_nowhere_another_account_can_read(
    site: Site, intruder: Intruder, shared_dir: Path
) -> None:
    key = site.keys["user"]
    task_id = site.submit("user", ["env"])
    key_file = _key_file(shared_dir, key, 0o600)
    ways = {
        "VQPU_KEY": (site.env(VQPU_KEY=key), ()),
        "VQPU_KEY_FILE": (site.env(VQPU_KEY_FILE=str(key_file)), ()),
        "--key-file": (site.env(), ("--key-file", str(key_file))),
    }
    for way, (env, args) in ways.items():
        watching = Watching(site, task_id, env, *args)
        pid = watching.proc.pid
        try:
            cmdline = _reads(intruder, f"/proc/{pid}/cmdline")
            environ = _reads(intruder, f"/proc/{pid}/environ")
            alive = watching.proc.poll() is None
        finally:
            err = watching.stop()
        assert alive and cmdline is not None and "watch" in cmdline, way  # the intruder did see the process
        assert key not in cmdline, f"{way}: the key is in the command line"
        assert environ is None, f"{way}: another account read the environment"
        assert "warning" not in err, (way, err)
    assert _reads(intruder, str(key_file)) is None
