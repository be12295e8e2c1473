"""Text output escapes what a terminal would act on: another user's tag, a server's message or an event's
data cannot clear an admin's screen, retitle the window or reorder a line; `--json` stays exact (and
writes those characters as JSON escapes)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from vqpu_client import errors
from vqpu_client.cli.exits import failure
from vqpu_client.cli.progress import ERASE_LINE, Progress
from vqpu_client.cli.render import Output, json_text, table, visible
from vqpu_client.cli.tasks import status_lines
from vqpu_protocol.api.tasks import EventView, TaskView

HOSTILE = "\x1b[2J\x1b]0;pwned\x07"
SHOWN = "\\x1b[2J\\x1b]0;pwned\\x07"


def _acted_on(text: str) -> list[str]:
    """The characters in `text` a terminal could act on."""
    return [ch for ch in text if not ch.isprintable() and ch != "\n"]


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (HOSTILE, SHOWN),
        ("a\x7fb\x9bc", "a\\x7fb\\x9bc"),  # DEL, and C1's CSI
        ("invoice\u202egpj.exe", "invoice\\u202egpj.exe"),  # a right-to-left override
        ("\u2066x\u2069\u200b", "\\u2066x\\u2069\\u200b"),  # an isolate and a zero-width space
        ("line\nbreak\rcr\ttab", "line\\x0abreak\\x0dcr\\x09tab"),
        ("\U000e0041", "\\U000e0041"),  # a tag character
        ("plain ascii, ünïcödé, 量子, \\x1b as typed", "plain ascii, ünïcödé, 量子, \\x1b as typed"),
    ],
)
def test_characters_a_terminal_acts_on_are_shown_escaped_and_the_rest_as_they_are(raw: str, shown: str) -> None:
    assert visible(raw) == shown
    assert visible(visible(raw)) == shown  # escaping twice changes nothing


def _task(**fields: Any) -> TaskView:
    base = {"id": "t-1", "owner": "u", "device": "d", "dialect": "qasm3", "shots": 1, "seed": None, "tags": [],
            "options": {}, "state": "FAILED", "attempt": 1, "epoch": None, "admitted_epoch": 0, "bound_epoch": 0,
            "bound_sha256": None, "agent_id": None, "cancel_requested": False, "stale": False, "scheduler": None,
            "error": None, "created_at": "x", "updated_at": "x", "claimed_at": None, "finished_at": None}  # fmt: skip
    return TaskView.model_validate({**base, **fields})


def test_status_shows_a_hostile_tag_agent_and_error_escaped_in_text_and_exactly_in_json() -> None:
    task = _task(
        tags=[HOSTILE, "ok"],
        agent_id="agent\u202e",
        error={"code": "SIMULATION_ERROR", "message": f"boom{HOSTILE}", "detail": None},
    )
    text, doc = io.StringIO(), io.StringIO()
    Output(as_json=False, stdout=text).lines(status_lines(task))
    Output(as_json=True, stdout=doc).document(task)
    shown = text.getvalue()
    assert _acted_on(shown) == []
    assert f"tags       {SHOWN}, ok" in shown and "agent      agent\\u202e" in shown
    assert f"error      SIMULATION_ERROR: boom{SHOWN}" in shown
    assert json.loads(doc.getvalue())["tags"] == [HOSTILE, "ok"]  # exact, as data
    assert _acted_on(doc.getvalue()) == []  # and as JSON's own escapes, safe on a terminal too


def test_json_output_is_exact_readable_and_passes_nothing_a_terminal_acts_on() -> None:
    value = {"tags": [HOSTILE, "fine\u202eok", "量子 ünï", "\x7f\x9b", "\U000e0041"], "lone": "x\ud800"}
    for text in (json_text(value), json_text(value, indent=2)):
        assert json.loads(text) == value and _acted_on(text) == []
        assert "量子 ünï" in text and "\\u202e" in text


def test_table_columns_stay_aligned_around_an_escaped_cell() -> None:
    rows = table(("name", "n"), [(HOSTILE, 1), ("x", 22)], right=(1,))
    assert [len(r) for r in rows] == [len(rows[1])] * 3 and _acted_on("".join(rows)) == []


def test_an_error_message_from_the_server_is_one_escaped_line_in_text_and_exact_in_json() -> None:
    found = failure(errors.NotFoundError("NOT_FOUND", f"no task\n{HOSTILE}", status=404))
    assert found is not None
    text, body = io.StringIO(), io.StringIO()
    Output(as_json=False, stderr=text).error(found.body, found.message)
    Output(as_json=True, stderr=body).error(found.body, found.message)
    assert text.getvalue() == f"vqpu: error: NOT_FOUND: no task\\x0a{SHOWN}\n"
    assert json.loads(body.getvalue())["error"]["message"] == f"no task\n{HOSTILE}"


def test_the_progress_display_escapes_the_events_it_shows() -> None:
    event = EventView(
        id=3, time="2026-11-02T10:20:30+00:00", type="TASK_CANCELLED", subject="task:t-1",
        data={"state": "CANCELLED", "by": "owner", "reason": HOSTILE},
    )  # fmt: skip
    plain, tty = io.StringIO(), io.StringIO()
    with Progress(f"t-1{HOSTILE}", plain, tty=False) as progress:
        progress.on_event(event)
    with Progress("t-1", tty, tty=True) as progress:
        progress.on_event(event)
    assert _acted_on(plain.getvalue()) == [] and f"cancelled by owner: {SHOWN}" in plain.getvalue()
    drawn = tty.getvalue().replace(ERASE_LINE, "")  # the display's own control sequence, and only it
    assert _acted_on(drawn) == [] and SHOWN in drawn
