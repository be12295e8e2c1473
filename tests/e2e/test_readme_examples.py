"""The README's curl session, run as the script it claims to be against a real `vqpu-server`.

The block after the `<!-- readme-example: curl -->` marker is run with `bash -euo pipefail` and
the three keys and the server's URL in the environment, as a user who copied it would run it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.servers import ServerProcess, make_keys
from vqpu_service.domain.model import Role

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = "<!-- readme-example: curl -->"
SESSION_EVENTS = ["TASK_SUBMITTED", "TASK_CLAIMED", "TASK_REQUEUED", "TASK_REPORT_REJECTED", "TASK_CANCELLED"]


def readme_block(marker: str) -> str:
    """The fenced bash block right after `marker`; the marker must appear exactly once."""
    text = README.read_text(encoding="utf-8")
    assert text.count(marker) == 1, f"README.md must hold {marker!r} exactly once"
    found = re.match(r"\s*```bash\n(.*?)\n```", text.split(marker, 1)[1], re.DOTALL)
    assert found is not None, f"no ```bash block follows {marker!r} in README.md"
    return found.group(1)


def replies(output: str) -> list[tuple[dict[str, Any], int | None]]:
    """Each JSON object the session printed on a line of its own, with the status printed after it
    (`-w ' HTTP %{http_code}'`) where there is one."""
    found = []
    for line in output.splitlines():
        m = re.fullmatch(r"(\{.*\})(?: HTTP (\d{3}))?", line.strip())
        if m:
            found.append((json.loads(m.group(1)), int(m.group(2)) if m.group(2) else None))
    return found


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    keys = make_keys(tmp_path / "keys.json", alice=Role.USER, site=Role.AGENT, ops=Role.ADMIN)
    with ServerProcess(tmp_path, f"sqlite:///{tmp_path / 'vqpu.db'}", tmp_path / "keys.json") as running:
        yield running, keys


def run_session(server: ServerProcess, keys: dict[str, str]) -> str:
    if shutil.which("curl") is None:
        pytest.skip("the README's examples use curl, which is not installed")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # python3 for `get`
        "VQPU": server.url,
        "USER_KEY": keys["alice"],
        "AGENT_KEY": keys["site"],
        "ADMIN_KEY": keys["ops"],
    }
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", readme_block(MARKER)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"the README session exited {done.returncode}:\n{done.stdout}\n{server.log_tail()}"
    return done.stdout


def test_the_readme_curl_session_runs_top_to_bottom_and_tells_the_story_it_promises(
    server: tuple[ServerProcess, dict[str, str]],
) -> None:
    output = run_session(*server)
    answers = replies(output)
    bodies = [body for body, _ in answers]

    assert bodies[0]["status"] == "ok"
    viability = next(b for b in bodies if "admissible" in b)
    assert viability["admissible"] is False
    assert [v["code"] for v in viability["violations"]] == ["NO_COUPLING"]

    submitted = next(b for b in bodies if "state" in b)
    task = submitted["id"]
    assert (submitted["state"], submitted["attempt"], submitted["device"]) == ("QUEUED", 0, "ibm-fez")
    assert f"claimed {task}, attempt 1" in output
    assert {"cancel": [], "fenced": [], "ended": {}} in bodies

    views = [(b["state"], b["attempt"]) for b in bodies if b.get("id") == task]
    # submitted, read back, requeued after the claim (attempt 1 kept, token fenced), cancelled
    assert views == [("QUEUED", 0), ("QUEUED", 0), ("QUEUED", 1), ("CANCELLED", 1)]

    refused = [(b["error"]["code"], status) for b, status in answers if set(b) == {"error"}]
    assert refused == [("RESULT_NOT_READY", 409), ("FENCED", 409), ("ILLEGAL_TRANSITION", 409)]

    assert re.findall(r"^event: (\w+)$", output, re.MULTILINE) == SESSION_EVENTS

    patched = bodies[-1]
    assert (patched["device_id"], patched["epoch"]) == ("ibm-fez", 1)
