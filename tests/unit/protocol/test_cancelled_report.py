"""The cancelled report says where its cancel came from (issue 17): optional, so an agent that does
not say is understood as before; bounded and closed, so nothing else can be written into the record."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vqpu_protocol.api.agent import MAX_ACTOR_CHARS, CancelledReport


def test_an_old_agents_report_without_a_source_is_still_valid() -> None:
    report = CancelledReport.model_validate({"claim_token": "tok"})
    assert (report.requested_by, report.actor) == (None, None)


def test_a_cancel_set_in_prefect_names_its_actor() -> None:
    report = CancelledReport.model_validate({"claim_token": "tok", "requested_by": "prefect", "actor": "ops-anna"})
    assert (report.requested_by, report.actor) == ("prefect", "ops-anna")
    assert CancelledReport.model_validate({"claim_token": "tok", "requested_by": "control-plane"}).actor is None


@pytest.mark.parametrize(
    "extra",
    [
        {"requested_by": "owner"},
        {"requested_by": "operator"},
        {"actor": "a" * (MAX_ACTOR_CHARS + 1)},
        {"actor": ""},
        {"actor": "\ud800"},
        {"actor": 7},
    ],
)
def test_a_source_outside_the_protocol_is_refused(extra: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        CancelledReport.model_validate({"claim_token": "tok", **extra})


def test_an_actor_of_the_longest_length_is_kept_whole() -> None:
    actor = "a" * MAX_ACTOR_CHARS
    assert CancelledReport.model_validate({"claim_token": "tok", "actor": actor}).actor == actor
