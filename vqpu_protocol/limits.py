"""The limits every process enforces, each defined here once.

Deployment settings (the server's `max_shots`, `max_circuit_bytes`) may lower these but never raise
them: a task the control plane admits must be one every runner accepts.
"""

from __future__ import annotations

from typing import Final, Literal

from device_registry.admissibility import DIALECTS as _DIALECTS

Dialect = Literal["qasm2", "qasm3"]
DIALECTS: Final[tuple[str, ...]] = _DIALECTS
"""The OpenQASM dialects the admissibility check and the runner understand."""

MAX_SHOTS: Final = 10_000_000
MAX_CIRCUIT_BYTES: Final = 8 * 1024 * 1024
"""Largest circuit source (UTF-8) any process accepts; the server's default limit is lower."""
MAX_SEED: Final = 2**63 - 1
"""Seeds are non-negative 64-bit integers."""
MAX_SERIAL: Final = 2**31 - 1
"""Epochs, attempts, task sequence numbers and event ids: 32-bit integer columns on PostgreSQL."""
MAX_ID_CHARS: Final = 128
"""Task, device, agent and claim-token ids."""
MAX_TAGS: Final = 32
MAX_TAG_CHARS: Final = 64
MAX_JSON_DEPTH: Final = 32
"""Deepest nesting of arrays and objects a request body may have."""
MAX_TEXT_CHARS: Final = 64 * 1024
"""Free-text fields of reports (messages, log tails)."""
MAX_IDEMPOTENCY_KEY_CHARS: Final = 200
MAX_CLAIM_BATCH: Final = 64
MAX_CLAIM_WAIT_S: Final = 300.0
MAX_HEARTBEAT_TASKS: Final = 4096
MAX_LIST_LIMIT: Final = 1000
