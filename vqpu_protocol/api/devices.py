"""/v1/devices: summaries, epochs, viability, and the admin's partial update."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from device_registry.snapshot import Duration, EdgeStatus, Name, Probability, QubitStatus, Seconds
from vqpu_protocol.api.tasks import Circuit
from vqpu_protocol.limits import MAX_SHOTS, Dialect
from vqpu_protocol.pricing import Price
from vqpu_protocol.rundir import RunOptions
from vqpu_protocol.wire import Request, Response, Serial


class Viability(Request):
    circuit: Circuit
    dialect: Dialect
    epoch: Serial | None = None
    options: RunOptions = Field(default_factory=RunOptions, description="checked as a submission's would be")
    shots: Annotated[int, Field(ge=1, le=MAX_SHOTS)] = Field(1024, description="the shots the price is for")


class ViolationView(Response):
    code: str = Field(description="UNKNOWN_GATE, QUBIT_OUT_OF_RANGE, QUBIT_OFFLINE, NO_COUPLING, ...")
    line: int | None
    gate: str | None
    operands: list[int]
    message: str


class LimitRefusal(Response):
    code: str = Field(description="TOO_LARGE or TOO_LONG: what a submission of it would be refused with (422)")
    message: str
    detail: dict[str, Any]


class ViabilityView(Response):
    device_id: str
    epoch: int
    sha256: str
    admissible: bool = Field(description="a submission with these options and shots would be accepted")
    violations: list[ViolationView]
    price: Price | None = Field(
        None, description="what the run would cost (docs/admission.md); null when the device refuses the circuit"
    )
    refusal: LimitRefusal | None = Field(None, description="the limit the price exceeds, if any")


class EpochView(Response):
    device_id: str
    epoch: int
    sha256: str
    created_at: str


class DeviceSummary(EpochView):
    num_qubits: int
    native_gates: list[str]
    offline_qubits: int
    unavailable_edges: int


class DeviceList(Response):
    devices: list[DeviceSummary]


class EpochEntry(Response):
    epoch: int
    sha256: str
    created_at: str


class EpochList(Response):
    device_id: str
    epochs: list[EpochEntry]


Index = Annotated[int, Field(ge=0, le=100_000)]


class QubitChange(Request):
    index: Index
    status: QubitStatus | None = Field(None, strict=False)
    t1: Seconds | None = None
    t2: Seconds | None = None
    error_1q: Probability | None = None
    readout_error: Probability | None = None
    prob_meas0_prep1: Probability | None = None
    prob_meas1_prep0: Probability | None = None
    gate_durations: dict[Name, Duration] | None = None


class EdgeChange(Request):
    source: Index
    target: Index
    status: EdgeStatus | None = Field(None, strict=False)
    error: Probability | None = None
    duration: Duration | None = None


class DevicePatch(Request):
    """Fields given replace the current epoch's; the result is a new epoch."""

    qubits: Annotated[list[QubitChange], Field(max_length=100_000)] = []
    edges: Annotated[list[EdgeChange], Field(max_length=1_000_000)] = []
