"""Artifact building without a Prefect server: keys, cells, tables, PNGs, and the refusal outside a run."""

from __future__ import annotations

import math

import numpy as np
import pytest

# Imported at collection, outside the no-subprocess guard: matplotlib's first import on a machine
# builds its font cache by running fc-list.
from matplotlib.figure import Figure

from flows import artifacts
from flows.artifacts import ArtifactError


@pytest.mark.parametrize("key", ["Upper", "under_score", "-lead", "trail-", "two--dashes", "", "x" * 101])
def test_a_key_prefect_would_refuse_is_refused_here(key: str) -> None:
    with pytest.raises(ArtifactError, match="artifact key"):
        artifacts._check_key(key)


def test_cells_become_json_values() -> None:
    assert artifacts._cell(np.float64(0.5)) == 0.5
    assert artifacts._cell(np.int64(3)) == 3 and type(artifacts._cell(np.int64(3))) is int
    assert artifacts._cell(math.nan) is None and artifacts._cell(math.inf) is None
    assert artifacts._cell(True) is True and artifacts._cell((1, 2)) == "(1, 2)"


def test_a_figure_becomes_a_png_and_other_bytes_are_refused() -> None:
    fig = Figure(figsize=(2, 1), dpi=50)
    fig.add_subplot().plot([0, 1], [1, 0])
    assert artifacts.png_bytes(fig).startswith(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(ArtifactError, match="not a PNG"):
        artifacts.png_bytes(b"GIF89a")


def test_outside_a_flow_or_task_run_no_artifact_is_made() -> None:
    with pytest.raises(ArtifactError, match="flow or task run"):
        artifacts.table_artifact("a-table", [{"x": 1}], "rows")
    with pytest.raises(ArtifactError, match="flow or task run"):
        artifacts.png_artifact("a-plot", b"\x89PNG\r\n\x1a\n", "plot")


def test_a_ragged_or_empty_table_is_refused() -> None:
    with pytest.raises(ArtifactError, match="no rows"):
        artifacts.table_artifact("t", [], "nothing")
    with pytest.raises(ArtifactError, match="row 1"):
        artifacts.table_artifact("t", [{"a": 1, "b": 2}, {"a": 1}], "ragged")
