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


class SnapshotBackend(BackendV2):  # type: ignore[misc]
    """The device of `snapshot` as a Qiskit backend; `options` override the default run options."""

    def __init__(self, snapshot: Snapshot, **options: Any) -> None:
        super().__init__(
            name=snapshot.device_id,
            description=f"{snapshot.device_id} at calibration epoch {snapshot.epoch}",
            backend_version=str(snapshot.epoch),
            **options,
        )
        self._snapshot = snapshot
        self._target = target_from_snapshot(snapshot)
        offline = tuple(q.index for q in snapshot.qubits if not q.online)
        unavailable = tuple((e.source, e.target) for e in snapshot.edges if not e.available)
        if offline or unavailable:
            warnings.warn(DeviceDefectsWarning(snapshot.device_id, offline, unavailable), stacklevel=2)

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
