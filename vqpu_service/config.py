"""Server settings: one validated model, from the CLI and `VQPU_*` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

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
    max_attempts: int = Field(default=3, ge=1, description="auto-requeue stops after this many attempts")
    device_cache_ttl_s: float = Field(default=5.0, ge=0, description="TTL of cached device reads (D7)")
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0, description="largest request body (413 above)")
    max_circuit_bytes: int = Field(default=1024 * 1024, gt=0, description="largest circuit source (413 above)")
    max_shots: int = Field(default=10_000_000, gt=0)
    max_claim_wait_s: float = Field(default=30.0, gt=0, le=300, description="longest CLAIM long-poll")
    sse_queue_size: int = Field(default=1024, gt=0, description="events buffered per SSE subscriber before eviction")
    sse_keepalive_s: float = Field(default=15.0, gt=0)
    event_poll_s: float = Field(default=1.0, gt=0, description="event table poll, for commits by other processes")
