"""`calibration-refresh`: a device's next calibration epoch, drifted from its latest one and PUT.

    calibration_refresh(device="ibm-fez", seed=7)   # -> Refresh(epoch=1, ...)

It reads the device's current epoch from the control plane, applies `device_registry.drift` (T1/T2
and error drift, qubits and couplers going out and coming back; the model's docstring cites its
numbers), and PUTs the result, which the control plane stores as the device's next epoch. By
default the drift reverts towards the device's first epoch, so a daily schedule wanders around the
imported calibration instead of walking away from it (`mean_reversion=False` for a pure random walk).

Writing a device epoch needs an admin key: `VQPU_ADMIN_KEY` in the environment of the process that
runs the flow, with `VQPU_URL` (or `url=`). Neither is a parameter, because Prefect stores and shows
a run's parameters. The flow is not retried: every accepted PUT is a new epoch, so a retry after a
lost answer would make two (the client itself resends a PUT only when it certainly never left).
"""

from __future__ import annotations

import secrets
import statistics
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from pydantic import BaseModel

from device_registry import Snapshot
from device_registry.drift import DriftError, DriftModel, drift
from flows.tasks import connect
from vqpu_client import Client

ADMIN_KEY_ENV = "VQPU_ADMIN_KEY"


class Refresh(BaseModel):
    """What one refresh did: the new epoch, how it was drawn, and what a user of the device will notice."""

    device_id: str
    epoch: int
    sha256: str
    parent_epoch: int
    seed: int
    baseline_epoch: int | None
    qubits_went_offline: list[int]
    qubits_came_back: list[int]
    edges_went_out: list[tuple[int, int]]
    edges_came_back: list[tuple[int, int]]
    median_t1_ratio: float | None
    """Median over qubits of new T1 / old T1 (1.0: no net change)."""


def admin_client(url: str | None = None) -> Client:
    """A client for `url` (else VQPU_URL) with the admin key in VQPU_ADMIN_KEY."""
    return connect(url, key_env=ADMIN_KEY_ENV, key_kind="admin")


def drift_model(overrides: dict[str, float] | None) -> DriftModel:
    """The default model with some parameters replaced; an unknown name is a DriftError, not ignored."""
    known = set(DriftModel.__dataclass_fields__)
    unknown = sorted(set(overrides or {}) - known)
    if unknown:
        raise DriftError(f"unknown drift model parameter(s) {unknown}; known: {sorted(known)}")
    return DriftModel(**(overrides or {}))


def refresh(
    client: Client,
    device: str,
    *,
    seed: int,
    baseline_epoch: int | None,
    model: DriftModel,
    now: datetime | None = None,
) -> Refresh:
    """Read the current epoch, drift it, PUT it; what was done. `baseline_epoch` None: no mean reversion."""
    current = client.snapshot(device)
    baseline = client.snapshot(device, baseline_epoch) if baseline_epoch is not None else None
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    nxt = drift(current, seed, model=model, baseline=baseline, captured_at=stamp)
    written = client.put_device(device, nxt)
    return _summary(current, nxt, written.epoch, written.sha256, seed, baseline_epoch)


@flow(name="calibration-refresh", retries=0, log_prints=False)
def calibration_refresh(
    device: str = "ibm-fez",
    seed: int | None = None,
    mean_reversion: bool = True,
    baseline_epoch: int | None = None,
    model: dict[str, float] | None = None,
    url: str | None = None,
) -> Refresh:
    """Drift `device`'s current epoch into its next one.

    `seed`: None draws one (recorded in the result and in the new epoch's `source`). `baseline_epoch`:
    what the drift reverts towards (default: the device's first epoch); ignored without
    `mean_reversion`. `model`: DriftModel parameters to change, e.g. `{"t1_sigma": 0.2}`.
    """
    logger = get_run_logger()
    drift_params = drift_model(model)
    seed = secrets.randbelow(2**31) if seed is None else seed
    with admin_client(url) as client:
        baseline: int | None = None
        if mean_reversion:
            baseline = baseline_epoch if baseline_epoch is not None else client.epochs(device)[0].epoch
        done = refresh(client, device, seed=seed, baseline_epoch=baseline, model=drift_params)
    logger.info(
        "%s: epoch %d -> %d (seed %d, baseline %s); qubits offline %s, back %s; couplers out %s, back %s; "
        "median T1 ratio %s",
        done.device_id,
        done.parent_epoch,
        done.epoch,
        done.seed,
        done.baseline_epoch,
        done.qubits_went_offline,
        done.qubits_came_back,
        done.edges_went_out,
        done.edges_came_back,
        done.median_t1_ratio,
    )
    return done


def _summary(
    before: Snapshot, after: Snapshot, epoch: int, sha256: str, seed: int, baseline_epoch: int | None
) -> Refresh:
    pairs_q = list(zip(before.qubits, after.qubits, strict=True))
    pairs_e = list(zip(before.edges, after.edges, strict=True))
    ratios = [a.t1 / b.t1 for b, a in pairs_q if a.t1 is not None and b.t1]
    changes: dict[str, Any] = {
        "qubits_went_offline": [a.index for b, a in pairs_q if b.online and not a.online],
        "qubits_came_back": [a.index for b, a in pairs_q if not b.online and a.online],
        "edges_went_out": [(a.source, a.target) for b, a in pairs_e if b.available and not a.available],
        "edges_came_back": [(a.source, a.target) for b, a in pairs_e if not b.available and a.available],
    }
    return Refresh(
        device_id=after.device_id,
        epoch=epoch,
        sha256=sha256,
        parent_epoch=before.epoch,
        seed=seed,
        baseline_epoch=baseline_epoch,
        median_t1_ratio=statistics.median(ratios) if ratios else None,
        **changes,
    )
