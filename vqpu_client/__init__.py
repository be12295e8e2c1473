"""What users import: the REST client (sync and async). The Qiskit provider is `vqpu_client.qiskit`."""

from vqpu_client import errors
from vqpu_client.aio import AsyncClient
from vqpu_client.client import Client

__all__ = ["AsyncClient", "Client", "errors"]
