"""Whether the runner's noise model for a set of qubits holds any channel, without building it.

The same rules as `runner.noise` (docs/devices.md), read off the calibration: which fields make a
channel under `paper` and under `relaxation`, and which a scale of 0 or `disable` removes. The test
`tests/unit/runner/test_pricing_agrees_with_noise.py` holds the two together on real and synthetic
snapshots.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from device_registry import Qubit, Snapshot
from vqpu_protocol.rundir import NoiseModelName, RunOptions

UNTIMED_1Q = frozenset({"rz", "id"})
"""Gates the paper model leaves noiseless: virtual frame changes and explicit idles."""
READOUT_SCALED_CAP = 0.5
"""A scaled readout flip probability stops at a coin toss (the readout then says nothing); past it
would be a readout that lies, not more noise. A calibrated value above it is kept as it is."""
AER_IDEAL_DECAY = 1e-8
"""Aer drops a relaxation channel whose T2 exceeds its T1 and whose decay over the gate is below about
this as ideal (measured, Aer 0.18: 4.8e-9 dropped, 1.2e-8 kept); T2 <= T1 is never dropped."""


def idle_noisy(snapshot: Snapshot, delayed: Iterable[int], options: RunOptions) -> bool:
    """True when `relaxation` relaxes the delays on `delayed` (the active qubits a delay idles): the
    runner's `idle_relaxation` is then a pass, not None. `paper` has no idle noise."""
    if options.noise_model is not NoiseModelName.RELAXATION or not options.noise.factor("relaxation"):
        return False
    return any(snapshot.qubits[i].t1 is not None or snapshot.qubits[i].t2 is not None for i in delayed)


def is_noisy(snapshot: Snapshot, active: Iterable[int], options: RunOptions) -> bool:
    """True when the runner's noise model for these qubits, under these options, holds some channel."""
    gates, readout = noise_kinds(snapshot, active, options)
    return gates or readout


def noise_kinds(snapshot: Snapshot, active: Iterable[int], options: RunOptions) -> tuple[bool, bool]:
    """(some gate or reset channel, some readout channel) of the runner's noise model for these qubits."""
    qubits = frozenset(active)
    relax = options.noise_model is NoiseModelName.RELAXATION
    noise = options.noise
    f1, f2, fr, ft = (noise.factor(k) for k in ("gate_1q", "gate_2q", "readout", "relaxation"))
    two_qubit = snapshot.two_qubit_gates()
    one_qubit = [g for g in snapshot.native_gates if g not in two_qubit]
    readout = any(_readout(snapshot.qubits[i], relax, fr) for i in qubits)
    for i in sorted(qubits):
        q = snapshot.qubits[i]
        for gate in one_qubit:
            if relax and gate != "rz":
                duration = q.gate_durations.get(gate)
                if _relaxed([q], duration, f1, ft, q.error_1q, 1):
                    return True, readout
            elif not relax and gate not in UNTIMED_1Q and q.error_1q and f1 and q.error_1q > 0:
                return True, readout
        if relax and _relaxation_kept([q], q.gate_durations.get("reset"), ft):
            return True, readout
    for e in snapshot.edges:
        if not e.available or e.source not in qubits or e.target not in qubits:
            continue
        pair = [snapshot.qubits[e.source], snapshot.qubits[e.target]]
        if relax and _relaxed(pair, e.duration, f2, ft, e.error, 2):
            return True, readout
        if not relax and e.error and f2 and e.error > 0:
            return True, readout
    return False, readout


def _relaxed(
    qubits: list[Qubit], duration: float | None, factor: float, rate: float, error: float | None, n: int
) -> bool:
    """A gate's relaxation model: its applied relaxation, or a depolarizing part beyond what the calibrated
    relaxation explains."""
    if _relaxation_kept(qubits, duration, rate):
        return True
    if not error or not factor:
        return False
    dim = 2**n
    explained = 1.0 - _relaxation_fidelity(qubits, duration)
    return bool(min(error, dim / (dim + 1)) > explained)


def _relaxation_kept(qubits: list[Qubit], duration: float | None, rate: float) -> bool:
    """Thermal relaxation at `rate` over `duration` makes a channel Aer keeps."""
    if not rate or not duration or all(q.t1 is None and q.t2 is None for q in qubits):
        return False
    for q in qubits:
        if q.t1 is None and q.t2 is None:
            continue  # no relaxation of its own: an identity factor of the pair's channel
        t1, t2 = _times(q, rate)
        if t2 <= t1 or -math.expm1(-duration / t1) >= AER_IDEAL_DECAY:
            return True
    return False


def _relaxation_fidelity(qubits: list[Qubit], duration: float | None) -> float:
    """Average gate fidelity of the calibrated relaxation (1 without one): a channel that damps z by
    1-g towards 0 and x, y by c has process fidelity (2 + 2c - g)/4; the qubits' fidelities multiply."""
    if not duration or all(q.t1 is None and q.t2 is None for q in qubits):
        return 1.0
    process = 1.0
    for q in qubits:
        t1, t2 = _times(q, 1.0)
        gamma = -math.expm1(-duration / t1)
        coherence = math.exp(-duration / t2)
        process *= (2.0 + 2.0 * coherence - gamma) / 4.0
    dim = 2 ** len(qubits)
    return float((dim * process + 1.0) / (dim + 1.0))


def _times(q: Qubit, rate: float) -> tuple[float, float]:
    t1 = q.t1 / rate if q.t1 is not None else math.inf
    t2 = q.t2 / rate if q.t2 is not None else 2 * t1
    return t1, min(t2, 2 * t1)


def _readout(q: Qubit, relax: bool, factor: float) -> bool:
    if not factor:
        return False
    if relax and q.prob_meas1_prep0 is not None and q.prob_meas0_prep1 is not None:
        return q.prob_meas1_prep0 != 0 or q.prob_meas0_prep1 != 0
    if not q.readout_error:
        return False
    return q.readout_error != 0 if relax else min(max(q.readout_error, 0.0), READOUT_SCALED_CAP) > 0
