"""Prefect artifacts of the user-side flows: a table, and a PNG plot that shows offline.

    table_artifact("vqe-h2-convergence", rows, "energy per iteration")
    png_artifact("vqe-h2-plot", figure, "convergence", save_to=Path("runs/vqe/convergence.png"))

Prefect's image artifact takes an image URL, which the browser loads itself: a site's Prefect UI
usually cannot reach the user's files, and a login node serves none. So a PNG becomes a *markdown*
artifact with the image embedded as a `data:image/png;base64,...` URI: Prefect's UI renders it
(read in 3.8.8's bundles: the v2 UI's markdown renderer lets `data:image/` through to `<img src>` on
purpose, the v1 UI renders markdown images as plain `<img>` elements). With `save_to` the same bytes
are also written to a file, whose path the artifact names.

Both must be called inside a flow or task run (the artifact belongs to that run); outside one
they raise `ArtifactError` rather than leave an orphan artifact. The `a`-prefixed twins are for
async flows.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast
from uuid import UUID

if TYPE_CHECKING:
    from _typeshed import DataclassInstance
    from matplotlib.figure import Figure

    class Convergence(DataclassInstance, Protocol):
        """A flow's result dataclass with `artifacts` and `plot` fields and a text summary."""

        def summary(self) -> str: ...


R = TypeVar("R", bound="Convergence")

KEY = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
"""What Prefect accepts as an artifact key (lowercase letters, digits, dashes), without empty parts."""
MAX_KEY_CHARS = 100
MAX_EMBEDDED_PNG_BYTES = 2_000_000
"""A larger image makes the flow run's page slow to load: save it with `save_to` and shrink the plot."""

Cell = str | int | float | bool | None
Row = Mapping[str, Any]


class ArtifactError(ValueError):
    """An artifact that cannot be made as asked: a bad key, an empty or ragged table, an image that is
    not a PNG or is too large, or no flow or task run to attach it to."""


def table_artifact(key: str, rows: Sequence[Row], description: str) -> UUID:
    """A table artifact with one row per mapping (every row has the same columns); its id."""
    from prefect.artifacts import create_table_artifact

    table = _table(key, rows)
    made = create_table_artifact(table=table, key=key, description=description, _sync=True)  # type: ignore[call-arg]
    return cast(UUID, made)


async def atable_artifact(key: str, rows: Sequence[Row], description: str) -> UUID:
    from prefect.artifacts import acreate_table_artifact

    return await acreate_table_artifact(table=_table(key, rows), key=key, description=description)


def png_artifact(
    key: str, image: Figure | bytes, description: str, *, save_to: Path | None = None, title: str | None = None
) -> UUID:
    """A markdown artifact showing the PNG (a matplotlib Figure is rendered at its own dpi); its id.

    `save_to` also writes the PNG there (parents created); the artifact then says where it is.
    """
    from prefect.artifacts import create_markdown_artifact

    markdown = _png_markdown(key, image, description, save_to, title)
    made = create_markdown_artifact(markdown=markdown, key=key, description=description, _sync=True)  # type: ignore[call-arg]
    return cast(UUID, made)


async def apng_artifact(
    key: str, image: Figure | bytes, description: str, *, save_to: Path | None = None, title: str | None = None
) -> UUID:
    from prefect.artifacts import acreate_markdown_artifact

    markdown = _png_markdown(key, image, description, save_to, title)
    return await acreate_markdown_artifact(markdown=markdown, key=key, description=description)


def png_bytes(image: Figure | bytes) -> bytes:
    """The PNG of a Figure (rendered with Agg, no pyplot state touched), or the bytes given, checked."""
    if isinstance(image, bytes | bytearray):
        data = bytes(image)
    else:
        buffer = io.BytesIO()
        image.savefig(buffer, format="png")
        data = buffer.getvalue()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ArtifactError("the image is not a PNG (it lacks the PNG signature)")
    return data


def publish_convergence(
    result: R, name: str, title: str, rows: Sequence[Row], figure: Figure, results_dir: Path | None
) -> R:
    """An optimisation's convergence as artifacts of this run: the table `NAME-convergence` (headed by
    the result's summary) and the plot `NAME-plot`; with `results_dir`, also NAME-convergence.png and
    NAME.json there. The result with its `artifacts` ids and `plot` path filled in."""
    table = table_artifact(
        f"{name}-convergence", rows, f"### {title}, COBYLA\n\n" + result.summary().replace("\n", "  \n")
    )
    plot_path = results_dir / f"{name}-convergence.png" if results_dir else None
    plot = png_artifact(f"{name}-plot", figure, f"{title} convergence", save_to=plot_path, title=title)
    done = replace(
        result,
        artifacts={"table": str(table), "plot": str(plot)},
        plot=str(plot_path) if plot_path else None,
    )
    if results_dir is not None:
        (results_dir / f"{name}.json").write_text(json.dumps(asdict(done), indent=2) + "\n")
    return done


# --- building ----------------------------------------------------------------------------------


def _table(key: str, rows: Sequence[Row]) -> list[dict[str, Cell]]:
    _check_key(key)
    if not rows:
        raise ArtifactError(f"table artifact {key!r} has no rows")
    columns = list(rows[0])
    for i, row in enumerate(rows):
        if list(row) != columns:
            raise ArtifactError(f"table artifact {key!r}: row {i} has columns {list(row)}, not {columns}")
    _check_run()
    return [{name: _cell(value) for name, value in row.items()} for row in rows]


def _cell(value: Any) -> Cell:
    """A JSON cell: numpy scalars become Python numbers, NaN and infinities None, anything else text."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if hasattr(value, "item") and callable(value.item):  # a numpy scalar
        value = value.item()
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


def _png_markdown(key: str, image: Figure | bytes, description: str, save_to: Path | None, title: str | None) -> str:
    _check_key(key)
    _check_run()
    data = png_bytes(image)
    if len(data) > MAX_EMBEDDED_PNG_BYTES:
        raise ArtifactError(
            f"the PNG is {len(data)} bytes; at most {MAX_EMBEDDED_PNG_BYTES} are embedded (lower the figure's dpi)"
        )
    lines = [f"## {title}", ""] if title else []
    lines.append(f"![{_alt(description)}](data:image/png;base64,{base64.b64encode(data).decode('ascii')})")
    if save_to is not None:
        save_to.parent.mkdir(parents=True, exist_ok=True)
        save_to.write_bytes(data)
        lines += ["", f"Saved as `{save_to.resolve()}`."]
    return "\n".join(lines) + "\n"


def _alt(text: str) -> str:
    """Alt text that cannot end the markdown image early."""
    return re.sub(r"[\[\]\n\r]", " ", text)


def _check_key(key: str) -> None:
    if len(key) > MAX_KEY_CHARS or not KEY.match(key):
        raise ArtifactError(
            f"artifact key {key!r}: lowercase letters, digits and single dashes only, "
            f"at most {MAX_KEY_CHARS} characters"
        )


def _check_run() -> None:
    from prefect.context import get_run_context
    from prefect.exceptions import MissingContextError

    try:
        get_run_context()
    except MissingContextError:
        raise ArtifactError("an artifact belongs to a flow or task run: call this inside one") from None
