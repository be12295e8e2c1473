"""The run directory, the hermetic contract between whoever schedules a task and the runner.

    RUN_DIR/task.json      vqpu.task/1: the task and its run options
    RUN_DIR/snapshot.json  the bound snapshot, byte-identical to what CLAIM returned
    RUN_DIR/result.json    vqpu.result/1, written atomically by the runner on success
    RUN_DIR/error.json     the error document, written atomically by the runner on failure
    RUN_DIR/runner.log
    RUN_DIR/scratch/       temporary files and caches of the libraries the runner loads

`run_dir_for` is the one place a run directory's path is built (from a checked task id); `materialise`
writes the inputs of a claimed task, private from the first byte; `read_outcome` reads back what the
runner left, never through a symlink.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import stat
from collections import Counter
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from vqpu_protocol.codes import ErrorCode, code_for_fields
from vqpu_protocol.errors import ErrorDocument
from vqpu_protocol.limits import (
    MAX_CIRCUIT_BYTES,
    MAX_ID_CHARS,
    MAX_MEMORY_CHARS,
    MAX_MEMORY_SHOTS,
    MAX_NOISE_SCALE,
    MAX_RUNTIME_S,
    MAX_SERIAL,
    MAX_SHOTS,
    Dialect,
)
from vqpu_protocol.pubs import PubResults, Pubs, SamplerPubResults, check_memory
from vqpu_protocol.wire import PATH_SAFE_ID, Document, Id, SafeStr, Seed, Serial, Sha256

if TYPE_CHECKING:
    from vqpu_protocol.api.agent import ClaimedTask

TASK_FILE = "task.json"
SNAPSHOT_FILE = "snapshot.json"
RESULT_FILE = "result.json"
ERROR_FILE = "error.json"
LOG_FILE = "runner.log"
USAGE_FILE = "usage.json"
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


class Precision(StrEnum):
    DOUBLE = "double"  # complex128 amplitudes: 16 bytes each
    SINGLE = "single"  # complex64 amplitudes: 8 bytes each (half the memory; what makes GPUs pay off)


class DeviceChoice(StrEnum):
    AUTO = "auto"
    CPU = "CPU"
    GPU = "GPU"


NoiseKind = Literal["gate_1q", "gate_2q", "readout", "relaxation"]
"""The channels of a noise model: depolarizing on 1-qubit gates, on 2-qubit gates, readout flips,
and thermal relaxation (T1/T2; only the `relaxation` model has it)."""
NOISE_KINDS: tuple[NoiseKind, ...] = get_args(NoiseKind)
NoiseScale = Annotated[float, Field(ge=0, le=MAX_NOISE_SCALE, allow_inf_nan=False)]


class NoiseOptions(Document):
    """Noise as an instrument: each channel of the calibrated model scaled or removed (docs/devices.md).

    The default (nothing scaled, nothing disabled) is the calibrated model exactly.
    """

    scale: dict[NoiseKind, NoiseScale] = Field(
        default_factory=dict,
        description="multiply a channel: its error probability (gates, readout) or its rates 1/T1, 1/T2 "
        f"(relaxation); 0 removes it, {MAX_NOISE_SCALE:g} at most",
    )
    disable: Annotated[list[NoiseKind], Field(max_length=len(NOISE_KINDS))] = Field(
        default_factory=list, description="channels to remove"
    )

    @model_validator(mode="after")
    def _one_say_per_channel(self) -> NoiseOptions:
        repeated = sorted(k for k, n in Counter(self.disable).items() if n > 1)
        if repeated:
            raise ValueError(f"noise.disable names {', '.join(repeated)} more than once")
        both = sorted(set(self.scale) & set(self.disable))
        if both:
            raise ValueError(f"noise channel {', '.join(both)} is both scaled and disabled: say one")
        return self

    def factor(self, kind: NoiseKind) -> float:
        """What multiplies this channel: 0 when disabled, its scale, else 1."""
        return 0.0 if kind in self.disable else self.scale.get(kind, 1.0)

    def mentions(self, kind: NoiseKind) -> bool:
        return kind in self.scale or kind in self.disable

    def cache_key(self) -> tuple[tuple[str, float], ...]:
        """The factors as a canonical, hashable value (a scale of 1 and no mention are the same)."""
        return tuple((k, f) for k in NOISE_KINDS if (f := self.factor(k)) != 1.0)


RuntimeLimit = Annotated[float, Field(gt=0, le=MAX_RUNTIME_S, allow_inf_nan=False)]


class RunOptions(Document):
    """How the runner executes a task. Submitted with the task and validated at the door."""

    noise_model: NoiseModelName = Field(
        NoiseModelName.PAPER, strict=False, description="how noise is derived from the snapshot's calibration"
    )
    method: Method = Field(Method.AUTO, strict=False, description="Aer method; auto chooses from size and noise")
    device: DeviceChoice = Field(
        DeviceChoice.AUTO, strict=False, description="auto: a GPU when the node has one, else the CPU"
    )
    memory: bool = Field(
        False, description=f"return every shot's outcome in `memory` (at most {MAX_MEMORY_SHOTS} shots)"
    )
    noise: NoiseOptions = Field(default_factory=NoiseOptions, description="scale or remove noise channels")
    precision: Precision = Field(Precision.DOUBLE, strict=False, description="Aer's floating-point precision")
    max_runtime_s: RuntimeLimit | None = Field(
        None,
        description="wall-time limit of the run in seconds; absent: the control plane's ceiling for your key. "
        "Lowered to the ceiling and to the site's own; a run that reaches it fails TIME_LIMIT_EXCEEDED",
    )

    @field_validator("noise")
    @classmethod
    def _noise_fits_the_model(cls, noise: NoiseOptions, info: ValidationInfo) -> NoiseOptions:
        model = info.data.get("noise_model")  # absent when it failed validation itself
        if model is not None and model is not NoiseModelName.RELAXATION and noise.mentions("relaxation"):
            raise ValueError(f"noise channel relaxation exists only under noise_model 'relaxation', not '{model}'")
        return noise


def memory_problem(options: RunOptions, shots: int) -> str | None:
    """Why per-shot memory cannot be returned for this many shots, or None (checked wherever shots are known)."""
    if options.memory and shots > MAX_MEMORY_SHOTS:
        return f"per-shot memory is limited to {MAX_MEMORY_SHOTS} shots; the task asks {shots}"
    return None


def memory_chars(shots: int, key_width: int) -> int:
    """Characters a result's memory holds: one counts key of `key_width` characters per shot."""
    return shots * key_width


class RunLimits(Document):
    """What the site allows this run: written by the agent into task.json, enforced by the runner."""

    max_runtime_s: RuntimeLimit | None = Field(
        None, description="wall-time limit: the task's (already capped by the control plane) and the site's, lower"
    )
    memory_bytes: Annotated[int, Field(ge=1)] | None = Field(
        None, description="host memory one runner may use (the site's per-slot memory); Aer's max_memory_mb"
    )
    gpu_memory_bytes: Annotated[int, Field(ge=1)] | None = Field(None, description="GPU memory one runner may use")


class TaskDocument(Document):
    """`vqpu.task/1`: task.json."""

    schema_: Literal["vqpu.task/1"] = Field("vqpu.task/1", alias="schema")
    task_id: Id
    attempt: Serial = 1
    circuit: Annotated[SafeStr, Field(max_length=MAX_CIRCUIT_BYTES)] | None = Field(
        None, description="a circuit task's circuit; absent for a PUB task"
    )
    pubs: Pubs | None = Field(None, description="a PUB task's PUBs, resolved (every shots and precision given)")
    dialect: Dialect
    shots: Annotated[int, Field(ge=0, le=MAX_SHOTS)] = Field(
        description="a circuit task's shots; a PUB task's as stored (sampled in all, 0 for estimators)"
    )
    seed: Seed | None = None
    snapshot_sha256: Sha256 = Field(description="sha256 of snapshot.json: the runner refuses any other snapshot")
    options: RunOptions = Field(default_factory=RunOptions)
    limits: RunLimits = Field(default_factory=RunLimits, description="the site's bounds on this run")

    @field_validator("shots")
    @classmethod
    def _a_circuit_runs_shots(cls, shots: int, info: ValidationInfo) -> int:
        # A field error (not the model's): it is reported as INVALID_SHOTS, as before PUB tasks allowed 0.
        if info.data.get("circuit") is not None and shots < 1:
            raise ValueError("a circuit task runs at least one shot")
        return shots

    @field_validator("options")
    @classmethod
    def _memory_within_limits(cls, options: RunOptions, info: ValidationInfo) -> RunOptions:
        return check_memory_shots(options, info)

    @model_validator(mode="after")
    def _circuit_or_pubs(self) -> TaskDocument:
        if (self.circuit is None) == (self.pubs is None):
            raise ValueError("a task holds either a circuit or PUBs")
        if self.pubs is not None and self.options.memory and self.pubs.kind != "sampler":
            raise ValueError("per-shot memory is for circuit and sampler tasks: an estimator samples no shots")
        return self


def check_memory_shots(options: RunOptions, info: ValidationInfo) -> RunOptions:
    """A field validator's body for `options` of a document that has `shots` before it. The error is
    raised as a ValidationError located at `memory`, which pydantic nests under `options`, so the
    refusal names `options.memory` as any other field's would."""
    shots = info.data.get("shots")
    problem = memory_problem(options, shots) if isinstance(shots, int) else None
    if problem is not None:
        error = PydanticCustomError("memory_limit", problem)
        raise ValidationError.from_exception_data(
            "RunOptions", [InitErrorDetails(type=error, loc=("memory",), input=options.memory)]
        )
    return options


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
    noise_empty: bool = Field(
        description="no noise was applied: the calibration gave none, or the noise options removed all of it"
    )
    noise: NoiseOptions = Field(default_factory=NoiseOptions, description="the noise options applied, as asked")
    noise_channels: Annotated[int, Field(ge=0)] | None = Field(
        None,
        description="quantum and readout error channels of the run's noise model (0: ideal); "
        "null from a runner that predates the count",
    )
    noise_cache: Literal["hit", "miss"]
    idle_noise: Literal["thermal_relaxation", "none"] | None = Field(
        None,
        description="the noise the run's delays got: thermal_relaxation (`relaxation`: each delay on an active "
        "qubit relaxed with its T1/T2 over the delay's duration, as Qiskit-Aer's RelaxationNoisePass does), "
        "none (`paper`, relaxation scaled to 0, no T1/T2 where the circuit idles, or no delay at all: its "
        "delays were noiseless, so it is no decoherence experiment); null from a runner that predates it",
    )
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


class RunUsage(Document):
    """What one run used, for the site's accounting: `usage.json`, written by the runner as it exits
    (whatever the outcome), and the `usage` of an agent's terminal report."""

    wall_s: Seconds = Field(description="the runner's wall time, from its start to its exit (or its kill)")
    cpu_s: Seconds | None = Field(
        None, description="user + system CPU time of the runner process and all its threads: core-seconds"
    )
    gpu_s: Seconds | None = Field(None, description="wall time of the simulation on a GPU; null when none was used")
    peak_rss_bytes: Annotated[int, Field(ge=0)] | None = Field(
        None, description="peak resident memory of the runner process, where the platform reports it"
    )
    measured_by: Literal["runner", "agent"] = Field(
        "runner",
        description="runner: its own account; agent: the runner left none (killed, crashed), so the agent's clock",
    )


class ResultDocument(Document):
    """`vqpu.result/1`: result.json, and the `result` of a completed report."""

    schema_: Literal["vqpu.result/1"] = Field("vqpu.result/1", alias="schema")
    counts: dict[Bitstring, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict, description="a circuit task's counts; empty for a PUB task (see `pubs`)"
    )
    shots: Annotated[int, Field(ge=0, le=MAX_SHOTS)] = Field(description="the task's shots, as stored")
    timings: Timings
    provenance: Provenance
    memory: Annotated[list[Bitstring], Field(max_length=MAX_MEMORY_SHOTS)] | None = Field(
        None,
        description="every shot's outcome in order, each a key of `counts`; only when options.memory asked",
    )
    pubs: PubResults | None = Field(None, description="a PUB task's results, one per PUB in order")

    @model_validator(mode="after")
    def _counts_add_up(self) -> ResultDocument:
        if self.pubs is not None:
            if self.counts or self.memory is not None:
                raise ValueError("a PUB task's result has its outcomes in `pubs`, none in `counts` or `memory`")
            chars = self.pubs.memory_chars() if isinstance(self.pubs, SamplerPubResults) else 0
            if chars > MAX_MEMORY_CHARS:
                raise ValueError(f"the PUBs' memory holds {chars} characters; the limit is {MAX_MEMORY_CHARS}")
            return self
        if self.shots < 1:
            raise ValueError("a circuit task's result has at least one shot")
        total = sum(self.counts.values())
        if total != self.shots:
            raise ValueError(f"counts add up to {total}, not to the {self.shots} shots")
        if self.memory is not None:
            check_memory(self.memory, self.counts, self.shots)
        return self


class RunDirError(Exception):
    """A run directory's input cannot be used; `code` says why (the runner exits 2 with it)."""

    def __init__(self, code: ErrorCode, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.detail = code, message, detail


# --- paths ---------------------------------------------------------------------------------

_NAME = re.compile(PATH_SAFE_ID)


class UnsafeRunDirName(ValueError):
    """A task id or attempt that cannot name a run directory: it would not be one plain path component."""


def run_dir_name(task_id: str, attempt: int) -> str:
    """`TASK-ID.ATTEMPT`, only for an id of letters, digits, `-` and `_` (starting with a letter or a digit)
    of at most MAX_ID_CHARS characters and an attempt in 0..MAX_SERIAL: never `..`, `/`, NUL or a newline."""
    if not isinstance(task_id, str) or len(task_id) > MAX_ID_CHARS or _NAME.fullmatch(task_id) is None:
        raise UnsafeRunDirName(f"task id {task_id!r} cannot name a run directory (letters, digits, '-' and '_' only)")
    if type(attempt) is not int or not 0 <= attempt <= MAX_SERIAL:
        raise UnsafeRunDirName(f"attempt {attempt!r} of task {task_id} cannot name a run directory")
    return f"{task_id}.{attempt}"


def run_dir_for(run_root: Path, task_id: str, attempt: int) -> Path:
    """The one place a run directory's path is built: RUN_ROOT/TASK-ID.ATTEMPT, from a checked id."""
    return run_root / run_dir_name(task_id, attempt)


def parse_run_dir_name(name: str) -> tuple[str, int] | None:
    """The task id and attempt a run directory's name stands for, or None for any other name."""
    task_id, dot, attempt = name.rpartition(".")
    if not dot or not attempt.isascii() or not attempt.isdigit() or attempt != str(int(attempt)):
        return None
    try:
        return (task_id, int(attempt)) if run_dir_name(task_id, int(attempt)) == name else None
    except UnsafeRunDirName:
        return None


# --- writing ---------------------------------------------------------------------------------
# Everything here is private from its first byte: directories are made 0700 and files 0600 by the
# call that creates them (never a chmod after), a temporary name is created exclusively (O_EXCL), and
# no symbolic link is followed at the last step of a path (O_NOFOLLOW), so a link planted where a file
# or a run directory is expected is refused, not written through.

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
_NO_FOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeRunDir(OSError):
    """A directory to be written is not a real directory of this account's (a symlink, someone else's)."""


def materialise(run_dir: Path, claimed: ClaimedTask) -> Path:
    """Write the inputs of a claimed task: snapshot.json byte-identical to the claim's, then task.json."""
    write_inputs(run_dir, claimed.task_document(), claimed.snapshot.encode())
    return run_dir


def write_inputs(run_dir: Path, task: TaskDocument, snapshot_json: bytes) -> None:
    if hashlib.sha256(snapshot_json).hexdigest() != task.snapshot_sha256:
        raise ValueError("task.snapshot_sha256 does not identify this snapshot")
    private_dir(run_dir)
    atomic_write(run_dir / SNAPSHOT_FILE, snapshot_json)
    atomic_write(run_dir / TASK_FILE, _dump(task))


def private_dir(path: Path) -> Path:
    """`path` as a directory of this account's: made 0700 when missing (missing parents too, 0700); an
    existing one must be a real directory (not a symlink) owned by this account, writable by no one else."""
    make_missing_dirs(path)
    check_own_dir(path)
    return path


def make_missing_dirs(path: Path) -> list[Path]:
    """Create `path` and whatever is missing above it, top down, each 0700; returns what this call made. One
    that someone else made meanwhile is left alone, for the caller's checks to judge like any existing one."""
    missing: list[Path] = []
    probe = path
    while not os.path.lexists(probe) and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    made: list[Path] = []
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, PRIVATE_DIR_MODE)
            made.append(directory)
    return made


def check_own_dir(path: Path) -> os.stat_result:
    """lstat `path` and refuse anything but a real directory of this account's that only it may write."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeRunDir(errno.ELOOP, "is a symbolic link, not a directory", str(path))
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeRunDir(errno.ENOTDIR, "is not a directory", str(path))
    if st.st_uid != os.geteuid():
        owner = f"is owned by uid {st.st_uid}, not by this account (uid {os.geteuid()})"
        raise UnsafeRunDir(errno.EPERM, owner, str(path))
    if st.st_mode & 0o022:
        writable = f"is writable by other accounts (mode {stat.S_IMODE(st.st_mode):04o})"
        raise UnsafeRunDir(errno.EPERM, writable, str(path))
    return st


def write_result(run_dir: Path, result: ResultDocument) -> None:
    atomic_write(run_dir / RESULT_FILE, _dump(result))
    _unlink(run_dir / ERROR_FILE)


def write_usage(run_dir: Path, usage: RunUsage) -> None:
    atomic_write(run_dir / USAGE_FILE, _dump(usage))


def read_usage(run_dir: Path) -> RunUsage | None:
    """The runner's account of what it used; None when it left none or what it left is not one (the
    agent then reports its own clock: accounting never fails a task)."""
    if not os.path.lexists(run_dir / USAGE_FILE):
        return None
    try:
        return RunUsage.model_validate(read_json(run_dir / USAGE_FILE))
    except (RunDirError, ValidationError):
        return None


def write_error(run_dir: Path, error: ErrorDocument) -> None:
    atomic_write(run_dir / ERROR_FILE, _dump(error))
    _unlink(run_dir / RESULT_FILE)


def atomic_write(path: Path, content: bytes) -> None:
    """Write then rename, so a reader sees the old file or the whole new one, never a torn one.

    The file is 0600 from its creation under an unpredictable temporary name made exclusively without
    following a link, in the directory held open (never a symlink) for the rename; the rename replaces a
    link at `path`, never writes through it."""
    dir_fd = os.open(path.parent, _NO_FOLLOW_DIR)
    try:
        tmp = f".{path.name}.{secrets.token_hex(8)}.tmp"
        # By its full path, so that audit hooks see which file is opened (tests/e2e: the runner opens
        # nothing outside its run directory); then checked to be in the directory held open.
        fd = os.open(path.parent / tmp, _NEW_FILE, PRIVATE_FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as fh:
                if not os.path.samestat(os.fstat(fh.fileno()), os.stat(tmp, dir_fd=dir_fd, follow_symlinks=False)):
                    raise UnsafeRunDir(errno.EXDEV, "was replaced while it was written to", str(path.parent))
                fh.write(content)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
    finally:
        os.close(dir_fd)


def _unlink(path: Path) -> None:
    dir_fd = os.open(path.parent, _NO_FOLLOW_DIR)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path.name, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def _dump(doc: Document) -> bytes:
    return (json.dumps(doc.model_dump(mode="json", by_alias=True), indent=2, sort_keys=True) + "\n").encode()


# --- reading ---------------------------------------------------------------------------------


def read_task(run_dir: Path) -> TaskDocument:
    """The runner's task: like every run-dir file, never through a symlink and never over the limit; but read
    as a stream, so a FIFO is waited on (only the run directory's owner can make one there; the scheduler
    contract tests hold a runner that way). The agent never reads one: see read_file."""
    data = decode_json(run_dir / TASK_FILE, read_file(run_dir / TASK_FILE, stream=True))
    if not isinstance(data, dict):
        raise RunDirError(ErrorCode.INVALID_TASK, f"{TASK_FILE} must hold a JSON object")
    try:
        return TaskDocument.model_validate(data)
    except ValidationError as exc:
        problems = _problems(exc)
        code = code_for_fields((p["loc"].split(".")[0] for p in problems if p["loc"]), ErrorCode.INVALID_TASK)
        raise RunDirError(code, f"invalid {TASK_FILE}: {_summary(problems)}", problems) from None


def read_file(path: Path, *, stream: bool = False) -> bytes:
    """A run-dir file's bytes: never through a symlink, never a FIFO or device (which could block or never
    end), never a file over MAX_FILE_BYTES. With `stream`, a FIFO is read too, waiting for its writer."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (0 if stream else os.O_NONBLOCK)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise RunDirError(ErrorCode.MISSING_FILE, f"{path.name} is missing from the run directory") from None
    except OSError as exc:
        raise RunDirError(ErrorCode.MISSING_FILE, f"cannot read {path.name}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not (stat.S_ISREG(st.st_mode) or (stream and stat.S_ISFIFO(st.st_mode))):
            raise RunDirError(ErrorCode.MISSING_FILE, f"cannot read {path.name}: not a regular file")
        if st.st_size > MAX_FILE_BYTES:
            raise RunDirError(
                ErrorCode.INVALID_TASK, f"{path.name} is {st.st_size} bytes; the limit is {MAX_FILE_BYTES}"
            )
        raw = fh.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:  # it grew after fstat
        raise RunDirError(ErrorCode.INVALID_TASK, f"{path.name} is over the limit of {MAX_FILE_BYTES} bytes")
    return raw


def read_json(path: Path) -> Any:
    """A run-dir file, decoded (see read_file: no symlink followed, no huge or special file read)."""
    return decode_json(path, read_file(path))


def decode_json(path: Path, raw: bytes) -> Any:
    """`raw`, the bytes of the run-dir file `path` (read_file), decoded; what is wrong said as read_json says it."""
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise RunDirError(ErrorCode.INVALID_JSON, f"{path.name} is not valid JSON: {exc}") from None


def read_outcome(run_dir: Path) -> ResultDocument | ErrorDocument | None:
    """What the runner left: its result, its error, an error saying what is wrong with what it left
    (RESULT_MALFORMED), or None when it left neither file (still running, or killed before writing)."""
    for name, model in ((RESULT_FILE, ResultDocument), (ERROR_FILE, ErrorDocument)):
        if not os.path.lexists(run_dir / name):  # a link is there: read_json refuses it, naming the file
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
