"""A calibration drift model: the next epoch of a device from its latest one, for calibration-epoch studies.

Real devices are recalibrated about daily and their numbers move between calibrations. This model
turns one snapshot into a plausible next one, reproducibly for a seed, so that a sequence of epochs
can be studied (the `calibration-refresh` flow PUTs each one as the device's next epoch).

What moves, per refresh:

- **T1, T2** multiply by a log-normal factor, `exp(N(0, sigma))`: sigma 0.15 for T1, 0.20 for T2.
  Klimov et al., PRL 121, 090502 (2018), and Burnett et al., npj Quantum Inf. 5, 54 (2019), show T1
  of transmons fluctuating by tens of percent over hours to days (two-level-system defects drifting
  through the qubit frequency); Carroll et al., npj Quantum Inf. 8, 132 (2022), measure a relative
  spread of T1 of about 20 % on IBM devices over days. T2 also carries dephasing that moves with the
  same defects and with flux noise, so it moves more. T2 is then capped at 2*T1 (its physical bound;
  an imported value above it is capped on the first refresh).
- **Errors** (1-qubit gate, 2-qubit gate, readout) multiply by the same kind of factor around their
  current value: sigma 0.20 (1-qubit), 0.25 (2-qubit), 0.15 (readout); IBM's daily calibration data
  show two-qubit error rates moving by tens of percent from day to day, with readout steadier.
  Probabilities are clamped to the largest meaningful value (0.75 for a 1-qubit depolarizing error,
  0.9375 for a 2-qubit one, 0.5 for readout). When a qubit has both `prob_meas0_prep1` and
  `prob_meas1_prep0`, these drift and `readout_error` is their mean (IBM's definition).
- **Mean reversion.** A pure multiplicative random walk leaves any realistic range after a few
  hundred refreshes (sigma*sqrt(n) in log space); real values wander around a typical one. With a
  `baseline` (the device's first epoch, say), each log value moves a share `reversion` (0.3) of the
  way back towards the baseline's before the new factor is applied, so the spread settles at
  sigma / sqrt(1 - (1 - reversion)**2), about 1.4 sigma. Without a baseline it is a random walk.
- **Faults.** An ONLINE qubit goes OFFLINE with probability 0.002 per refresh and an OFFLINE one
  comes back with probability 0.5; an AVAILABLE coupler becomes UNAVAILABLE with probability 0.003
  and comes back with 0.5 (a few of 156 qubits / 176 couplers of Fez out at a time, usually for a
  day, as on IBM's status pages; the imported Fez already has 7 couplers out). A qubit or coupler
  that is out keeps drifting, so it returns with a current calibration. A coupler without a
  calibrated error keeps its status: IBM marks a broken one only by `gate_error >= 1`, imported as an
  UNAVAILABLE edge with a null error, and bringing it back would make it an ideal coupler.

What never moves: the graph, native gates, durations (set by the control electronics), nulls (an
unknown value stays unknown, never guessed), and ideal devices (no calibrated value at all: an ideal
twin is the reference, so it keeps its statuses too). Deterministic: the same snapshot, seed, model
and baseline give the same next snapshot. No Qiskit here (the registry core's import contract).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields
from typing import Any

from device_registry.errors import RegistryError
from device_registry.snapshot import Edge, EdgeStatus, Qubit, QubitStatus, Snapshot, Source, parse_snapshot

CAP_1Q = 0.75
CAP_2Q = 0.9375
CAP_READOUT = 0.5
SOURCE_KIND = "vqpu-drift"
MAX_SIGMA = 2.0
"""Larger per-refresh spreads are not drift; they would also push times past what a float holds."""


class DriftError(RegistryError, ValueError):
    """A drift model with impossible parameters, or a baseline that is not the same device."""


@dataclass(frozen=True)
class DriftModel:
    """Per-refresh spreads (sigma of the log of the factor) and fault probabilities; see the module."""

    t1_sigma: float = 0.15
    t2_sigma: float = 0.20
    error_1q_sigma: float = 0.20
    error_2q_sigma: float = 0.25
    readout_sigma: float = 0.15
    reversion: float = 0.3
    qubit_offline_p: float = 0.002
    qubit_return_p: float = 0.5
    edge_offline_p: float = 0.003
    edge_return_p: float = 0.5

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not math.isfinite(value) or value < 0:
                raise DriftError(f"drift model: {f.name} must be a finite number >= 0, not {value!r}")
            if f.name.endswith("_sigma") and value > MAX_SIGMA:
                raise DriftError(f"drift model: {f.name} is at most {MAX_SIGMA} (a factor e**{MAX_SIGMA} per refresh)")
            if not f.name.endswith("_sigma") and value > 1:
                raise DriftError(f"drift model: {f.name} is a share or a probability, <= 1, not {value!r}")


def drift(
    snapshot: Snapshot,
    seed: int | random.Random,
    *,
    model: DriftModel | None = None,
    baseline: Snapshot | None = None,
    captured_at: str | None = None,
) -> Snapshot:
    """The epoch after `snapshot`: its epoch + 1, drifted calibration and faults, `source` saying so.

    `seed` is an int (reproducible) or a `random.Random` (its stream is consumed). `baseline`, when
    given, must have the same qubits and edges; its values are what the drift reverts towards.
    """
    model = model or DriftModel()
    rng = seed if isinstance(seed, random.Random) else random.Random(seed)
    _check_baseline(snapshot, baseline)
    data = snapshot.to_json_dict()
    if not _is_ideal(snapshot):
        step = _Step(rng, model)
        base_qubits = baseline.qubits if baseline is not None else [None] * len(snapshot.qubits)
        base_edges = baseline.edges if baseline is not None else [None] * len(snapshot.edges)
        data["qubits"] = [step.qubit(q, b) for q, b in zip(snapshot.qubits, base_qubits, strict=True)]
        data["edges"] = [step.edge(e, b) for e, b in zip(snapshot.edges, base_edges, strict=True)]
    what = f"seed {seed}" if isinstance(seed, int) else "a caller's random stream"
    source = Source(
        kind=SOURCE_KIND,
        name=f"epoch {snapshot.epoch} of {snapshot.device_id} drifted with {what}",
        last_update_date=captured_at,
    )
    data["epoch"] = snapshot.epoch + 1
    data["source"] = source.model_dump(mode="json")
    if captured_at is not None:
        data["captured_at"] = captured_at
    return parse_snapshot(data)  # every drifted value validated again: a bad one is a SnapshotError


class _Step:
    """One refresh's draws. Every value draws its normal whether or not it is null, so the draws for
    one qubit or edge do not depend on which of another's values happen to be known."""

    def __init__(self, rng: random.Random, model: DriftModel) -> None:
        self.rng = rng
        self.model = model

    def _move(self, value: float | None, base: float | None, sigma: float) -> float | None:
        z = self.rng.gauss(0.0, 1.0)
        if value is None or value == 0:
            return value
        log = math.log(value)
        if base is not None and base > 0:
            log += self.model.reversion * (math.log(base) - log)
        return math.exp(log + sigma * z)

    def _flip(self, out: bool, off_p: float, return_p: float) -> bool:
        """Whether it is out after this refresh (one uniform draw either way)."""
        u = self.rng.random()
        return u >= return_p if out else u < off_p

    def qubit(self, q: Qubit, b: Qubit | None) -> dict[str, Any]:
        m = self.model
        t1 = self._move(q.t1, _of(b, "t1"), m.t1_sigma)
        t2 = self._move(q.t2, _of(b, "t2"), m.t2_sigma)
        if t1 is not None and t2 is not None:
            t2 = min(t2, 2 * t1)
        error_1q = _clamp(self._move(q.error_1q, _of(b, "error_1q"), m.error_1q_sigma), CAP_1Q)
        readout = _clamp(self._move(q.readout_error, _of(b, "readout_error"), m.readout_sigma), CAP_READOUT)
        p01 = _clamp(self._move(q.prob_meas0_prep1, _of(b, "prob_meas0_prep1"), m.readout_sigma), CAP_READOUT)
        p10 = _clamp(self._move(q.prob_meas1_prep0, _of(b, "prob_meas1_prep0"), m.readout_sigma), CAP_READOUT)
        if p01 is not None and p10 is not None and q.readout_error is not None:
            readout = (p01 + p10) / 2
        out = self._flip(not q.online, m.qubit_offline_p, m.qubit_return_p)
        return {
            **q.model_dump(mode="json"),
            "status": (QubitStatus.OFFLINE if out else QubitStatus.ONLINE).value,
            "t1": t1,
            "t2": t2,
            "error_1q": error_1q,
            "readout_error": readout,
            "prob_meas0_prep1": p01,
            "prob_meas1_prep0": p10,
        }

    def edge(self, e: Edge, b: Edge | None) -> dict[str, Any]:
        m = self.model
        error = _clamp(self._move(e.error, _of(b, "error"), m.error_2q_sigma), CAP_2Q)
        out = self._flip(not e.available, m.edge_offline_p, m.edge_return_p)
        if e.error is None:  # no calibrated error to run it with: its status is not the model's to change
            out = not e.available
        status = EdgeStatus.UNAVAILABLE if out else EdgeStatus.AVAILABLE
        return {**e.model_dump(mode="json"), "status": status.value, "error": error}


def _of(item: Qubit | Edge | None, name: str) -> float | None:
    value: float | None = getattr(item, name) if item is not None else None
    return value


def _clamp(value: float | None, cap: float) -> float | None:
    return None if value is None else min(value, cap)


def _is_ideal(s: Snapshot) -> bool:
    calibrated_qubit = any(
        v is not None
        for q in s.qubits
        for v in (q.t1, q.t2, q.error_1q, q.readout_error, q.prob_meas0_prep1, q.prob_meas1_prep0)
    )
    return not calibrated_qubit and all(e.error is None for e in s.edges)


def _check_baseline(snapshot: Snapshot, baseline: Snapshot | None) -> None:
    if baseline is None:
        return
    same = (
        baseline.device_id == snapshot.device_id
        and baseline.num_qubits == snapshot.num_qubits
        and [(e.source, e.target) for e in baseline.edges] == [(e.source, e.target) for e in snapshot.edges]
    )
    if not same:
        raise DriftError(
            f"the baseline ({baseline.device_id}, {baseline.num_qubits} qubits, {len(baseline.edges)} edges) "
            f"is not the same device as {snapshot.device_id} ({snapshot.num_qubits} qubits, "
            f"{len(snapshot.edges)} edges)"
        )
