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
MAX_HEARTBEAT_S: Final = 300.0
"""Longest heartbeat interval an agent may declare with its claims (a site's `heartbeat_s`)."""
MAX_HEARTBEAT_TASKS: Final = 4096
MAX_LIST_LIMIT: Final = 1000

MAX_MEMORY_SHOTS: Final = 100_000
"""Most shots a task may ask per-shot memory for (`options.memory`): checked at submit."""
MAX_MEMORY_CHARS: Final = 1_000_000
"""Most characters a result's memory may hold (shots times the width of a counts key, spaces included):
checked by the runner, which alone knows the circuit's classical registers. With the counts beside
it a result then stays under ~3 MB, inside the server's default 4 MiB report body."""
MAX_NOISE_SCALE: Final = 1000.0
"""Largest factor `options.noise.scale` may multiply a noise channel by."""
MAX_QUEUED_CHECK: Final = 200
"""Most QUEUED tasks one queued-violations answer re-checks (oldest first), so that it stays bounded work:
the admissibility check reads about 2.5 MB of source a second (a 1,000-gate circuit in ~4 ms), so 200
such circuits take under a second."""
MAX_RUNTIME_S: Final = 7 * 24 * 3600.0
"""Longest wall-time limit (`options.max_runtime_s`) any task may have; the control plane's ceilings and
the site's are lower."""
MAX_EXPANDED_OPS: Final = 100_000_000
"""Most operations a circuit may expand to (a broadcast `sx q;` on an n-qubit register counts n): the
server's default `max_expanded_ops` is lower."""
MAX_COUNTS_CHARS: Final = 2_000_000
"""Most characters a result's counts may hold in the worst case: min(shots, 2^clbits) keys, each of the
counts key width plus 12 (quotes, separators and the count). Checked at submit and by the runner
before it simulates, so that a result always fits the server's default 4 MiB report body."""
MAX_BYTES: Final = 2**63 - 1
"""Largest byte count any document carries (a 64-bit integer column)."""
