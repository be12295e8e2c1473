"""The bundled device catalogue: real IBM calibrations shipped as data, their ideal twins, synthetic devices."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib import resources
from pathlib import Path

from device_registry import calibration, ibm, topologies
from device_registry.errors import UnknownDevice
from device_registry.snapshot import Snapshot


def _ibm(name: str) -> Callable[[], Snapshot]:
    def build() -> Snapshot:
        folder = Path(str(resources.files("device_registry") / "data" / "ibm"))
        return ibm.from_files(
            folder / f"props_{name}.json.gz", folder / f"conf_{name}.json.gz", device_id=f"ibm-{name}"
        )

    return build


def _ideal_twin(name: str) -> Callable[[], Snapshot]:
    return lambda: calibration.strip(load(name), device_id=f"{name}-ideal")


_FACTORIES: dict[str, Callable[[], Snapshot]] = {
    "ibm-fez": _ibm("fez"),
    "ibm-kingston": _ibm("kingston"),
    "ibm-torino": _ibm("torino"),
    "ibm-fez-ideal": _ideal_twin("ibm-fez"),
    "line-16": lambda: topologies.line(16),
    "ring-12": lambda: topologies.ring(12),
    "star-8": lambda: topologies.star(8),
    "all-to-all-8": lambda: topologies.all_to_all(8),
    "grid-5x5-uniform": lambda: calibration.attach_uniform(topologies.grid(5, 5, device_id="grid-5x5-uniform")),
    "heavy-hex-sampled": lambda: calibration.attach_sampled(
        topologies.heavy_hex(8, 16, device_id="heavy-hex-sampled"), seed=2025
    ),
}


def names() -> list[str]:
    return sorted(_FACTORIES)


@cache
def load(name: str) -> Snapshot:
    """The catalogue device `name` at epoch 0 (snapshots are immutable, so one copy serves all callers)."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise UnknownDevice(f"no bundled device {name!r}; known devices: {', '.join(names())}") from None
    return factory()
