"""The runner reads nothing outside its run directory (D8), whatever the circuit names.

Each run is a fresh `python -m runner` under an audit hook that records every file the process
opens; the user-named files (an absolute path, a path relative to the working directory, a valid
OpenQASM file beside the run directory) must never be among them, and their contents must never
come back in the error.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from device_registry import Snapshot
from harness.runner_process import ROOT
from tests.conftest import MakeRunDir

AUDITED_RUNNER = """
import os, runpy, sys
opened = []
def record(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        opened.append(os.path.abspath(os.fsdecode(args[0])))
sys.addaudithook(record)
sys.argv = ["runner", sys.argv[1]]
try:
    runpy.run_module("runner", run_name="__main__")
finally:
    with open(os.environ["OPENED_LOG"], "w") as log:
        log.write("\\n".join(opened))
"""
SECRET = "only-the-host-knows-this"


def _run_audited(run_dir: Path, cwd: Path, log: Path) -> tuple[int, list[Path]]:
    script = log.with_suffix(".py")
    script.write_text(AUDITED_RUNNER)
    proc = subprocess.run(
        [sys.executable, str(script), str(run_dir)],
        cwd=cwd,
        env={"OPENED_LOG": str(log), "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # An editable install's path hook is a sys.path entry the import system tries as a zip file: no file.
    opened = [Path(p) for p in log.read_text().splitlines() if p and Path(p) != log and "__path_hook__" not in p]
    return proc.returncode, opened


def _programs(outside: Path) -> dict[str, tuple[str, str]]:
    """(dialect, source) per attack: includes of the host's files and of a valid program outside."""
    body2 = "qreg q[2];\ncreg c[2];\nsx q[0];\nmeasure q -> c;\n"
    body3 = "bit[1] c;\nsx $0;\nc[0] = measure $0;\n"
    return {
        "qasm2 /etc/passwd": ("qasm2", f'OPENQASM 2.0;\ninclude "/etc/passwd";\n{body2}'),
        "qasm2 absolute path to valid QASM": ("qasm2", f'OPENQASM 2.0;\ninclude "{outside}";\n{body2}'),
        "qasm2 relative path": ("qasm2", f'OPENQASM 2.0;\ninclude "{outside.name}";\n{body2}'),
        "qasm3 /etc/passwd": ("qasm3", f'OPENQASM 3.0;\ninclude "/etc/passwd";\n{body3}'),
        "qasm3 absolute path": ("qasm3", f'OPENQASM 3.0;\ninclude "{outside}";\n{body3}'),
        "qasm3 qelib1.inc": ("qasm3", f'OPENQASM 3.0;\ninclude "qelib1.inc";\n{body3}'),
    }


ATTACKS = list(_programs(Path("/x/evil.inc")))


@pytest.mark.parametrize("attack", ATTACKS)
def test_an_include_of_any_file_but_the_standard_library_is_refused_without_opening_it(
    attack: str, make_run_dir: MakeRunDir, fez: Snapshot, tmp_path: Path
) -> None:
    host = tmp_path / "host"
    host.mkdir()
    outside = host / "evil.inc"
    outside.write_text(f"// {SECRET}\nsx q[1];\n")
    dialect, source = _programs(outside)[attack]
    run_dir = make_run_dir(source, fez, dialect=dialect)
    status, opened = _run_audited(run_dir, cwd=host, log=tmp_path / "opened.log")

    assert status == 2
    error = json.loads((run_dir / "error.json").read_text())
    assert error["code"] == "NOT_ADMISSIBLE"
    assert [v["code"] for v in error["detail"]["violations"]] == ["INCLUDE_NOT_ALLOWED"]
    assert SECRET not in json.dumps(error) and "root:" not in json.dumps(error)
    assert Path("/etc/passwd") not in opened
    assert [p for p in opened if p.is_relative_to(tmp_path) and not p.is_relative_to(run_dir)] == []


@pytest.mark.parametrize("dialect", ["qasm2", "qasm3"])
def test_a_run_opens_no_file_outside_its_run_directory_but_the_installed_code(
    dialect: str, make_run_dir: MakeRunDir, fez: Snapshot, tmp_path: Path
) -> None:
    source = (
        'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\nh q[0];\ncz q[0],q[1];\nmeasure q -> c;\n'
        if dialect == "qasm2"
        else 'OPENQASM 3.0;\ninclude "stdgates.inc";\nbit[2] c;\nh $0;\ncz $0, $1;\n'
        "c[0] = measure $0;\nc[1] = measure $1;\n"
    )
    run_dir = make_run_dir(source, fez, dialect=dialect)
    status, opened = _run_audited(run_dir, cwd=tmp_path, log=tmp_path / "opened.log")
    assert status == 0, (run_dir / "runner.log").read_text()
    code = [
        Path(sys.prefix),
        Path(sys.base_prefix),
        ROOT,
        Path("/usr/lib"),
        Path("/usr/local/lib"),
        Path("/etc/ld.so.cache"),
    ]
    system = [Path("/proc"), Path("/sys"), Path("/dev")]
    strays = [
        p for p in opened if not p.is_relative_to(run_dir) and not any(p.is_relative_to(c) for c in code + system)
    ]
    assert strays == [], f"the runner opened files outside its run directory: {strays}"
    assert json.loads((run_dir / "result.json").read_text())["shots"] == 1024
    # The `h` was translated, so a pass manager was built: of the plugins installed beside Qiskit (this
    # environment has qiskit-experiments' and qiskit-ibm-runtime's), none was imported (runner.plugins).
    foreign = {"qiskit_experiments", "qiskit_ibm_runtime", "matplotlib", "lmfit"}
    assert [p for p in opened if foreign & set(p.parts)] == []
    assert not (run_dir / "scratch" / "cache" / "matplotlib").exists()
