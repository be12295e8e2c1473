"""Schemathesis runs against a live server: the CLI in a subprocess, configured by a written
`schemathesis.toml`, and what it found read back from its JUnit report (one entry per operation).

The CLI rather than the pytest loader: `schemathesis.pytest.from_fixture` (4.32) renames pytest's
nodes through `Function._nodeid`, which pytest 9 no longer has; and in a subprocess, the fuzzer's
own warnings meet no `filterwarnings = error`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class FuzzRun:
    returncode: int
    findings: dict[str, str]  # "METHOD /path" -> what failed, with a curl command that reproduces it
    output: str
    seconds: float


def run_schemathesis(schema_url: str, config: Mapping[str, Any], workdir: Path, timeout_s: float) -> FuzzRun:
    """`schemathesis run schema_url` with `config` (the keys of `schemathesis.toml`), in `workdir`,
    where it leaves its report, its output and its caches. A run past `timeout_s` is killed and is a
    finding."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "schemathesis.toml"
    config_file.write_text(to_toml(config))
    junit = workdir / "junit.xml"
    junit.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config_file), "--no-color", "run"]
    cmd += [schema_url, "--report", "junit", "--report-junit-path", str(junit)]
    started = time.monotonic()
    try:
        done = subprocess.run(
            cmd, cwd=workdir, capture_output=True, text=True, errors="replace", timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        output = _text(exc.stdout) + _text(exc.stderr)
        findings = {"(the run)": f"killed after {timeout_s} s; its output ends:\n{output[-4000:]}"}
        return FuzzRun(-1, findings, output, time.monotonic() - started)
    output = done.stdout + done.stderr
    (workdir / "schemathesis.out").write_text(output)
    if junit.exists():
        findings = read_junit(junit)
    else:
        findings = {"(the run)": f"no report was written; its output ends:\n{output[-4000:]}"}
    return FuzzRun(done.returncode, findings, output, time.monotonic() - started)


def read_junit(path: Path) -> dict[str, str]:
    """The failed or errored operations of a schemathesis JUnit report, each with its messages."""
    findings = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        problems = [p.text or p.get("message") or p.tag for p in case if p.tag in ("failure", "error")]
        if problems:
            findings[case.get("name", "?")] = "\n".join(problems)
    return findings


def to_toml(config: Mapping[str, Any]) -> str:
    """Enough TOML for a schemathesis config: every table inline, every string JSON-escaped."""
    return "".join(f"{json.dumps(key)} = {_toml(value)}\n" for key, value in config.items())


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"no TOML for {type(value).__name__}")


def _text(stream: str | bytes | None) -> str:
    return stream.decode(errors="replace") if isinstance(stream, bytes) else stream or ""
