"""Snapshot -> Qiskit `Target`: one pure function shared by the runner and the Qiskit backend.

Optional, like `qiskit_backend`: the `device_registry` package never imports it. OFFLINE qubits and
UNAVAILABLE edges carry no instructions, so the transpiler can never place work on them. Measure
properties carry `prob_meas1_prep0` / `prob_meas0_prep1` when the snapshot has both, which is how
Qiskit-Aer's `NoiseModel.from_backend` reads asymmetric readout from a Target.

Timing is the snapshot's and nothing else: the Target's `dt` is the snapshot's `dt`, and an
instruction's duration is the qubit's `gate_durations` entry (`measure`: the readout length) or the
edge's `duration`, so `backend.dt`, `instruction_durations` and ALAP/ASAP scheduling work where the
device declares timing. Where it declares none, dt and the durations stay None: the transpiler then
says a duration is missing rather than scheduling with a guess. `delay` has no properties: its
duration is its operand. The control-flow constructs the snapshot lists are declared as Qiskit declares
a real backend's (`if_else`, `for_loop`, ... as classes), so the transpiler keeps them.
"""

from __future__ import annotations

from qiskit.circuit import Delay, ForLoopOp, IfElseOp, Measure, Parameter, Reset, SwitchCaseOp, WhileLoopOp
from qiskit.circuit.library import get_standard_gate_name_mapping
from qiskit.providers import QubitProperties
from qiskit.transpiler import InstructionProperties, Target

from device_registry.errors import SnapshotError
from device_registry.snapshot import Qubit, Snapshot

_CONTROL_FLOW = {"if_else": IfElseOp, "for_loop": ForLoopOp, "while_loop": WhileLoopOp, "switch_case": SwitchCaseOp}

VIRTUAL_GATES = frozenset({"rz"})
"""Frame changes: no duration and no error on IBM hardware."""


class ReadoutProperties(InstructionProperties):  # type: ignore[misc]
    __slots__ = ("prob_meas0_prep1", "prob_meas1_prep0")

    def __new__(cls, *args: object, **kwargs: object) -> ReadoutProperties:
        kwargs.pop("prob_meas0_prep1", None)
        kwargs.pop("prob_meas1_prep0", None)
        return super().__new__(cls, *args, **kwargs)  # type: ignore[no-any-return]

    def __init__(
        self,
        duration: float | None = None,
        error: float | None = None,
        prob_meas0_prep1: float = 0.0,
        prob_meas1_prep0: float = 0.0,
    ) -> None:
        super().__init__(duration=duration, error=error)
        self.prob_meas0_prep1 = prob_meas0_prep1
        self.prob_meas1_prep0 = prob_meas1_prep0


def target_from_snapshot(snapshot: Snapshot) -> Target:
    """A new Target for `snapshot` on every call; callers that want one per snapshot cache it themselves."""
    gates = get_standard_gate_name_mapping()
    unknown = sorted(set(snapshot.native_gates) - set(gates))
    if unknown:
        raise SnapshotError(f"native gates {unknown} have no Qiskit standard gate")
    online = [q for q in snapshot.qubits if q.online]
    target = Target(
        description=snapshot.device_id,
        num_qubits=snapshot.num_qubits,
        dt=snapshot.dt,
        qubit_properties=[QubitProperties(t1=q.t1, t2=q.t2) for q in snapshot.qubits],
    )
    two_qubit = snapshot.two_qubit_gates()
    wrong = sorted(name for name in two_qubit if gates[name].num_qubits != 2)
    if wrong:
        raise SnapshotError(f"edges carry {wrong}, which are not two-qubit gates")
    for name in snapshot.native_gates:
        if gates[name].num_qubits == 1:
            target.add_instruction(gates[name], {(q.index,): _one_qubit(name, q) for q in online}, name=name)
    usable = {
        pair: edge
        for pair, edge in snapshot.couplings().items()
        if edge.available and snapshot.qubits[pair[0]].online and snapshot.qubits[pair[1]].online
    }
    for name in sorted(n for n in snapshot.native_gates if gates[n].num_qubits > 1):
        # A multi-qubit native gate runs only where an AVAILABLE edge carries it (possibly nowhere).
        props = {
            pair: InstructionProperties(error=e.error, duration=e.duration)
            for pair, e in usable.items()
            if e.gate == name
        }
        target.add_instruction(gates[name], props, name=name)
    target.add_instruction(Measure(), {(q.index,): _readout(q) for q in online})
    target.add_instruction(
        Reset(), {(q.index,): InstructionProperties(duration=q.gate_durations.get("reset")) for q in online}
    )
    target.add_instruction(Delay(Parameter("t")), {(q.index,): None for q in online})
    for name in snapshot.control_flow:  # the class, not an instance: any blocks, on any qubits
        target.add_instruction(_CONTROL_FLOW[name], name=name)
    return target


def _one_qubit(name: str, q: Qubit) -> InstructionProperties:
    if name in VIRTUAL_GATES:
        # A frame change takes no time, on a qubit whose timing is known at all: no duration is guessed.
        duration = q.gate_durations.get(name, 0.0 if q.gate_durations else None)
        return InstructionProperties(error=0.0 if q.error_1q is not None else None, duration=duration)
    return InstructionProperties(error=q.error_1q, duration=q.gate_durations.get(name))


def _readout(q: Qubit) -> InstructionProperties:
    duration = q.gate_durations.get("measure")
    if q.prob_meas0_prep1 is not None and q.prob_meas1_prep0 is not None:
        return ReadoutProperties(
            duration=duration,
            error=q.readout_error,
            prob_meas0_prep1=q.prob_meas0_prep1,
            prob_meas1_prep0=q.prob_meas1_prep0,
        )
    return InstructionProperties(error=q.readout_error, duration=duration)
