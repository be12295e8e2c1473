"""Qiskit Targets by snapshot identity, one cache per runner process (beside the noise cache)."""

from __future__ import annotations

from collections import OrderedDict

from qiskit.transpiler import Target

from device_registry import RegistryError, Snapshot
from device_registry.qiskit_target import target_from_snapshot
from runner.errors import InvalidPayload
from vqpu_protocol.codes import ErrorCode

_CACHE_SIZE = 16


class TargetCache:
    """Building a 156-qubit Target costs milliseconds; a warm runner process builds each one once.
    The cached Targets are this process's own: nothing outside the runner sees or mutates them."""

    def __init__(self, size: int = _CACHE_SIZE) -> None:
        self._size = size
        self._targets: OrderedDict[str, Target] = OrderedDict()

    def __len__(self) -> int:
        return len(self._targets)

    def __contains__(self, digest: object) -> bool:
        return digest in self._targets

    def get(self, snapshot: Snapshot, *, digest: str | None = None) -> Target:
        """`digest`: the snapshot's sha256 where the caller has it already."""
        key = digest or snapshot.sha256()
        if key in self._targets:
            self._targets.move_to_end(key)
            return self._targets[key]
        try:
            target = target_from_snapshot(snapshot)
        except RegistryError as exc:  # a snapshot the registry cannot turn into a device: permanent
            raise InvalidPayload(ErrorCode.INVALID_SNAPSHOT, f"unusable snapshot: {exc}") from None
        self._targets[key] = target
        if len(self._targets) > self._size:
            self._targets.popitem(last=False)
        return target
