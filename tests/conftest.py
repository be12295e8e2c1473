"""Fixtures shared by every test tier: bundled devices and run directories."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from device_registry import Snapshot, catalog
from vqpu_protocol.rundir import TaskDocument, write_inputs


@pytest.fixture(scope="session")
def fez() -> Snapshot:
    return catalog.load("ibm-fez")


@pytest.fixture(scope="session")
def fez_ideal() -> Snapshot:
    return catalog.load("ibm-fez-ideal")


MakeRunDir = Callable[..., Path]


@pytest.fixture
def make_run_dir(tmp_path: Path) -> MakeRunDir:
    counter = iter(range(1_000_000))

    def make(circuit: str, snapshot: Snapshot, **fields: Any) -> Path:
        run_dir = tmp_path / f"run-{next(counter)}"
        task = TaskDocument.model_validate(
            {
                "schema": "vqpu.task/1",
                "task_id": fields.pop("task_id", "task-1"),
                "circuit": circuit,
                "dialect": fields.pop("dialect", "qasm2"),
                "shots": fields.pop("shots", 1024),
                "seed": fields.pop("seed", 1234),
                "snapshot_sha256": snapshot.sha256(),
                **fields,
            }
        )
        write_inputs(run_dir, task, snapshot.canonical_json())
        return run_dir

    return make
