"""The runner CLI called in this process: replay, placement, dialects, options, typed failures.

The same CLI started as a separate `python -m runner` process, as a scheduler job starts it, is in tests/e2e.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from device_registry import Snapshot, topologies
from harness.circuits import amplified_identity, qasm2
from runner.cli import main
from tests.conftest import MakeRunDir
from vqpu_protocol.limits import MAX_SHOTS

BELL = qasm2("sx q[0];\ncz q[0],q[1];\nsx q[1];\nmeasure q -> c;")


def _result(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())


def _error(run_dir: Path) -> dict:
    return json.loads((run_dir / "error.json").read_text())


def test_the_same_run_dir_and_seed_replay_to_identical_counts(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    run_dir = make_run_dir(amplified_identity(10), fez, shots=4096, seed=99)
    assert main([str(run_dir)]) == 0
    first = _result(run_dir)["counts"]
    assert main([str(run_dir)]) == 0
    assert _result(run_dir)["counts"] == first
    other = make_run_dir(amplified_identity(10), fez, shots=4096, seed=100)
    assert main([str(other)]) == 0
    assert _result(other)["counts"] != first


def test_a_run_without_a_seed_records_the_seed_it_drew_so_it_can_be_replayed(
    make_run_dir: MakeRunDir, fez: Snapshot
) -> None:
    run_dir = make_run_dir(amplified_identity(5), fez, shots=3000, seed=None)
    assert main([str(run_dir)]) == 0
    drawn = _result(run_dir)["provenance"]
    assert drawn["seed_source"] == "runner"
    replay = make_run_dir(amplified_identity(5), fez, shots=3000, seed=drawn["seed"])
    assert main([str(replay)]) == 0
    assert _result(replay)["counts"] == _result(run_dir)["counts"]


def test_the_ideal_twin_returns_exactly_the_ideal_output(make_run_dir: MakeRunDir, fez_ideal: Snapshot) -> None:
    run_dir = make_run_dir(amplified_identity(20), fez_ideal, shots=8192)
    assert main([str(run_dir)]) == 0
    result = _result(run_dir)
    assert result["counts"] == {"00": 8192}
    assert result["provenance"]["noise_empty"] is True


def test_a_native_circuit_runs_on_exactly_the_qubits_it_names(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    source = qasm2("x q[7];\ncz q[7],q[8];\nmeasure q[7] -> c[0];\nmeasure q[8] -> c[1];", qubits=9)
    run_dir = make_run_dir(source, fez)
    assert main([str(run_dir)]) == 0
    prov = _result(run_dir)["provenance"]
    assert prov["transpile"] == "native"
    assert prov["active_qubits"] == [7, 8]


def test_a_non_native_circuit_is_translated_on_the_same_qubits(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    source = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[6];\ncreg c[2];\nh q[4];\ncx q[4],q[5];\n'
    source += "measure q[4] -> c[0];\nmeasure q[5] -> c[1];\n"
    run_dir = make_run_dir(source, fez, shots=4000)
    assert main([str(run_dir)]) == 0
    result = _result(run_dir)
    assert result["provenance"]["transpile"] == "basis-translation"
    assert result["provenance"]["active_qubits"] == [4, 5]
    correlated = result["counts"].get("00", 0) + result["counts"].get("11", 0)
    assert correlated / 4000 > 0.9


def test_openqasm3_physical_qubits_address_device_qubits(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    source = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nbit[2] c;\nx $3;\ncz $3, $4;\n'
    source += "c[0] = measure $3;\nc[1] = measure $4;\n"
    run_dir = make_run_dir(source, fez, dialect="qasm3", shots=2000)
    assert main([str(run_dir)]) == 0
    result = _result(run_dir)
    assert result["provenance"]["active_qubits"] == [3, 4]
    assert max(result["counts"], key=result["counts"].get) == "01"


def test_openqasm3_native_gates_need_no_include_even_outside_stdgates(make_run_dir: MakeRunDir, tmp_path: Path) -> None:
    """A device's native gates are its vocabulary in OpenQASM 3 too, `ecr` (not in stdgates.inc) included."""
    ecr_device = topologies.from_edges(3, [(1, 0)], directed=True, two_qubit_gate="ecr", device_id="ecr-3")
    source = "OPENQASM 3.0;\nbit[2] c;\nx $1;\necr $1, $0;\nc[0] = measure $0;\nc[1] = measure $1;\n"
    run_dir = make_run_dir(source, ecr_device, dialect="qasm3", shots=500)
    assert main([str(run_dir)]) == 0
    result = _result(run_dir)
    assert result["provenance"]["transpile"] == "native"
    assert sum(result["counts"].values()) == 500
    with_include = source.replace("bit[2] c;", 'include "stdgates.inc";\nbit[2] c;')
    assert main([str(make_run_dir(with_include, ecr_device, dialect="qasm3", shots=500))]) == 0


def test_openqasm3_redefining_a_native_gate_is_a_parse_error(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    source = "OPENQASM 3.0;\nbit[1] c;\ngate sx a { x a; }\nsx $0;\nc[0] = measure $0;\n"
    run_dir = make_run_dir(source, fez, dialect="qasm3")
    assert main([str(run_dir)]) == 2
    assert _error(run_dir)["code"] == "PARSE_ERROR"


def test_the_relaxation_option_is_applied_and_recorded(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    run_dir = make_run_dir(BELL, fez, options={"noise_model": "relaxation"})
    assert main([str(run_dir)]) == 0
    assert _result(run_dir)["provenance"]["noise_model"] == "relaxation"


def _offline_fez(fez: Snapshot) -> Snapshot:
    raw = fez.model_dump(by_alias=True)
    raw["qubits"][2]["status"] = "OFFLINE"
    return Snapshot.model_validate(raw)


BAD_PAYLOADS = {
    "malformed QASM": (qasm2("cz q[0] q[1];\nmeasure q -> c;"), {}, "PARSE_ERROR"),
    "unknown dialect": (BELL, {"dialect": "quil"}, "UNKNOWN_DIALECT"),
    "zero shots": (BELL, {"shots": 0}, "INVALID_SHOTS"),
    "negative shots": (BELL, {"shots": -5}, "INVALID_SHOTS"),
    "absurd shots": (BELL, {"shots": MAX_SHOTS + 1}, "INVALID_SHOTS"),
    "unknown option": (BELL, {"options": {"noise": "paper"}}, "INVALID_OPTIONS"),
    "unknown noise model": (BELL, {"options": {"noise_model": "magic"}}, "INVALID_OPTIONS"),
    "uncoupled pair": (qasm2("cz q[0],q[5];\nmeasure q[0] -> c[0];", qubits=6), {}, "NOT_ADMISSIBLE"),
    "no measurement": (qasm2("x q[0];"), {}, "NO_MEASUREMENTS"),
    "more qubits than the device": (qasm2("x q[0];\nmeasure q[0] -> c[0];", qubits=157), {}, "NOT_ADMISSIBLE"),
}


def _rewrite_task(run_dir: Path, **changes: object) -> None:
    task = json.loads((run_dir / "task.json").read_text())
    task.update(changes)
    (run_dir / "task.json").write_text(json.dumps(task))


@pytest.mark.parametrize("case", list(BAD_PAYLOADS))
def test_a_bad_payload_gets_a_typed_error_and_exit_2(make_run_dir: MakeRunDir, fez: Snapshot, case: str) -> None:
    circuit, fields, code = BAD_PAYLOADS[case]
    run_dir = make_run_dir(BELL, fez)
    _rewrite_task(run_dir, circuit=circuit, **fields)
    assert main([str(run_dir)]) == 2
    error = _error(run_dir)
    assert error["code"] == code
    assert error["message"]
    assert not (run_dir / "result.json").exists()


def test_an_offline_qubit_is_refused_not_moved(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    run_dir = make_run_dir(qasm2("x q[2];\nmeasure q[2] -> c[0];", qubits=3), _offline_fez(fez))
    assert main([str(run_dir)]) == 2
    error = _error(run_dir)
    assert error["code"] == "NOT_ADMISSIBLE"
    assert error["detail"][0]["code"] == "QUBIT_OFFLINE"


def test_a_snapshot_that_is_not_the_bound_one_is_refused(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    run_dir = make_run_dir(BELL, fez)
    other = fez.with_epoch(fez.epoch + 1)
    (run_dir / "snapshot.json").write_bytes(other.canonical_json())
    assert main([str(run_dir)]) == 2
    error = _error(run_dir)
    assert error["code"] == "SNAPSHOT_MISMATCH"
    assert error["detail"] == {"expected": fez.sha256(), "actual": other.sha256()}


@pytest.mark.parametrize(
    ("damage", "code"),
    [
        (lambda d: (d / "task.json").unlink(), "MISSING_FILE"),
        (lambda d: (d / "snapshot.json").unlink(), "MISSING_FILE"),
        (lambda d: (d / "task.json").write_text("{not json"), "INVALID_JSON"),
        (lambda d: (d / "task.json").write_text("[1, 2]"), "INVALID_TASK"),
        (lambda d: (d / "snapshot.json").write_text('{"schema": "vqpu.snapshot/1"}'), "INVALID_SNAPSHOT"),
    ],
    ids=["no task.json", "no snapshot.json", "task not JSON", "task not an object", "snapshot invalid"],
)
def test_damaged_run_dirs_get_typed_errors(make_run_dir: MakeRunDir, fez: Snapshot, damage, code: str) -> None:
    run_dir = make_run_dir(BELL, fez)
    damage(run_dir)
    assert main([str(run_dir)]) == 2
    assert _error(run_dir)["code"] == code


def test_a_failed_rerun_replaces_the_stale_result(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    run_dir = make_run_dir(BELL, fez)
    assert main([str(run_dir)]) == 0
    _rewrite_task(run_dir, shots=0)
    assert main([str(run_dir)]) == 2
    assert not (run_dir / "result.json").exists()
    assert _error(run_dir)["code"] == "INVALID_SHOTS"
