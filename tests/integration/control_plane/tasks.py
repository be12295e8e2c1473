"""Submissions the control-plane tests share: a Bell circuit on line-16, admitted on the current epoch."""

from __future__ import annotations

from typing import Any

from harness.circuits import BELL
from harness.documents import result_document
from vqpu_protocol.rundir import RunOptions
from vqpu_service.api.views import claimed_view
from vqpu_service.domain.decisions import Report
from vqpu_service.domain.lifecycle import Action
from vqpu_service.domain.model import Claimed, NewTask
from vqpu_service.ports import Store

LINE = "line-16"


def new_task(
    store: Store,
    owner: str = "alice",
    *,
    device: str = LINE,
    circuit: str = BELL,
    pinned: int | None = None,
    key: str | None = None,
    body: str | None = None,
    classical: tuple[int, ...] | None = (2,),
    options: dict[str, Any] | None = None,
) -> NewTask:
    current = store.current_epoch(device)
    return NewTask(
        owner=owner,
        device_id=device,
        circuit=circuit,
        dialect="qasm3",
        shots=100,
        seed=1,
        pinned_epoch=pinned,
        admitted_epoch=current.epoch,
        admitted_sha256=current.sha256,
        idempotency_key=key,
        body_sha256=body,
        classical_layout=None if classical is None else list(classical),  # BELL: bit[2] c
        options={**RunOptions().model_dump(mode="json"), **(options or {})},
    )


def its_result(claimed: Claimed, counts: dict[str, int] | None = None, **changes: Any) -> dict[str, Any]:
    """The result a runner would report for this claim (`counts` default: every shot "00"), with
    `changes` applied: `{"shots": 7}`, or `{"provenance": {"epoch": 9}}` merged into the provenance."""
    doc = result_document(claimed_view(claimed).model_dump(mode="json"), counts)
    for name, value in changes.items():
        doc[name] = {**doc[name], **value} if isinstance(value, dict) and name == "provenance" else value
    return doc


def completed(claimed: Claimed, counts: dict[str, int] | None = None, **changes: Any) -> Report:
    return Report(Action.REPORT_COMPLETED, claimed.claim_token, result=its_result(claimed, counts, **changes))
