"""The Qiskit provider of HPC-vQPU: a service's devices as backends whose `run()` submits tasks there.

    from qiskit import QuantumCircuit, transpile
    from vqpu_client.qiskit import VQPUProvider

    backend = VQPUProvider(url, key).get_backend("ibm-fez")
    counts = backend.run(transpile(circuit, backend), shots=1000).result().get_counts()

See docs/qiskit.md.
"""

from vqpu_client.qiskit.backend import VQPUBackend
from vqpu_client.qiskit.configuration import BackendConfiguration
from vqpu_client.qiskit.errors import ResultShapeError, RunOptionsError, UnsupportedCircuitError
from vqpu_client.qiskit.job import TaskProvenance, VQPUJob
from vqpu_client.qiskit.primitives import (
    EstimatorOptions,
    SamplerOptions,
    VQPUEstimatorV2,
    VQPUPrimitiveJob,
    VQPUSamplerV2,
)
from vqpu_client.qiskit.provider import VQPUProvider

__all__ = [
    "BackendConfiguration",
    "EstimatorOptions",
    "ResultShapeError",
    "RunOptionsError",
    "SamplerOptions",
    "TaskProvenance",
    "UnsupportedCircuitError",
    "VQPUBackend",
    "VQPUEstimatorV2",
    "VQPUJob",
    "VQPUPrimitiveJob",
    "VQPUProvider",
    "VQPUSamplerV2",
]
