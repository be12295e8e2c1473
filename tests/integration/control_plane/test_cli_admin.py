"""`vqpu-server admin requeue | force-fail`, straight against the database (SQLite and PostgreSQL alike)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.integration.control_plane.claiming import ClaimingStore
from tests.integration.control_plane.tasks import new_task
from vqpu_service import cli
from vqpu_service.domain.lifecycle import TaskState


def test_an_operator_requeues_then_force_fails_a_task_from_the_cli(
    store: ClaimingStore, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ["--db", database_url, "--keys-file", str(tmp_path / "keys.json")]
    task, _ = store.submit(new_task(store), datetime.now(UTC))
    [claimed] = store.claim("agent", 1, None, datetime.now(UTC))
    assert cli.main(["admin", "requeue", task.id, "--reason", "node died", *where]) == 0
    assert capsys.readouterr().out.strip() == f"{task.id}: QUEUED (attempt 1)"
    requeued = store.get_task(task.id)
    assert requeued.state is TaskState.QUEUED and requeued.claim_token is None and claimed.claim_token
    assert cli.main(["admin", "force-fail", task.id, *where]) == 0
    failed = store.get_task(task.id)
    assert failed.state is TaskState.FAILED and failed.error is not None
    assert failed.error["detail"] == {"by": "cli-admin"} and failed.error["message"] == "operator action"
    assert cli.main(["admin", "requeue", "t-missing", *where]) == 2
