"""Server settings: one validated model, from the CLI and `VQPU_*` environment variables.

Every field can be set by the environment variable `VQPU_` + its name in capitals
(`sse_queue_size` is `VQPU_SSE_QUEUE_SIZE`); command-line options win over the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from vqpu_protocol.codes import ErrorCode
from vqpu_protocol.limits import MAX_CIRCUIT_BYTES, MAX_CLAIM_WAIT_S, MAX_EXPANDED_OPS, MAX_RUNTIME_S, MAX_SHOTS
from vqpu_service.domain.errors import InvalidRequest

DEFAULT_HOME = Path.home() / ".local" / "share" / "vqpu"


class Settings(BaseModel):
    model_config = {"frozen": True, "extra": "forbid"}

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_HOME / 'vqpu.db'}",
        description="sqlite:///PATH (embedded default) or postgresql://user@host:port/db",
    )
    keys_file: Path = Field(default=DEFAULT_HOME / "keys.json", description="API keys, hashed at rest")
    register_catalog: bool = Field(default=True, description="register the bundled devices in a fresh database")
    liveness_window_s: float = Field(default=60.0, gt=0, description="RUNNING without a heartbeat this long is stale")
    sweep_interval_s: float = Field(default=5.0, gt=0, description="how often the liveness sweep runs")
    auto_requeue: bool = Field(default=False, description="requeue stale tasks automatically (fenced; opt-in)")
    claim_ack_window_s: float = Field(
        default=10.0,
        gt=0,
        description="a claimed task its agent has not acknowledged this long (a heartbeat naming it, or a report) "
        "goes back to QUEUED, its token fenced; an agent is given at least 3 of the heartbeat intervals it "
        "declares, and the liveness window if it declares none",
    )
    max_attempts: int = Field(default=3, ge=1, description="auto-requeue stops after this many attempts")
    device_cache_ttl_s: float = Field(default=5.0, ge=0, description="TTL of cached device reads (D7)")
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0, description="largest request body (413 above)")
    max_circuit_bytes: int = Field(
        default=1024 * 1024, gt=0, le=MAX_CIRCUIT_BYTES, description="largest circuit source (413 above)"
    )
    max_shots: int = Field(default=MAX_SHOTS, gt=0, le=MAX_SHOTS, description="most shots one task may ask for")
    max_claim_wait_s: float = Field(default=30.0, gt=0, le=MAX_CLAIM_WAIT_S, description="longest CLAIM long-poll")
    claim_recheck_s: float = Field(
        default=5.0, gt=0, description="a waiting CLAIM re-reads the database this often even if nothing woke it"
    )
    sse_queue_size: int = Field(default=1024, gt=0, description="events buffered per SSE subscriber before eviction")
    sse_keepalive_s: float = Field(default=15.0, gt=0, description="an idle SSE stream sends a comment this often")
    event_poll_s: float = Field(default=1.0, gt=0, description="event table poll, for commits by other processes")
    # --- pricing and fairness (docs/admission.md) ---
    max_expanded_ops: int = Field(
        default=5_000_000,
        gt=0,
        le=MAX_EXPANDED_OPS,
        description="most operations a circuit may expand to, broadcasts unrolled (TOO_LARGE above)",
    )
    default_slot_memory_bytes: int = Field(
        default=8 * 1024**3,
        gt=0,
        description="a slot's memory when no live agent serving the device has declared its own (TOO_LARGE above)",
    )
    max_runtime_s: float = Field(
        default=3600.0, gt=0, le=MAX_RUNTIME_S, description="wall-time ceiling of a user key's task (TOO_LONG above)"
    )
    admin_max_runtime_s: float = Field(
        default=86400.0, gt=0, le=MAX_RUNTIME_S, description="wall-time ceiling of an admin key's task"
    )
    max_running_per_owner: int = Field(
        default=16, gt=0, description="RUNNING tasks one owner may hold at once; the claim skips its others"
    )
    max_queued_per_owner: int = Field(
        default=1000, gt=0, description="QUEUED tasks one owner may have; a submit past it is 429 QUEUE_FULL"
    )
    queue_full_retry_after_s: int = Field(default=30, gt=0, le=3600, description="the Retry-After of a 429 QUEUE_FULL")
    queued_check_bytes: int = Field(
        default=16 * 1024 * 1024,
        gt=0,
        description="circuit bytes one queued-violations call re-checks at most before it stops and says where",
    )

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        """Combinations that would make a setting meaningless, each naming both variables."""
        if self.claim_recheck_s > self.max_claim_wait_s:
            raise ValueError(
                f"{env_name('claim_recheck_s')} ({self.claim_recheck_s}) must not exceed "
                f"{env_name('max_claim_wait_s')} ({self.max_claim_wait_s}): no waiting CLAIM would ever re-check"
            )
        if self.sweep_interval_s > self.liveness_window_s:
            raise ValueError(
                f"{env_name('sweep_interval_s')} ({self.sweep_interval_s}) must not exceed "
                f"{env_name('liveness_window_s')} ({self.liveness_window_s}): stale tasks would be noticed late"
            )
        if self.sweep_interval_s > self.claim_ack_window_s:
            raise ValueError(
                f"{env_name('sweep_interval_s')} ({self.sweep_interval_s}) must not exceed "
                f"{env_name('claim_ack_window_s')} ({self.claim_ack_window_s}): claims never acknowledged "
                "would be taken back late"
            )
        if self.max_circuit_bytes > self.max_body_bytes:
            raise ValueError(
                f"{env_name('max_circuit_bytes')} ({self.max_circuit_bytes}) must not exceed "
                f"{env_name('max_body_bytes')} ({self.max_body_bytes}): the body carries the circuit"
            )
        return self


ENV_PREFIX = "VQPU_"


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def load_settings(environ: Mapping[str, str], **overrides: Any) -> Settings:
    """Settings from `VQPU_*` variables, then `overrides` (None means "not given"); a bad value is a typed error."""
    from_env = {f: environ[env_name(f)] for f in Settings.model_fields if env_name(f) in environ}
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**(from_env | given))
    except ValidationError as exc:
        problems = [f"{_source(e['loc'], given)}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()]
        raise InvalidRequest(
            f"invalid settings: {'; '.join(problems)}", {"errors": problems}, code=ErrorCode.INVALID_SETTINGS
        ) from None


def _source(loc: tuple[int | str, ...], given: Mapping[str, Any]) -> str:
    """Name a bad value where the user set it: the option, or the environment variable."""
    if not loc:
        return "settings"  # a combination: the message names its variables
    field = str(loc[0])
    return f"{field} (command line)" if field in given else env_name(field)
