"""Choosing the Aer method and device for a run, and running it. Every choice is reported.

The method is `vqpu_protocol.pricing.plan_method`'s, the one the control plane priced the task with.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from qiskit import QuantumCircuit
from qiskit.circuit import ControlFlowOp
from qiskit_aer import AerSimulator
from qiskit_aer.library import SaveProbabilities
from qiskit_aer.noise import NoiseModel

from runner.errors import SimulationFailed
from vqpu_protocol.codes import ErrorCode
from vqpu_protocol.pricing import plan_method
from vqpu_protocol.rundir import DeviceChoice, Precision, RunOptions


@dataclass(frozen=True)
class Plan:
    method: str
    device: Literal["CPU", "GPU"]
    reason: str
    options: dict[str, Any]


@cache
def gpu_available() -> bool:
    """True when this qiskit_aer is the GPU build and it can see a GPU."""
    try:
        return "GPU" in AerSimulator().available_devices()
    except Exception:  # an Aer build without CUDA support answers by raising on some versions
        return False


def plan(
    options: RunOptions,
    device: Literal["CPU", "GPU"],
    num_active: int,
    noisy: bool,
    *,
    max_memory_mb: int | None = None,
) -> Plan:
    """The method priced for this run, on `device` (`device_for`'s answer); `max_memory_mb` bounds Aer's
    state (and the shots it runs side by side), absent: Aer's own default, the machine's memory."""
    reasons: list[str] = [
        f"device {device}: "
        + (
            "requested"
            if options.device is not DeviceChoice.AUTO
            else ("GPU present" if device == "GPU" else "no GPU build/device present")
        )
    ]
    method, why = plan_method(options, num_active, noisy)
    reasons.append(why)
    extra: dict[str, Any] = {}
    if options.precision is not Precision.DOUBLE:  # Aer's default: a double-precision run is as it always was
        extra["precision"] = options.precision.value
        reasons.append(f"{options.precision.value} precision requested")
    if max_memory_mb is not None:
        extra["max_memory_mb"] = max_memory_mb
    if method == "statevector" and noisy:
        if device == "CPU":
            # Measured with Aer 0.18.2: shot branching returns wrong counts in a few runs in a hundred under
            # gate and readout noise together (x on two qubits: half the shots lose one x), and segfaults
            # under max_memory_mb (tests/unit/runner/test_pipeline_bounds.py, test_dynamic_circuits.py).
            reasons.append("shot branching off (Aer's is unreliable)")
        else:
            extra["batched_shots_gpu"] = True
            reasons.append("batched shots on GPU")
    return Plan(method=method, device=device, reason="; ".join(reasons), options=extra)


def device_for(choice: DeviceChoice) -> Literal["CPU", "GPU"]:
    """Where a run asking for `choice` runs on this node; GPU_UNAVAILABLE for a GPU it does not have."""
    if choice is DeviceChoice.GPU:
        if not gpu_available():
            raise SimulationFailed(
                ErrorCode.GPU_UNAVAILABLE, "the task asks for a GPU but this node's qiskit_aer has no usable GPU"
            )
        return "GPU"
    if choice is DeviceChoice.CPU:
        return "CPU"
    return "GPU" if gpu_available() else "CPU"


@dataclass(frozen=True)
class Sampled:
    counts: dict[str, int]
    memory: list[str] | None
    """Every shot's outcome in order, in the format of the counts keys; None unless asked."""


def run(
    circuit: QuantumCircuit, noise: NoiseModel | None, chosen: Plan, shots: int, seed: int, *, memory: bool
) -> Sampled:
    simulator = AerSimulator(
        method=chosen.method, device=chosen.device, noise_model=noise, seed_simulator=seed, **chosen.options
    )
    try:
        # memory=False is Aer's default: a run that does not ask for memory is the run it always was.
        result = simulator.run(end_anchored(circuit), shots=shots, memory=memory).result()
    except Exception as exc:
        raise SimulationFailed(ErrorCode.SIMULATION_ERROR, f"Aer could not run the circuit: {exc}") from None
    if not result.success:
        status = getattr(result, "status", "") or ""
        code = ErrorCode.OUT_OF_MEMORY if "memory" in status.lower() else ErrorCode.SIMULATION_ERROR
        raise SimulationFailed(code, f"Aer reported failure: {status}")
    counts = {str(k): int(v) for k, v in result.get_counts(0).items()}
    return Sampled(counts=counts, memory=[str(m) for m in result.get_memory(0)] if memory else None)


def end_anchored(circuit: QuantumCircuit) -> QuantumCircuit:
    """The circuit with a 1-qubit probability save at its end where it holds control flow.

    Measured with Aer 0.18.2: Aer lowers a control-flow op to jumps and marks, and its truncation drops
    the end mark of the last op when nothing after it needs simulating (a circuit ending in `while`, or in
    an `if` that measures), which fails the run with "Invalid jump destination". A save on one of that
    op's qubits keeps the tail; it reads the state, so the counts and memory are unchanged
    (tests/unit/runner/test_dynamic_circuits.py pins both)."""
    last = next((inst for inst in reversed(circuit.data) if isinstance(inst.operation, ControlFlowOp)), None)
    if last is None or not last.qubits:
        return circuit
    anchored = circuit.copy()
    anchored.append(SaveProbabilities(1, label="_vqpu_end"), [last.qubits[0]])
    return anchored
