"""What the Qiskit bridge raises on top of the client's errors (`vqpu_client.errors`).

    VQPUError
     ├── UsageError                 (the client's: refused before anything is sent)
     │    ├── RunOptionsError        an unknown run option, or a value the service's RunOptions refuse
     │    └── UnsupportedCircuitError a circuit the service cannot run or return faithfully
     └── ResultShapeError           a result that does not fit its circuit (never patched up silently)

A circuit the device refuses at submit is the client's `NotAdmissibleError`; a task that failed or was
cancelled is the client's `TaskFailedError` / `TaskCancelledError`, raised by `VQPUJob.result()`.
"""

from __future__ import annotations

from vqpu_client.errors import UsageError, VQPUError


class RunOptionsError(UsageError):
    """`backend.run(...)` or `set_options(...)` was given an option the backend does not have, or a bad value."""


class UnsupportedCircuitError(UsageError):
    """The circuit cannot be sent as OpenQASM 3 or its outcomes cannot be mapped back onto its bits."""


class ResultShapeError(VQPUError):
    """The service's result does not fit the circuit it was submitted for (its bit width, or memory missing)."""
