"""Per-shot memory (`options.memory`): the real runner returns it, the control plane admits, carries and
serves it, and both refuse one too big to report rather than truncate it."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from device_registry import Snapshot
from harness.circuits import qasm2
from harness.documents import result_document
from runner.cli import main
from tests.conftest import MakeRunDir
from tests.integration.control_plane.api_client import Api, error
from tests.integration.served_api import claim_one, complete, served_api
from vqpu_protocol.limits import MAX_MEMORY_CHARS, MAX_MEMORY_SHOTS
from vqpu_protocol.rundir import ResultDocument, materialise, read_outcome

BELL = qasm2("sx q[0];\ncz q[0],q[1];\nsx q[1];\nmeasure q -> c;")
TWO_REGISTERS = (
    "OPENQASM 2.0;\nqreg q[3];\ncreg a[1];\ncreg b[2];\nsx q[0];\nx q[2];\n"
    "measure q[0] -> a[0];\nmeasure q[1] -> b[0];\nmeasure q[2] -> b[1];\n"
)


def _read(run_dir: Path, name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((run_dir / name).read_text())
    return document


def _result(run_dir: Path) -> dict[str, Any]:
    return _read(run_dir, "result.json")


def _error(run_dir: Path) -> dict[str, Any]:
    return _read(run_dir, "error.json")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with served_api(tmp_path_factory.mktemp("memory-api")) as served:
        yield served


def test_memory_holds_every_shot_in_the_format_of_the_counts_keys(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    run_dir = make_run_dir(TWO_REGISTERS, fez, shots=1024, seed=11, options={"memory": True})
    assert main([str(run_dir)]) == 0
    result = _result(run_dir)
    memory = result["memory"]
    assert len(memory) == 1024
    assert Counter(memory) == result["counts"]
    # registers separated by a space, the last declared first, each register's highest bit first: Qiskit's order
    assert all(len(m) == 4 and m[2] == " " for m in memory)
    assert Counter(m[:2] for m in memory).most_common(1)[0][0] == "10"  # b = (q2=1, q1=0)
    assert {m[3] for m in memory} == {"0", "1"}  # a = q0 after sx: both outcomes


def test_the_same_seed_replays_the_same_memory_shot_for_shot(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    first = make_run_dir(BELL, fez, shots=512, seed=5, options={"memory": True})
    again = make_run_dir(BELL, fez, shots=512, seed=5, options={"memory": True})
    other = make_run_dir(BELL, fez, shots=512, seed=6, options={"memory": True})
    for run_dir in (first, again, other):
        assert main([str(run_dir)]) == 0
    assert _result(first)["memory"] == _result(again)["memory"]
    assert _result(first)["memory"] != _result(other)["memory"]


def test_asking_for_memory_leaves_the_counts_as_they_were(make_run_dir: MakeRunDir, fez: Snapshot) -> None:
    plain = make_run_dir(BELL, fez, shots=2048, seed=3)
    with_memory = make_run_dir(BELL, fez, shots=2048, seed=3, options={"memory": True})
    assert main([str(plain)]) == 0 and main([str(with_memory)]) == 0
    assert _result(plain)["memory"] is None
    assert _result(with_memory)["counts"] == _result(plain)["counts"]


def test_the_runner_refuses_a_memory_too_big_to_report_before_simulating(
    make_run_dir: MakeRunDir, fez_ideal: Snapshot
) -> None:
    width = MAX_MEMORY_CHARS // MAX_MEMORY_SHOTS + 1  # within the shot limit, over the character limit
    circuit = qasm2("measure q -> c;", qubits=width)
    run_dir = make_run_dir(circuit, fez_ideal, shots=MAX_MEMORY_SHOTS, options={"memory": True})
    assert main([str(run_dir)]) == 2
    err = _error(run_dir)
    assert err["code"] == "INVALID_OPTIONS" and "options.memory" in err["message"]
    assert err["detail"]["key_width"] == width and not (run_dir / "result.json").exists()
    fits = make_run_dir(circuit, fez_ideal, shots=MAX_MEMORY_CHARS // width, options={"memory": True})
    assert main([str(fits)]) == 0
    assert len(_result(fits)["memory"]) == MAX_MEMORY_CHARS // width


def test_a_submission_asking_memory_for_too_many_shots_is_invalid_options(api: Api) -> None:
    before = api.count()
    r = api.submit(
        device="ibm-fez", circuit=BELL, dialect="qasm2", shots=MAX_MEMORY_SHOTS + 1, options={"memory": True}
    )
    assert r.status_code == 400
    err = error(r)
    assert err["code"] == "INVALID_OPTIONS" and err["message"].endswith(": options.memory")
    assert str(MAX_MEMORY_SHOTS) in err["detail"][0]["msg"]
    assert api.count() == before
    ok = api.submit(device="ibm-fez", circuit=BELL, dialect="qasm2", shots=MAX_MEMORY_SHOTS + 1)
    assert ok.status_code == 201 and ok.json()["options"]["memory"] is False
    api.call("POST", f"/v1/tasks/{ok.json()['id']}/cancel")


def test_memory_from_the_real_runner_travels_through_the_control_plane(api: Api, tmp_path: Path) -> None:
    submitted = api.submit(
        device="ibm-fez", circuit=BELL, dialect="qasm2", shots=1024, seed=9, options={"memory": True}
    )
    assert submitted.status_code == 201 and submitted.json()["options"]["memory"] is True
    claimed = claim_one(api)
    assert claimed.task.options.memory is True
    run_dir = materialise(tmp_path / "run", claimed)
    assert main([str(run_dir)]) == 0
    outcome = read_outcome(run_dir)
    assert isinstance(outcome, ResultDocument) and outcome.memory is not None
    assert complete(api, claimed, outcome.model_dump(mode="json", by_alias=True)).status_code == 200
    served = api.call("GET", f"/v1/tasks/{claimed.task.id}/result").json()
    assert served["memory"] == outcome.memory and len(served["memory"]) == 1024


@pytest.mark.parametrize(
    ("shots", "width"),
    [
        (MAX_MEMORY_SHOTS, MAX_MEMORY_CHARS // MAX_MEMORY_SHOTS),  # the most shots, at most 1024 distinct keys
        (MAX_MEMORY_CHARS // 17, 17),  # every shot a different key: counts as large as memory
    ],
    ids=["most-shots", "all-distinct"],
)
def test_a_result_at_the_memory_limits_fits_the_default_report_body(api: Api, shots: int, width: int) -> None:
    # As many classical bits as the memory is wide: the control plane checks each outcome against the circuit.
    circuit = qasm2("measure q[0] -> c[0];", qubits=1, clbits=width)
    submitted = api.submit(device="ibm-fez", circuit=circuit, dialect="qasm2", shots=shots, options={"memory": True})
    assert submitted.status_code == 201
    claimed = claim_one(api)
    memory = [format(i % 2**width, f"0{width}b") for i in range(shots)]
    result = {**result_document(claimed.model_dump(mode="json"), dict(Counter(memory))), "memory": memory}
    assert complete(api, claimed, result).status_code == 200
    served = api.call("GET", f"/v1/tasks/{claimed.task.id}/result").json()
    assert served["memory"] == memory
