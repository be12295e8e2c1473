"""The run directory, the hermetic contract between whoever schedules a task and the runner.

    RUN_DIR/task.json      vqpu.task/1: the task and its run options
    RUN_DIR/snapshot.json  the bound snapshot, byte-identical to what CLAIM returned
    RUN_DIR/result.json    vqpu.result/1, written atomically by the runner on success
    RUN_DIR/error.json     the error document, written atomically by the runner on failure
    RUN_DIR/runner.log
    RUN_DIR/scratch/       temporary files and caches of the libraries the runner loads

`materialise` writes the inputs of a claimed task; `read_outcome` reads back what the runner left.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from vqpu_protocol.codes import ErrorCode, code_for_fields
from vqpu_protocol.errors import ErrorDocument
from vqpu_protocol.limits import MAX_CIRCUIT_BYTES, MAX_SHOTS, Dialect
from vqpu_protocol.wire import Document, Id, SafeStr, Seed, Serial, Sha256

if TYPE_CHECKING:
    from vqpu_protocol.api.agent import ClaimedTask

TASK_FILE = "task.json"
SNAPSHOT_FILE = "snapshot.json"
RESULT_FILE = "result.json"
ERROR_FILE = "error.json"
LOG_FILE = "runner.log"
SCRATCH_DIR = "scratch"
SCHEDULER_JOB_VARIABLES = ("SLURM_JOB_ID", "SLURM_JOBID", "PBS_JOBID", "LSB_JOBID")
"""Where a batch scheduler puts the job's id in its environment: a run's `provenance.scheduler_job_id`."""


def scheduler_job_id(environ: Mapping[str, str]) -> str | None:
    """The batch job this process runs in, from its environment; None outside one."""
    return next((environ[v] for v in SCHEDULER_JOB_VARIABLES if environ.get(v)), None)


"""Where the runner process points the scratch files of the libraries it loads (TMPDIR, caches)."""
MAX_FILE_BYTES = 64 * 1024 * 1024
"""The runner refuses a task.json or snapshot.json larger than this without reading it."""


class NoiseModelName(StrEnum):
    PAPER = "paper"  # depolarizing gate errors and symmetric readout from the calibration
    RELAXATION = "relaxation"  # plus thermal relaxation from T1/T2 and asymmetric readout


class Method(StrEnum):
    AUTO = "auto"
    STATEVECTOR = "statevector"
    DENSITY_MATRIX = "density_matrix"
    MATRIX_PRODUCT_STATE = "matrix_product_state"


class DeviceChoice(StrEnum):
    AUTO = "auto"
    CPU = "CPU"
    GPU = "GPU"


class RunOptions(Document):
    """How the runner executes a task. Submitted with the task and validated at the door."""

    noise_model: NoiseModelName = Field(
        NoiseModelName.PAPER, strict=False, description="how noise is derived from the snapshot's calibration"
    )
    method: Method = Field(Method.AUTO, strict=False, description="Aer method; auto chooses from size and noise")
    device: DeviceChoice = Field(
        DeviceChoice.AUTO, strict=False, description="auto: a GPU when the node has one, else the CPU"
    )


class TaskDocument(Document):
    """`vqpu.task/1`: task.json."""

    schema_: Literal["vqpu.task/1"] = Field("vqpu.task/1", alias="schema")
    task_id: Id
    attempt: Serial = 1
    circuit: Annotated[SafeStr, Field(max_length=MAX_CIRCUIT_BYTES)]
    dialect: Dialect
    shots: Annotated[int, Field(ge=1, le=MAX_SHOTS)]
    seed: Seed | None = None
    snapshot_sha256: Sha256 = Field(description="sha256 of snapshot.json: the runner refuses any other snapshot")
    options: RunOptions = Field(default_factory=RunOptions)


Bitstring = Annotated[str, Field(pattern=r"^[01]+( [01]+)*$", max_length=65_536)]
Seconds = Annotated[float, Field(ge=0)]
Text = Annotated[SafeStr, Field(max_length=4096)]


class Timings(Document):
    parse_s: Seconds
    transpile_s: Seconds
    noise_s: Seconds
    simulate_s: Seconds
    total_s: Seconds


class Provenance(Document):
    """Everything needed to know what ran, and to replay it."""

    task_id: Id
    attempt: Serial
    device_id: Id
    epoch: Serial
    snapshot_sha256: Sha256
    seed: Seed
    seed_source: Literal["task", "runner"]
    noise_model: NoiseModelName = Field(strict=False)
    noise_empty: bool = Field(description="the calibration gave no noise: the run was ideal")
    noise_cache: Literal["hit", "miss"]
    method: Text
    device: Literal["CPU", "GPU"]
    method_reason: Text
    simulator_options: dict[Text, bool | int | float | Text]
    transpile: Literal["native", "basis-translation"]
    active_qubits: list[Annotated[int, Field(ge=0)]]
    dialect: Dialect
    runner: Text
    qiskit: Text | None
    qiskit_aer: Text | None
    python: Text
    hostname: Text
    scheduler_job_id: Text | None


class ResultDocument(Document):
    """`vqpu.result/1`: result.json, and the `result` of a completed report."""

    schema_: Literal["vqpu.result/1"] = Field("vqpu.result/1", alias="schema")
    counts: dict[Bitstring, Annotated[int, Field(ge=0)]]
    shots: Annotated[int, Field(ge=1, le=MAX_SHOTS)]
    timings: Timings
    provenance: Provenance

    @model_validator(mode="after")
    def _counts_add_up(self) -> ResultDocument:
        total = sum(self.counts.values())
        if total != self.shots:
            raise ValueError(f"counts add up to {total}, not to the {self.shots} shots")
        return self


class RunDirError(Exception):
    """A run directory's input cannot be used; `code` says why (the runner exits 2 with it)."""

    def __init__(self, code: ErrorCode, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.detail = code, message, detail


# --- writing ---------------------------------------------------------------------------------


def materialise(run_dir: Path, claimed: ClaimedTask) -> Path:
    """Write the inputs of a claimed task: snapshot.json byte-identical to the claim's, then task.json."""
    write_inputs(run_dir, claimed.task_document(), claimed.snapshot.encode())
    return run_dir


def write_inputs(run_dir: Path, task: TaskDocument, snapshot_json: bytes) -> None:
    if hashlib.sha256(snapshot_json).hexdigest() != task.snapshot_sha256:
        raise ValueError("task.snapshot_sha256 does not identify this snapshot")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(run_dir / SNAPSHOT_FILE, snapshot_json)
    atomic_write(run_dir / TASK_FILE, _dump(task))


def write_result(run_dir: Path, result: ResultDocument) -> None:
    atomic_write(run_dir / RESULT_FILE, _dump(result))
    (run_dir / ERROR_FILE).unlink(missing_ok=True)


def write_error(run_dir: Path, error: ErrorDocument) -> None:
    atomic_write(run_dir / ERROR_FILE, _dump(error))
    (run_dir / RESULT_FILE).unlink(missing_ok=True)


def atomic_write(path: Path, content: bytes) -> None:
    """Write then rename, so a reader sees the old file or the whole new one, never a torn one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(content)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _dump(doc: Document) -> bytes:
    return (json.dumps(doc.model_dump(mode="json", by_alias=True), indent=2, sort_keys=True) + "\n").encode()


# --- reading ---------------------------------------------------------------------------------


def read_task(run_dir: Path) -> TaskDocument:
    data = read_json(run_dir / TASK_FILE)
    if not isinstance(data, dict):
        raise RunDirError(ErrorCode.INVALID_TASK, f"{TASK_FILE} must hold a JSON object")
    try:
        return TaskDocument.model_validate(data)
    except ValidationError as exc:
        problems = _problems(exc)
        code = code_for_fields((p["loc"].split(".")[0] for p in problems if p["loc"]), ErrorCode.INVALID_TASK)
        raise RunDirError(code, f"invalid {TASK_FILE}: {_summary(problems)}", problems) from None


def read_json(path: Path) -> Any:
    """A run-dir file, decoded: never follows a symlink out of the directory, never reads a huge file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise RunDirError(ErrorCode.MISSING_FILE, f"{path.name} is missing from the run directory") from None
    except OSError as exc:
        raise RunDirError(ErrorCode.MISSING_FILE, f"cannot read {path.name}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > MAX_FILE_BYTES:
            raise RunDirError(ErrorCode.INVALID_TASK, f"{path.name} is {size} bytes; the limit is {MAX_FILE_BYTES}")
        raw = fh.read()
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise RunDirError(ErrorCode.INVALID_JSON, f"{path.name} is not valid JSON: {exc}") from None


def read_outcome(run_dir: Path) -> ResultDocument | ErrorDocument | None:
    """What the runner left: its result, its error, an error saying what is wrong with what it left
    (RESULT_MALFORMED), or None when it left neither file (still running, or killed before writing)."""
    for name, model in ((RESULT_FILE, ResultDocument), (ERROR_FILE, ErrorDocument)):
        if not (run_dir / name).exists():
            continue
        try:
            return model.model_validate(read_json(run_dir / name))
        except RunDirError as exc:
            return ErrorDocument(code=ErrorCode.RESULT_MALFORMED, message=exc.message, detail={"file": name})
        except ValidationError as exc:
            return ErrorDocument(
                code=ErrorCode.RESULT_MALFORMED,
                message=f"{name} is not a valid document: {_summary(_problems(exc))}",
                detail={"file": name},
            )
    return None


def _problems(exc: ValidationError) -> list[dict[str, str]]:
    return [{"loc": ".".join(map(str, e["loc"])), "msg": e["msg"]} for e in exc.errors(include_url=False)]


def _summary(problems: list[dict[str, str]]) -> str:
    return "; ".join(f"{p['loc']}: {p['msg']}" for p in problems[:5])
