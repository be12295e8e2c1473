"""`VQPUProvider`: the devices of one HPC-vQPU service as Qiskit backends.

provider = VQPUProvider("http://vqpu.example:8000", key)   # or key_file="~/.config/vqpu/key" (mode 0600)
backend = provider.get_backend("ibm-fez")            # the current epoch
replay = provider.get_backend("ibm-fez", epoch=3)    # that epoch's Target; its tasks pin epoch 3
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from vqpu_client.client import Client
from vqpu_client.qiskit.backend import VQPUBackend


class VQPUProvider:
    """One client of the service at `url` with API key `key`; `client_options` go to `Client`
    (`key_file=PATH` instead of `key`, `timeout_s`, `retries`, ...)."""

    def __init__(self, url: str, key: str | None = None, **client_options: Any) -> None:
        self._client = Client(url, key, **client_options)

    @property
    def client(self) -> Client:
        return self._client

    def backends(self, name: str | None = None) -> list[VQPUBackend]:
        """One backend per device at its current epoch (only `name`'s, if given)."""
        return [
            VQPUBackend(self, self._client.snapshot(device.device_id))
            for device in self._client.devices()
            if name is None or device.device_id == name
        ]

    def get_backend(self, name: str, epoch: int | None = None) -> VQPUBackend:
        """The device `name` at its current epoch, or pinned to `epoch` (the client's NotFoundError if no such)."""
        return VQPUBackend(self, self._client.snapshot(name, epoch), pinned=epoch is not None)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> VQPUProvider:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
