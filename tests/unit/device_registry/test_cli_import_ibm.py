"""`vqpu-devices import-ibm`: an operator turns IBM's backend files into a snapshot, and every mistake
with those files is named (which file, what is wrong) with exit status 2, never a traceback."""

from __future__ import annotations

import gzip
import json
import shutil
from importlib import resources
from pathlib import Path

import pytest

from device_registry import catalog, parse_snapshot
from device_registry.cli import main

DATA = Path(str(resources.files("device_registry") / "data" / "ibm"))
PROPS, CONF = DATA / "props_fez.json.gz", DATA / "conf_fez.json.gz"


def _fails(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    try:
        status = main(["import-ibm", *args])
    except SystemExit as exc:  # argparse refuses bad option values itself, with status 2
        status = int(exc.code or 0)
    assert status == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and captured.out == ""
    return captured.err


def test_without_a_device_id_the_backend_name_gives_the_catalogue_spelling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fez.json"
    assert main(["import-ibm", str(PROPS), str(CONF), "--out", str(out)]) == 0
    snapshot = parse_snapshot(out.read_text())
    assert snapshot.device_id == "ibm-fez"
    assert snapshot.sha256() == catalog.load("ibm-fez").sha256()
    err = capsys.readouterr().err
    assert f"wrote {out}: ibm-fez epoch 0, 156 qubits, 176 edges (7 unavailable), sha256 {snapshot.sha256()}" in err


def test_without_out_the_canonical_snapshot_goes_to_stdout_under_the_id_and_epoch_given(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["import-ibm", str(PROPS), str(CONF), "--device-id", "fez-copy", "--epoch", "3"]) == 0
    snapshot = parse_snapshot(capsys.readouterr().out)
    assert (snapshot.device_id, snapshot.epoch, snapshot.num_qubits) == ("fez-copy", 3, 156)


def test_gzipped_files_are_read_whatever_their_names_say(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    props, conf = tmp_path / "props.json", tmp_path / "conf.json"
    shutil.copy(PROPS, props)  # gzip bytes under a .json name, as a download often is
    conf.write_text(gzip.decompress(CONF.read_bytes()).decode())
    assert main(["import-ibm", str(props), str(conf)]) == 0
    assert parse_snapshot(capsys.readouterr().out).sha256() == catalog.load("ibm-fez").sha256()


def test_files_in_the_wrong_order_are_named_as_swapped(capsys: pytest.CaptureFixture[str]) -> None:
    err = _fails([str(CONF), str(PROPS)], capsys)
    assert f"PROPS file {CONF} lacks 'qubits' and 'gates'; it looks like a CONF file: the order is PROPS CONF" in err


def test_properties_and_configuration_of_different_backends_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    err = _fails([str(PROPS), str(DATA / "conf_kingston.json.gz")], capsys)
    assert "properties of ibm_fez" in err and "configuration of ibm_kingston" in err


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"{not json", "not JSON (or gzipped JSON)"),
        (b"[1, 2]", "holds a JSON list, not an IBM backend object"),
        (gzip.compress(b'{"qubits": []')[:-8], "not JSON (or gzipped JSON)"),  # a truncated download
        ("{}".encode("utf-16"), "not JSON (or gzipped JSON)"),
        (b'{"backend_name": "ibm_fez", "qubits": []}', "lacks 'qubits' and 'gates'"),
    ],
)
def test_a_props_file_that_is_not_ibm_properties_is_named_with_what_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, says: str
) -> None:
    bad = tmp_path / "props.json.gz"
    bad.write_bytes(content)
    err = _fails([str(bad), str(CONF)], capsys)
    assert f"PROPS file {bad}" in err and says in err


def test_a_missing_conf_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _fails([str(PROPS), str(tmp_path / "conf.json")], capsys)
    assert f"cannot read CONF file {tmp_path / 'conf.json'}: No such file or directory" in err


def test_malformed_calibration_inside_a_well_formed_file_is_reported_by_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    props = json.loads(gzip.decompress(PROPS.read_bytes()))
    props["gates"][4]["qubits"] = "zero"
    bad = tmp_path / "props.json"
    bad.write_text(json.dumps(props))
    assert "props gates[4] is malformed" in _fails([str(bad), str(CONF)], capsys)


@pytest.mark.parametrize(
    ("option", "says"),
    [(["--device-id", "IBM_Fez"], "is not a device id"), (["--epoch", "-1"], "is not an epoch")],
)
def test_bad_option_values_are_refused_before_anything_is_read(
    capsys: pytest.CaptureFixture[str], option: list[str], says: str
) -> None:
    assert says in _fails([str(PROPS), str(CONF), *option], capsys)


def test_an_output_that_cannot_be_written_is_an_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "no-such-dir" / "fez.json"
    assert f"cannot write {target}" in _fails([str(PROPS), str(CONF), "--out", str(target)], capsys)
