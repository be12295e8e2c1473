"""`vqpu-devices`: what an operator sees from the registry's command line."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from device_registry import catalog, parse_snapshot
from device_registry.cli import main

DATA = Path(str(resources.files("device_registry") / "data" / "ibm"))


def test_list_shows_every_bundled_device_with_its_faults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in out[1:]}
    assert sorted(rows) == catalog.names()
    assert "156" in rows["ibm-fez"] and "7 edges, 0 qubits" in rows["ibm-fez"]
    assert "ideal" in rows["ibm-fez-ideal"] and "yes" in rows["ibm-fez"]


def test_show_json_is_the_canonical_snapshot(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "ibm-fez", "--json"]) == 0
    shown = parse_snapshot(capsys.readouterr().out)
    assert shown.sha256() == catalog.load("ibm-fez").sha256()


def test_show_summarises_calibration_in_si_units(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "ibm-fez"]) == 0
    out = capsys.readouterr().out
    assert catalog.load("ibm-fez").sha256() in out
    assert "unavailable edges: [(27, 28)" in out
    t1_median = float(next(line for line in out.splitlines() if line.startswith("T1")).split()[3].rstrip(","))
    assert 1e-5 < t1_median < 1e-3  # seconds, not microseconds


def test_unknown_device_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "ibm-nowhere"]) == 2
    err = capsys.readouterr().err
    assert "ibm-nowhere" in err and "ibm-fez" in err


def test_import_ibm_writes_the_same_snapshot_the_catalogue_loads(tmp_path: Path) -> None:
    out = tmp_path / "fez.json"
    args = ["import-ibm", str(DATA / "props_fez.json.gz"), str(DATA / "conf_fez.json.gz"), "--device-id", "ibm-fez"]
    assert main([*args, "-o", str(out)]) == 0
    assert parse_snapshot(out.read_text()).sha256() == catalog.load("ibm-fez").sha256()


def test_import_ibm_of_a_broken_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "props.json"
    broken.write_text("{not json")
    assert main(["import-ibm", str(broken), str(DATA / "conf_fez.json.gz"), "--device-id", "x"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_check_reports_violations_with_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = tmp_path / "good.qasm", tmp_path / "bad.qasm"
    good.write_text("OPENQASM 3.0;\nsx $0;\ncz $0, $1;\n")
    bad.write_text("OPENQASM 3.0;\nsx $0;\ncz $0, $2;\nh $1;\n")
    assert main(["check", "ibm-fez", str(good)]) == 0
    assert "admissible on ibm-fez (qasm3)" in capsys.readouterr().out
    assert main(["check", "ibm-fez", str(bad)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"{bad}:3: NO_COUPLING: qubits 0 and 2 are not coupled on ibm-fez",
        f"{bad}:4: UNKNOWN_GATE: h is not a native gate of ibm-fez (native: cz, id, rz, sx, x)",
    ]


def test_check_of_a_missing_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "ibm-fez", str(tmp_path / "nope.qasm")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_the_json_of_show_round_trips_through_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "line-16", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["num_qubits"] == 16 and data["schema"] == "vqpu.snapshot/1"
