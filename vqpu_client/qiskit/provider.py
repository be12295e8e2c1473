"""`VQPUProvider`: the devices of one HPC-vQPU service as Qiskit backends.

provider = VQPUProvider("http://vqpu.example:8000", key)   # or key_file="~/.config/vqpu/key" (mode 0600),
                                                           # or neither: VQPU_KEY / VQPU_KEY_FILE
backend = provider.get_backend("ibm-fez")            # the current epoch
replay = provider.get_backend("ibm-fez", epoch=3)    # that epoch's Target; its tasks pin epoch 3

A provider is one connection. Copies of it (and of its backends) share that connection; a pickle holds
the recipe that re-opens it (`Connection`), opened on first use where it is loaded. The recipe holds
the key itself only when the key was given as a string: from a key file it holds the path (re-read
and re-checked where loaded), from the environment nothing (read from the loading process's).
"""

from __future__ import annotations

import os
import threading
import warnings
import weakref
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from device_registry.qiskit_backend import defects_warning
from device_registry.snapshot import Snapshot
from vqpu_client.client import Client
from vqpu_client.errors import UsageError
from vqpu_client.keys import KEY_ENV, KEY_FILE_ENV, resolve
from vqpu_client.qiskit.backend import VQPUBackend


@dataclass(frozen=True)
class Connection:
    """How to open a `Client` to the service again: its URL, where the key comes from, the other options."""

    url: str
    key: str | None = field(default=None, repr=False)
    """Only when the user passed the key string itself; then a pickle holds it, as secret as the key."""
    key_file: str | None = None
    """The path, read and checked (private to the reader) wherever the connection is opened."""
    options: dict[str, Any] = field(default_factory=dict)
    """`Client`'s other keyword arguments (timeout_s, retries, ...)."""

    @classmethod
    def of(cls, url: str, key: str | None, client_options: dict[str, Any]) -> Connection:
        options = dict(client_options)
        key_file = options.pop("key_file", None)
        path = None
        if key_file is not None:
            path = os.fspath(key_file)
            if not path.startswith("~"):  # `~` stays the home of whoever opens it
                path = os.path.abspath(path)
        return cls(url=url, key=key, key_file=path, options=options)

    def open(self) -> Client:
        if self.key is None and self.key_file is None:
            key = resolve(os.environ)
            if key is None:
                raise UsageError(f"no API key: pass key= or key_file=, or set {KEY_ENV} or {KEY_FILE_ENV}")
            return Client(self.url, key, **self.options)
        return Client(self.url, self.key, key_file=self.key_file, **self.options)


class VQPUProvider:
    """One client of the service at `url`; the key is `key`, or `key_file=PATH`, or else the environment's
    (`VQPU_KEY_FILE` or `VQPU_KEY`). Other `client_options` go to `Client` (`timeout_s`, `retries`, ...)."""

    def __init__(self, url: str, key: str | None = None, **client_options: Any) -> None:
        self._connection = Connection.of(url, key, client_options)
        self._lock = threading.Lock()
        self._client: Client | None = None
        self._open()  # a bad key or key file fails here, not at the first call

    @property
    def client(self) -> Client:
        with self._lock:  # a re-opened provider opens on first use, perhaps from several threads at once
            return self._open()

    def _open(self) -> Client:
        if self._client is None:
            self._client = client = self._connection.open()
            # A loaded pickle's provider has no `with` block to close it: it closes when it is collected.
            weakref.finalize(self, client.close)
        return self._client

    @property
    def connection(self) -> Connection:
        return self._connection

    def backends(self, name: str | None = None) -> list[VQPUBackend]:
        """One backend per device at its current epoch (only `name`'s, if given)."""
        found = []
        for device in self.client.devices():
            if name is None or device.device_id == name:
                snapshot = self.client.snapshot(device.device_id)
                self._warn_defects(snapshot, stacklevel=3)
                found.append(VQPUBackend(self, snapshot))
        return found

    def get_backend(self, name: str, epoch: int | None = None, noise_model: str | None = None) -> VQPUBackend:
        """The device `name` at its current epoch, or pinned to `epoch` (the client's NotFoundError if no such).

        `noise_model` ("paper" or "relaxation") sets the backend's `vqpu_noise_model` option: how the service
        derives noise from the device's calibration for every run of this backend.
        """
        snapshot = self.client.snapshot(name, epoch)
        backend = VQPUBackend(self, snapshot, pinned=epoch is not None)
        if noise_model is not None:
            backend.set_options(vqpu_noise_model=noise_model)
        self._warn_defects(snapshot, stacklevel=3)
        return backend

    def _warn_defects(self, snapshot: Snapshot, *, stacklevel: int) -> None:
        """`DeviceDefectsWarning` at the user's line (`stacklevel` as `warnings.warn` counts it from here: 3 is
        the caller of the method calling this), once per process for each
        (service, device, epoch): a defect is news the first time, and every copy or re-fetch says it again."""
        warning = defects_warning(snapshot)
        if warning is not None and _WARNED.first(self._connection.url, snapshot.device_id, int(snapshot.epoch)):
            warnings.warn(warning, stacklevel=stacklevel)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()

    def __enter__(self) -> VQPUProvider:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def __copy__(self) -> VQPUProvider:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> VQPUProvider:
        """The same provider: a copy of a connection is the connection (the copies of its backends share it)."""
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reopened, (self._connection,))


def _reopened(connection: Connection) -> VQPUProvider:
    """A provider loaded from a pickle: it opens its connection on first use, in the process that uses it."""
    provider = VQPUProvider.__new__(VQPUProvider)
    provider._connection = connection
    provider._lock = threading.Lock()
    provider._client = None
    return provider


class _Warned:
    """Which (service URL, device, epoch) defects this process has warned about. Process-wide on purpose,
    as Python's own `__warningregistry__` is: what the user has been told does not depend on which provider
    object told them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: set[tuple[str, str, int]] = set()

    def first(self, url: str, device: str, epoch: int) -> bool:
        with self._lock:
            key = (url.rstrip("/"), device, epoch)
            if key in self._seen:
                return False
            self._seen.add(key)
            return True


_WARNED = _Warned()
