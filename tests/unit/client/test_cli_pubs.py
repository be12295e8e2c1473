"""`vqpu submit --pubs FILE`, PUB results as `vqpu result` shows them, and a PUB task's replay compared PUB by
PUB and binding by binding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.client.test_primitives import result_document
from vqpu_client.cli import main
from vqpu_client.cli.exits import CliError, Exit
from vqpu_client.cli.replay import compare, pinned_pubs, report_lines
from vqpu_client.cli.tasks import result_lines
from vqpu_protocol import pubs as wire
from vqpu_protocol.rundir import ResultDocument

CIRCUIT = "OPENQASM 3.0;\ninput float[64] t;\nbit[2] c;\nqubit[2] q;\nrx(t) q[0];\nc = measure q;\n"


def _refuse(url: str, key: str) -> Any:
    raise AssertionError("a bad PUB file must not reach for a client")


def _sampler(counts: list[dict[str, int]], shape: list[int], shots: int = 100) -> ResultDocument:
    pubs = {
        "kind": "sampler",
        "pubs": [
            {"shape": shape, "shots": shots, "registers": [{"name": "c", "num_bits": 2}], "counts": counts},
            {"shape": [], "shots": 10, "registers": [{"name": "c", "num_bits": 2}], "counts": [{"11": 10}]},
        ],
    }
    return ResultDocument.model_validate(result_document("t-1", pubs))


def _estimator(evs: list[float]) -> ResultDocument:
    pubs = {"kind": "estimator", "pubs": [{"shape": [2, 2], "evs": evs, "stds": [0.0] * 4, "precision": 0.0}]}
    return ResultDocument.model_validate(result_document("t-1", pubs))


def test_a_sampler_result_shows_each_pubs_counts_per_binding_by_its_index() -> None:
    lines = result_lines(_sampler([{"00": 60, "11": 40}, {"01": 100}, {"10": 1, "00": 99}, {"11": 100}], [2, 2]))
    text = "\n".join(lines)
    assert lines[0] == "t-1  sampler task of 2 PUBs on line-4 epoch 3 (sha256 aaaaaaaaaaaa)"
    assert "PUB 0: 4 bindings of shape [2, 2], 100 shots each; registers c[2]" in text
    assert "  [0, 0]  00: 60 (0.6000)  11: 40 (0.4000)" in lines
    assert "  [1, 0]  00: 99 (0.9900)  10: 1 (0.0100)" in lines
    assert "PUB 1: 1 binding of shape [], 10 shots each; registers c[2]" in text and "  []  11: 10 (1.0000)" in lines
    assert "epoch      3" in lines


def test_an_estimator_result_shows_each_value_with_its_standard_error() -> None:
    lines = result_lines(_estimator([-1.0, 0.5, 0.25, 1e-7]))
    assert "PUB 0: 4 values of shape [2, 2], precision 0" in lines
    assert any(line.split() == ["[0,", "1]", "0.5", "0"] for line in lines)
    assert any(line.split() == ["[1,", "1]", "1e-07", "0"] for line in lines)


def test_a_pub_replay_is_identical_only_with_the_same_counts_for_every_binding() -> None:
    a = _sampler([{"00": 60, "11": 40}, {"01": 100}], [2])
    assert compare(a, a)["identical"]
    b = _sampler([{"00": 60, "11": 40}, {"01": 99, "00": 1}], [2])
    report = compare(a, b)
    assert not report["identical"]
    assert report["differences"] == [
        {"pub": 0, "binding": 1, "outcome": "00", "original": 0, "replay": 1},
        {"pub": 0, "binding": 1, "outcome": "01", "original": 100, "replay": 99},
    ]
    assert report_lines(a, b, report)[1] == "DIFFERENT: 2 counts differ"
    e = compare(_estimator([1.0, 2.0, 3.0, 4.0]), _estimator([1.0, 2.0, 3.0, 4.5]))
    assert e["differences"] == [{"pub": 0, "index": 3, "original": [4.0, 0.0], "replay": [4.5, 0.0]}]


def test_a_replay_takes_the_pubs_the_service_stored_and_refuses_ones_that_cannot_have_run() -> None:
    ran = _sampler([{"00": 100}, {"00": 100}], [2])
    assert isinstance(ran.pubs, wire.SamplerPubResults)
    stored = wire.SamplerPubs(
        pubs=[
            wire.SamplerPub(circuit=CIRCUIT, parameter_values=[[0.1], [0.2]], shape=[2], shots=100),
            wire.SamplerPub(circuit=CIRCUIT, parameter_values=[[0.3]], shape=[], shots=10),
        ]
    )
    assert [p.shots for p in pinned_pubs("t-1", ran.pubs, stored).pubs] == [100, 10]
    with pytest.raises(CliError, match="did not give its PUBs back"):
        pinned_pubs("t-1", ran.pubs, None)
    with pytest.raises(CliError, match="not t-1's"):
        pinned_pubs("t-1", ran.pubs, wire.SamplerPubs(pubs=stored.pubs[:1]))


def test_submit_takes_a_pubs_file_instead_of_a_circuit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sent: list[dict[str, Any]] = []

    class Client:
        def submit(self, device: str, circuit: str | None = None, **kwargs: Any) -> Any:
            sent.append({"device": device, "circuit": circuit, **kwargs})
            raise CliError(Exit.USAGE, "STOP", "stop here")

        def close(self) -> None:
            pass

    pubs = {"kind": "sampler", "pubs": [{"circuit": CIRCUIT, "parameter_values": [[0.5]]}]}
    path = tmp_path / "pubs.json"
    path.write_text(json.dumps(pubs))
    argv = ["submit", "--pubs", str(path), "--device", "d", "--shots", "100"]
    assert main(argv, environ={"VQPU_KEY": "k"}, make_client=lambda url, key: Client()) == Exit.USAGE  # type: ignore[arg-type,return-value]
    assert sent == [
        {"device": "d", "circuit": None, "pubs": pubs, "shots": 100, "seed": None, "epoch": None, "tags": [],
         "options": None, "idempotency_key": None}
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["submit", "c.qasm", "--pubs", "p.json", "--device", "d"], "not both"),
        (["submit", "--device", "d", "--shots", "1"], "give a circuit FILE or --pubs FILE"),
        (["submit", "c.qasm", "--device", "d"], "a circuit needs --shots"),
    ],
)
def test_a_submit_without_exactly_one_of_circuit_and_pubs_is_a_usage_error(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--json", *argv], environ={"VQPU_KEY": "k"}, make_client=_refuse) == Exit.USAGE
    assert said in json.loads(capsys.readouterr().err)["error"]["message"]


def test_a_pubs_file_that_is_not_json_is_a_usage_error_before_anything_is_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pubs.json"
    path.write_text("{not json")
    argv = ["--json", "submit", "--pubs", str(path), "--device", "d"]
    assert main(argv, environ={"VQPU_KEY": "k"}, make_client=_refuse) == Exit.USAGE
    error = json.loads(capsys.readouterr().err)["error"]
    assert error["code"] == "USAGE" and "is not JSON" in error["message"]
