"""The embedded default: the local stack keeps Prefect on SQLite, which holds only while the local
agent's concurrency is bounded (2 slots). This is the evidence that it holds."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from harness.circuits import BELL
from harness.stack import LocalStack
from tests.e2e.sites import Site


@pytest.mark.slow
def test_the_local_stack_on_sqlite_runs_30_tasks_exactly_once_without_locking_up_and_stops_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    stack = LocalStack(Path("stack")).start()  # relative, as the main job's default --out is
    try:
        assert stack.prefect is not None and stack.prefect.database_url.startswith("sqlite")
        site = Site(stack.workdir, stack.control_plane, stack.keys, stack.prefect.api_url)  # type: ignore[arg-type]
        ids = [site.submit(BELL, shots=256, seed=i) for i in range(30)]
        finished = [site.wait(task_id, timeout_s=300) for task_id in ids]
        assert Counter(t["state"] for t in finished) == {"COMPLETED": 30}
        assert all(sum(e["type"] == "TASK_COMPLETED" for e in site.events(t)) == 1 for t in ids)
        site.close()
    finally:
        statuses = stack.stop()
    assert statuses == {"agent": 0, "prefect": 0, "control_plane": 0}
    prefect_log = stack.prefect.log_file.read_text(errors="replace")
    assert "database is locked" not in prefect_log
