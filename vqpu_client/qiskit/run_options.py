"""The run options IBM's backends and Aer define that the service has no use for: accepted where they change
nothing a simulation of the device returns, refused (`RunOptionsError`, naming the option and why) where
honouring them would change it. Tools such as qiskit-experiments and mthree pass them to every backend.

`job_tags` is the one that is recorded: it becomes the tags of the run's tasks.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from qiskit.result.models import MeasLevel, MeasReturnType

from vqpu_client.qiskit.errors import RunOptionsError
from vqpu_protocol.limits import MAX_TAG_CHARS, MAX_TAGS

DEFAULTS: dict[str, Any] = {
    "meas_level": MeasLevel.CLASSIFIED,
    "meas_return": MeasReturnType.AVERAGE,
    "memory_slots": None,
    "memory_slot_size": 100,
    "rep_time": None,
    "rep_delay": None,
    "init_qubits": True,
    "use_measure_esp": None,
    "use_fractional_gates": False,
    "job_tags": None,
    "parameter_binds": None,
    "noise_model": None,
}
"""IBM's defaults (qiskit-ibm-runtime's `IBMBackend`), which are what a tool that forwards them passes."""


def _meas_level(value: Any) -> str | None:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) == MeasLevel.CLASSIFIED:
        return None
    return (
        f"meas_level {value!r} is not available: the service returns classified bits only (meas_level 2, "
        "MeasLevel.CLASSIFIED); raw (0) and kerneled (1) IQ data do not exist in a simulation of the device"
    )


def _meas_return(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value in {m.value for m in MeasReturnType}):
        return None
    return f"meas_return must be 'avg' or 'single' (ignored under meas_level 2), not {value!r}"


def _non_negative(name: str, unit: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value is None or (isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value) >= 0):
            return None
        return f"{name} must be None or a number of {unit} at least 0 (ignored by the service), not {value!r}"

    return check


def _init_qubits(value: Any) -> str | None:
    if value is None or value is True:
        return None
    return (
        f"init_qubits={value!r} cannot be honoured: every shot of a simulation starts from |0...0>, "
        "so a run that keeps the previous shot's state cannot be reproduced; leave init_qubits=True"
    )


def _flag(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    return f"use_measure_esp must be a bool or None, not {value!r}"


def _fractional_gates(value: Any) -> str | None:
    if value is None or value is False:
        return None
    return (
        "use_fractional_gates=True cannot be honoured: the backend's gates are the device's native gates from its "
        "snapshot (backend.target); transpile against it"
    )


def _job_tags(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence) or not all(isinstance(t, str) for t in value):
        return f"job_tags must be a list of strings, not {value!r}"
    if len(value) > MAX_TAGS or any(not 0 < len(t) <= MAX_TAG_CHARS for t in value):
        return (
            f"job_tags become the tasks' tags: at most {MAX_TAGS}, each 1 to {MAX_TAG_CHARS} characters, "
            f"not {list(value)!r}"
        )
    return None


def _parameter_binds(value: Any) -> str | None:
    if value is None or (isinstance(value, Sequence | Mapping) and len(value) == 0):
        return None
    return (
        "parameter_binds is not supported: bind the parameters with circuit.assign_parameters(...) before running, "
        "or use qiskit.primitives.BackendSamplerV2, which binds them itself"
    )


def _noise_model(value: Any) -> str | None:
    if value is None:
        return None
    return (
        f"noise_model={_shown(value)} cannot be honoured: the service derives noise from the device's calibration "
        "(its snapshot) and cannot take an Aer NoiseModel; choose how with vqpu_noise_model='paper' or "
        "'relaxation', and scale or disable channels with noise={...}"
    )


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str | numbers.Number) else f"<{type(value).__name__}>"


CHECKS: dict[str, Callable[[Any], str | None]] = {
    "meas_level": _meas_level,
    "meas_return": _meas_return,
    "memory_slots": _non_negative("memory_slots", "slots"),
    "memory_slot_size": _non_negative("memory_slot_size", "samples"),
    "rep_time": _non_negative("rep_time", "seconds"),
    "rep_delay": _non_negative("rep_delay", "seconds"),
    "init_qubits": _init_qubits,
    "use_measure_esp": _flag,
    "use_fractional_gates": _fractional_gates,
    "job_tags": _job_tags,
    "parameter_binds": _parameter_binds,
    "noise_model": _noise_model,
}


def check(options: Mapping[str, Any], device: str) -> tuple[str, ...]:
    """Refuse what cannot be honoured (`RunOptionsError`); return the tags the run's tasks get (`job_tags`)."""
    for name, rule in CHECKS.items():
        problem = rule(options.get(name))
        if problem is not None:
            raise RunOptionsError(f"{device}: {problem}")
    return tuple(options.get("job_tags") or ())
