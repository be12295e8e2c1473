"""Device registry: the snapshot model, topologies, calibration importers, catalogue, admissibility."""

from device_registry.errors import ImportFailed, RegistryError, SnapshotError, UnknownDevice
from device_registry.snapshot import (
    SCHEMA,
    Edge,
    EdgeStatus,
    Qubit,
    QubitStatus,
    Snapshot,
    Source,
    parse_snapshot,
)

__all__ = [
    "SCHEMA",
    "Edge",
    "EdgeStatus",
    "ImportFailed",
    "Qubit",
    "QubitStatus",
    "RegistryError",
    "Snapshot",
    "SnapshotError",
    "Source",
    "UnknownDevice",
    "parse_snapshot",
]
