"""Submissions the control-plane tests share: a Bell circuit on line-16, admitted on the current epoch."""

from __future__ import annotations

from harness.circuits import BELL
from vqpu_service.domain.model import NewTask
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
    )
