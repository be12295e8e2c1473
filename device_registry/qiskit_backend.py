"""A Qiskit `BackendV2` that describes one snapshot's device: its Target, name and defaults, no execution.

Optional, like `qiskit_target`: it imports Qiskit, so the `device_registry` package never imports it.
The client package's Qiskit backend subclasses `SnapshotBackend` and implements `run` against the service.
"""

from __future__ import annotations

import warnings
from typing import Any, NoReturn

from qiskit.providers import BackendV2, Options
from qiskit.transpiler import Target

from device_registry.qiskit_target import target_from_snapshot
from device_registry.snapshot import Snapshot


class DeviceDefectsWarning(UserWarning):
    """The device has OFFLINE qubits or UNAVAILABLE couplers, which its backend's Target leaves out."""

    def __init__(
        self, device: str, offline_qubits: tuple[int, ...], unavailable_edges: tuple[tuple[int, int], ...]
    ) -> None:
        self.device = device
        self.offline_qubits = offline_qubits
        self.unavailable_edges = unavailable_edges
        parts = []
        if offline_qubits:
            parts.append(f"{len(offline_qubits)} OFFLINE qubit(s) {list(offline_qubits)}")
        if unavailable_edges:
            parts.append(f"{len(unavailable_edges)} UNAVAILABLE coupler(s) {list(unavailable_edges)}")
        super().__init__(
            f"{device}: the Target leaves out {' and '.join(parts)}; the transpiler will not place work there"
        )


def defects_warning(snapshot: Snapshot) -> DeviceDefectsWarning | None:
    """The warning a backend for `snapshot` owes its user, or None when every qubit and coupler is usable."""
    offline = tuple(q.index for q in snapshot.qubits if not q.online)
    unavailable = tuple((e.source, e.target) for e in snapshot.edges if not e.available)
    if offline or unavailable:
        return DeviceDefectsWarning(snapshot.device_id, offline, unavailable)
    return None


class SnapshotBackend(BackendV2):  # type: ignore[misc]
    """The device of `snapshot` as a Qiskit backend; `options` override the default run options.

    Constructing one warns `DeviceDefectsWarning` at the caller's line when the device has defects, unless
    `warn_defects=False`: a subclass that is handed out by a provider warns where its user asked for it.
    """

    def __init__(self, snapshot: Snapshot, *, warn_defects: bool = True, **options: Any) -> None:
        super().__init__(
            name=snapshot.device_id,
            description=f"{snapshot.device_id} at calibration epoch {snapshot.epoch}",
            backend_version=str(snapshot.epoch),
            **options,
        )
        self._snapshot = snapshot
        self._target = target_from_snapshot(snapshot)
        defects = defects_warning(snapshot) if warn_defects else None
        if defects is not None:
            warnings.warn(defects, stacklevel=2)

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def target(self) -> Target:
        return self._target

    @property
    def max_circuits(self) -> None:
        return None

    @classmethod
    def _default_options(cls) -> Options:
        return Options(shots=1024, seed_simulator=None)

    def run(self, run_input: Any, **options: Any) -> NoReturn:
        raise NotImplementedError(
            f"{self.name}: SnapshotBackend describes the device only and cannot run circuits; submit through "
            "the HPC-vQPU client's Qiskit backend, or simulate locally with "
            "AerSimulator(noise_model=NoiseModel.from_backend(backend))"
        )
