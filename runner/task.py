"""The `vqpu.task/1` document of a run directory and the runner options it carries."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runner.errors import InvalidPayload

TASK_SCHEMA = "vqpu.task/1"
MAX_SHOTS = 10_000_000
MAX_CIRCUIT_CHARS = 8_000_000
DIALECTS = ("qasm2", "qasm3")


class NoiseModelName(StrEnum):
    PAPER = "paper"
    RELAXATION = "relaxation"


class Method(StrEnum):
    AUTO = "auto"
    STATEVECTOR = "statevector"
    DENSITY_MATRIX = "density_matrix"
    MATRIX_PRODUCT_STATE = "matrix_product_state"


class DeviceChoice(StrEnum):
    AUTO = "auto"
    CPU = "CPU"
    GPU = "GPU"


class RunOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    noise_model: NoiseModelName = Field(NoiseModelName.PAPER, description="DESIGN §7 noise derivation")
    method: Method = Field(Method.AUTO, description="Aer simulation method; auto chooses from size and noise")
    device: DeviceChoice = Field(
        DeviceChoice.AUTO, description="auto: GPU when qiskit-aer-gpu and a GPU are present, else CPU"
    )


class TaskSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    schema_: Literal["vqpu.task/1"] = Field(alias="schema")
    task_id: Annotated[str, Field(min_length=1, max_length=128)]
    attempt: Annotated[int, Field(ge=0)] = 1
    circuit: Annotated[str, Field(max_length=MAX_CIRCUIT_CHARS)]
    dialect: str
    shots: int
    seed: Annotated[int, Field(ge=0, lt=2**63)] | None = None
    snapshot_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    options: RunOptions = Field(default_factory=RunOptions)


def parse_task(data: Any) -> TaskSpec:
    if not isinstance(data, dict):
        raise InvalidPayload("INVALID_TASK", "task.json must hold a JSON object")
    try:
        task = TaskSpec.model_validate(data)
    except ValidationError as exc:
        problems = [{"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in exc.errors(include_url=False)]
        code = "INVALID_OPTIONS" if all(p["loc"].startswith("options") for p in problems) else "INVALID_TASK"
        summary = "; ".join(f"{p['loc']}: {p['msg']}" for p in problems[:5])
        raise InvalidPayload(code, f"invalid task.json: {summary}", problems) from None
    if task.dialect not in DIALECTS:
        raise InvalidPayload(
            "UNKNOWN_DIALECT", f"dialect {task.dialect!r} is not supported; use one of {', '.join(DIALECTS)}"
        )
    if not 1 <= task.shots <= MAX_SHOTS:
        raise InvalidPayload("INVALID_SHOTS", f"shots must be between 1 and {MAX_SHOTS}, got {task.shots}")
    return task
