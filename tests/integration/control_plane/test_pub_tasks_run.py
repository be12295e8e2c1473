"""A PUB task as the control plane hands it out, run by the real runner (in process), and its result
reported back: the service's result checks and the runner agree on every PUB's shape, shots, precision
and counts keys (issue 19). Over SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runner.cli import main
from tests.integration.control_plane.api_client import Api
from tests.integration.control_plane.test_pub_tasks import ESTIMATOR, SAMPLER, claim, report, submit
from vqpu_protocol.api.agent import ClaimedTask
from vqpu_protocol.rundir import write_inputs


def run(claimed: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """What the runner writes for this claim: result.json's document."""
    handed = ClaimedTask.model_validate(claimed)
    run_dir = tmp_path / "run"
    write_inputs(run_dir, handed.task_document(), handed.snapshot.encode())
    code = main([str(run_dir)])
    outcome: dict[str, Any] = json.loads((run_dir / ("result.json" if code == 0 else "error.json")).read_text())
    assert code == 0, outcome
    return outcome


@pytest.mark.parametrize(("pubs", "shots"), [(SAMPLER, 100), (ESTIMATOR, None)], ids=["sampler", "estimator"])
def test_the_runners_result_of_a_claimed_pub_task_completes_it(
    api: Api, tmp_path: Path, pubs: dict[str, Any], shots: int | None
) -> None:
    task_id = submit(api, pubs, **({} if shots is None else {"shots": shots}), seed=7).json()["id"]
    claimed = claim(api)
    result = run(claimed, tmp_path)
    r = report(api, claimed, result)
    assert r.status_code == 200 and r.json()["state"] == "COMPLETED", r.text
    stored = api.call("GET", f"/v1/tasks/{task_id}/result").json()
    assert stored["pubs"]["kind"] == pubs["kind"] and len(stored["pubs"]["pubs"]) == len(pubs["pubs"])
