"""Run directories on a shared login node, attacked by a second, unprivileged account (harness.intruder):
it cannot give the agent a run root it controls, cannot read anything under the agent's run root after a
real task ran there, and no task id or planted link makes a real agent write outside its run root.

Each test fails on the code before issue 17: the agent took any existing run_root (and the shipped Slurm
sites used /tmp/vqpu-runs, which anyone can make first), run directories were 0755 with 0644 files, and a
task id became a path unchecked."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.circuits import BELL
from harness.intruder import INTRUDER_UID, Intruder, intruder_unavailable
from harness.prefect_server import PrefectServerProcess
from harness.servers import ServerProcess, make_keys
from tests.e2e.sites import Site
from tests.requirements import require_slurm
from vqpu_service.domain.model import Role

pytestmark = pytest.mark.skipif(intruder_unavailable() is not None, reason=str(intruder_unavailable()))

ME = os.geteuid()


@pytest.fixture
def in_tmp() -> Iterator[Callable[[str], Path]]:
    """Names in the machine's real /tmp (every account may create there), removed afterwards."""
    made: list[Path] = []

    def name(prefix: str) -> Path:
        path = Path("/tmp") / f"{prefix}-{uuid.uuid4().hex[:10]}"
        made.append(path)
        return path

    yield name
    for path in made:
        if path.is_symlink() or path.is_file():
            path.unlink()
        else:
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def refusing_site(tmp_path_factory: pytest.TempPathFactory, prefect_server: PrefectServerProcess) -> Iterator[Site]:
    """One control plane for the refusals: the agents under test never get as far as claiming."""
    workdir = tmp_path_factory.mktemp("refusing-site")
    keys = make_keys(workdir / "keys.json", user=Role.USER, agent=Role.AGENT, admin=Role.ADMIN)
    with ServerProcess(workdir, f"sqlite:///{workdir / 'control-plane.db'}", workdir / "keys.json") as cp:
        site = Site(workdir, cp, keys, prefect_server.api_url)
        try:
            yield site
        finally:
            site.close()


def _as_intruder(intruder: Intruder, code: str) -> None:
    done = intruder.python(code)
    assert done.returncode == 0, done.stderr


def _made_first(intruder: Intruder, tmp: Callable[[str], Path]) -> tuple[Path, str]:
    root = tmp("vqpu-runs")  # what the shipped Slurm sites named: /tmp/vqpu-runs
    _as_intruder(intruder, f"import os; os.mkdir({str(root)!r}, 0o777); os.chmod({str(root)!r}, 0o777)")
    return root, f"run_root {root} is owned by uid {INTRUDER_UID}, not by this agent's account (uid {ME})"


def _symlink_at_the_root(intruder: Intruder, tmp: Callable[[str], Path]) -> tuple[Path, str]:
    root, bait = tmp("vqpu-runs"), tmp("vqpu-bait")
    _as_intruder(intruder, f"import os; os.mkdir({str(bait)!r}, 0o777); os.symlink({str(bait)!r}, {str(root)!r})")
    return root, f"run_root {root} is a symlink (to {bait}), owned by uid {INTRUDER_UID}: name the directory itself"


def _parent_made_first(intruder: Intruder, tmp: Callable[[str], Path]) -> tuple[Path, str]:
    parent = tmp("vqpu")
    _as_intruder(intruder, f"import os; os.mkdir({str(parent)!r}, 0o755)")
    return parent / "runs", (
        f"run_root {parent / 'runs'}: {parent} is owned by uid {INTRUDER_UID}, not by root or this agent's "
        f"account (uid {ME})"
    )


def _parent_writable_by_all(intruder: Intruder, tmp: Callable[[str], Path]) -> tuple[Path, str]:
    parent = tmp("vqpu-shared")
    parent.mkdir()
    parent.chmod(0o777)  # an operator's mistake: no sticky bit, so others may rename what the agent makes
    _as_intruder(intruder, f"open({str(parent / 'planted')!r}, 'w').close()")  # they can write there indeed
    return parent / "runs", (
        f"run_root {parent / 'runs'}: {parent} is writable by its group and all accounts (mode 0777) without "
        "the sticky bit"
    )


def _parent_writable_by_a_group(intruder: Intruder, tmp: Callable[[str], Path]) -> tuple[Path, str]:
    parent = tmp("vqpu-project")
    parent.mkdir()
    os.chown(parent, ME, INTRUDER_UID)  # the intruder's group
    parent.chmod(0o2775)
    _as_intruder(intruder, f"open({str(parent / 'planted')!r}, 'w').close()")
    return parent / "runs", (
        f"run_root {parent / 'runs'}: {parent} is writable by its group (mode 2775) without the sticky bit"
    )


ATTACKS = {
    "made-first": _made_first,
    "symlink-at-the-run-root": _symlink_at_the_root,
    "parent-made-first": _parent_made_first,
    "parent-writable-by-all": _parent_writable_by_all,
    "parent-writable-by-a-group": _parent_writable_by_a_group,
}


@pytest.mark.slow
@pytest.mark.parametrize("attack", ATTACKS, ids=list(ATTACKS))
def test_an_agent_refuses_to_start_on_a_run_root_another_account_controls_naming_the_path_and_why(
    refusing_site: Site, prefect_env: str, intruder: Intruder, in_tmp: Callable[[str], Path], attack: str
) -> None:
    run_root, reason = ATTACKS[attack](intruder, in_tmp)
    before = sorted(os.listdir(run_root)) if run_root.is_dir() else None
    with pytest.raises(RuntimeError, match="exited 2"):  # a configuration error: one line, no traceback
        refusing_site.agent("local", agent_id=f"refused-{attack}", run_root=str(run_root))
    log = refusing_site.agents[-1].log_file.read_text(errors="replace")
    assert f"error: {reason}" in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert "serving" not in log
    after = sorted(os.listdir(run_root)) if run_root.is_dir() else None
    assert after == before, "the agent wrote into a run root it refused"


def test_a_run_root_under_a_sticky_world_writable_directory_is_fine_when_the_agent_made_it(
    refusing_site: Site, prefect_env: str, in_tmp: Callable[[str], Path]
) -> None:
    run_root = in_tmp("vqpu-runs")  # directly in /tmp (root's, 1777), made by the agent itself
    agent = refusing_site.agent("local", agent_id="sticky-ok", slots=1, run_root=str(run_root))
    assert agent.stop() == 0
    st = os.lstat(run_root)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (ME, 0o700)


def _attempts(intruder: Intruder, paths: dict[str, Path]) -> dict[str, str]:
    """What the other account gets from each attempt: READ, or the error's name (EACCES: PermissionError)."""
    code = f"""
import json, os
paths = {json.dumps({k: str(v) for k, v in paths.items()})}
got = {{}}
for label, path in paths.items():
    try:
        if label.startswith("list"):
            os.listdir(path)
        else:
            with open(path, "rb") as fh:
                fh.read()
        got[label] = "READ"
    except OSError as exc:
        got[label] = type(exc).__name__
print(json.dumps(got))
"""
    done = intruder.python(code)
    assert done.returncode == 0, done.stderr
    got: dict[str, str] = json.loads(done.stdout)
    return got


@pytest.fixture
def exposed_parent() -> Iterator[Path]:
    """A root-owned 0755 directory in /tmp: every account can reach the run root in it, so what stops
    a read is the run root's own privacy, not an unreachable parent."""
    parent = Path(tempfile.mkdtemp(prefix="vqpu-exposed-", dir="/tmp"))
    parent.chmod(0o755)
    try:
        yield parent
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("base", ["local", "sbatch-local"])
def test_after_a_real_task_ran_another_account_can_read_nothing_under_the_run_root(
    site: Site, prefect_env: str, intruder: Intruder, exposed_parent: Path, base: str
) -> None:
    if base == "sbatch-local":
        require_slurm()
    run_root = exposed_parent / "runs"
    site.agent(base, slots=1, run_root=str(run_root))
    task_id = site.submit(BELL, shots=100)
    assert site.wait(task_id)["state"] == "COMPLETED"
    run_dir = run_root / f"{task_id}.1"
    deadline = time.monotonic() + 10  # the claim note records its ending just after the report
    while '"ended":"reported"' not in (run_dir / "claim.json").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)

    wrong = {}
    for path in [run_root, *run_root.rglob("*")]:
        st = os.lstat(path)
        want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
        if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)) or stat.S_IMODE(st.st_mode) != want:
            wrong[str(path.relative_to(run_root))] = f"{stat.S_IMODE(st.st_mode):04o}"
        assert st.st_uid == ME, path
    assert wrong == {}, "not private: every directory 0700, every file 0600"
    assert {"task.json", "snapshot.json", "claim.json", "result.json", "runner.log"} <= set(os.listdir(run_dir))

    got = _attempts(
        intruder,
        {
            "list the run root": run_root,
            "list the run directory": run_dir,
            "read task.json": run_dir / "task.json",
            "read claim.json": run_dir / "claim.json",
            "read result.json": run_dir / "result.json",
            "read snapshot.json": run_dir / "snapshot.json",
            "read runner.log": run_dir / "runner.log",
        },
    )
    assert got == dict.fromkeys(got, "PermissionError")


@pytest.mark.slow
def test_no_task_id_nor_planted_link_makes_a_real_agent_write_outside_its_run_root(
    site: Site, prefect_env: str, intruder: Intruder, in_tmp: Callable[[str], Path], tmp_path: Path
) -> None:
    hostile = ["../../escaped", "a/b", "..", "line\nbreak"]
    queued = [site.submit(BELL, shots=10) for _ in hostile]
    # The control plane's ids are safe; the agent must not depend on it: give these tasks hostile ids in
    # its database before any agent claims them.
    with sqlite3.connect(tmp_path / "control-plane.db", timeout=30) as db:
        for task_id, bad in zip(queued, hostile, strict=True):
            db.execute("UPDATE task SET id = ? WHERE id = ?", (bad, task_id))
    # And one task whose run directory's name is taken by a link into another account's directory.
    linked = site.submit(BELL, shots=10)
    bait = in_tmp("vqpu-bait")
    _as_intruder(intruder, f"import os; os.mkdir({str(bait)!r}, 0o777); os.chmod({str(bait)!r}, 0o777)")
    run_root = tmp_path / "deep" / "down" / "runs"
    run_root.mkdir(parents=True, mode=0o700)
    (run_root / f"{linked}.1").symlink_to(bait)

    agent = site.agent("local", slots=2, run_root=str(run_root))
    failed = site.wait(linked)
    assert failed["state"] == "FAILED" and "could not write the run directory" in failed["error"]["message"]
    deadline = time.monotonic() + 60
    while agent.log_tail(400).count("claim refused, nothing written or reported") < len(hostile):
        assert time.monotonic() < deadline, agent.log_tail()
        time.sleep(0.1)
    good = site.submit(BELL, shots=10)
    assert site.wait(good)["state"] == "COMPLETED", "the agent stopped serving"

    assert os.listdir(bait) == [], "the agent wrote through a link planted at a run directory's name"
    assert sorted(os.listdir(tmp_path / "deep")) == ["down"]
    assert sorted(os.listdir(tmp_path / "deep" / "down")) == ["runs"]
    assert {n for n in os.listdir(run_root) if not n.startswith(".")} == {f"{good}.1", f"{linked}.1"}
    log = agent.log_tail(400)
    for bad in hostile:
        assert f"task id {bad!r} cannot name a run directory" in log
