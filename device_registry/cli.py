"""`vqpu-devices`: look at the bundled devices, import IBM calibration files, check a circuit offline.

    vqpu-devices list
    vqpu-devices show NAME [--json]
    vqpu-devices import-ibm PROPS CONF [--device-id ID] [--epoch N] [--out FILE]
    vqpu-devices check NAME CIRCUIT_FILE [--dialect qasm2|qasm3]

Exit codes: 0 success (for `check`: the circuit is admissible), 1 not admissible, 2 bad input.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
from pathlib import Path
from typing import Any

from device_registry import admissibility, catalog, ibm
from device_registry.errors import ImportFailed, RegistryError
from device_registry.snapshot import Snapshot


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.command(args))
    except RegistryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _list(args: argparse.Namespace) -> int:
    rows: list[tuple[str, ...]] = []
    for name in catalog.names():
        s = catalog.load(name)
        calibrated = any(q.error_1q is not None or q.t1 is not None for q in s.qubits)
        broken = sum(not e.available for e in s.edges)
        offline = sum(not q.online for q in s.qubits)
        rows.append(
            (
                name,
                str(s.num_qubits),
                str(len(s.edges)),
                ",".join(s.native_gates),
                "yes" if calibrated else "ideal",
                f"{broken} edges, {offline} qubits",
            )
        )
    _table(("device", "qubits", "edges", "native gates", "calibrated", "unavailable"), rows)
    return 0


def _show(args: argparse.Namespace) -> int:
    s = catalog.load(args.name)
    if args.json:
        print(s.canonical_json().decode())
        return 0
    source = s.source
    print(f"{s.device_id}  epoch {s.epoch}  sha256 {s.sha256()}")
    if source is not None:
        print(f"source: {source.kind} {source.name or ''} {source.last_update_date or ''}".rstrip())
    print(f"{s.num_qubits} qubits, {len(s.edges)} {'directed' if s.directed else 'undirected'} edges")
    print(f"native gates: {', '.join(s.native_gates)}; directives: {', '.join(s.directives)}")
    offline = [q.index for q in s.qubits if not q.online]
    broken = [(e.source, e.target) for e in s.edges if not e.available]
    print(f"offline qubits: {offline or 'none'}")
    print(f"unavailable edges: {broken or 'none'}")
    for label, values in (
        ("T1 (s)", [q.t1 for q in s.qubits]),
        ("T2 (s)", [q.t2 for q in s.qubits]),
        ("1-qubit error", [q.error_1q for q in s.qubits]),
        ("readout error", [q.readout_error for q in s.qubits]),
        ("2-qubit error", [e.error for e in s.edges if e.available]),
    ):
        known = sorted(v for v in values if v is not None)
        if known:
            print(f"{label}: median {known[len(known) // 2]:.3g}, min {known[0]:.3g}, max {known[-1]:.3g}")
        else:
            print(f"{label}: ideal (null)")
    return 0


def _import_ibm(args: argparse.Namespace) -> int:
    props = _ibm_document(args.props, "PROPS")
    conf = _ibm_document(args.conf, "CONF")
    names = {role: doc.get("backend_name") for role, doc in (("props", props), ("conf", conf))}
    if names["props"] and names["conf"] and names["props"] != names["conf"]:
        raise ImportFailed(
            f"{args.props} is the properties of {names['props']} but {args.conf} is the configuration of "
            f"{names['conf']}: both must come from the same backend"
        )
    device_id = args.device_id or _device_id_of(names["props"] or names["conf"])
    s = ibm.from_ibm(props, conf, device_id=device_id, epoch=args.epoch)
    text = s.canonical_json().decode()
    if args.output is None:
        print(text)
        return 0
    try:
        args.output.write_text(text + "\n")
    except OSError as exc:
        raise ImportFailed(f"cannot write {args.output}: {exc}") from exc
    broken = sum(not e.available for e in s.edges)
    print(
        f"wrote {args.output}: {s.device_id} epoch {s.epoch}, {s.num_qubits} qubits, {len(s.edges)} edges "
        f"({broken} unavailable), sha256 {s.sha256()}",
        file=sys.stderr,
    )
    return 0


_GZIP_MAGIC = b"\x1f\x8b"
_ROLE_KEYS = {"PROPS": ("qubits", "gates"), "CONF": ("n_qubits", "basis_gates")}


def _ibm_document(path: Path, role: str) -> dict[str, Any]:
    """One IBM JSON file, gzipped or not whatever its name says, checked to be the kind its position asks for."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ImportFailed(f"cannot read {role} file {path}: {exc.strerror or exc}") from exc
    try:
        if raw.startswith(_GZIP_MAGIC):
            raw = gzip.decompress(raw)
        data = json.loads(raw.decode("utf-8"))
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImportFailed(f"cannot read {role} file {path}: not JSON (or gzipped JSON): {exc}") from exc
    if not isinstance(data, dict):
        raise ImportFailed(f"{role} file {path} holds a JSON {type(data).__name__}, not an IBM backend object")
    wanted = _ROLE_KEYS[role]
    if not all(key in data for key in wanted):
        other = next(r for r in _ROLE_KEYS if r != role)
        swapped = all(key in data for key in _ROLE_KEYS[other])
        hint = f"; it looks like a {other} file: the order is PROPS CONF" if swapped else ""
        raise ImportFailed(f"{role} file {path} lacks {' and '.join(repr(k) for k in wanted)}{hint}")
    return data


def _device_id_of(backend_name: object) -> str:
    """IBM's `ibm_fez` becomes `ibm-fez`, the catalogue's spelling."""
    if not isinstance(backend_name, str) or not backend_name:
        raise ImportFailed("the files name no backend (no backend_name): give --device-id")
    device_id = backend_name.strip().lower().replace("_", "-")
    if not _DEVICE_ID.fullmatch(device_id):
        raise ImportFailed(f"backend name {backend_name!r} does not make a device id: give --device-id")
    return device_id


def _check(args: argparse.Namespace) -> int:
    s: Snapshot = catalog.load(args.name)
    try:
        source = args.circuit.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: cannot read {args.circuit}: {exc}", file=sys.stderr)
        return 2
    dialect = args.dialect or ("qasm3" if source.lstrip().startswith("OPENQASM 3") else "qasm2")
    violations = admissibility.check(source, dialect, s)
    if not violations:
        print(f"{args.circuit}: admissible on {s.device_id} ({dialect})")
        return 0
    for v in violations:
        where = f"{args.circuit}:{v.line}" if v.line is not None else str(args.circuit)
        print(f"{where}: {v.code}: {v.message}")
    if len(violations) >= admissibility.MAX_VIOLATIONS:
        print(f"(stopped after {admissibility.MAX_VIOLATIONS} violations)")
    return 1


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


_DEVICE_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def _device_id_arg(text: str) -> str:
    if not _DEVICE_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a device id: lower-case letters, digits, '.', '_' and '-', at most 64"
        )
    return text


def _epoch_arg(text: str) -> int:
    try:
        epoch = int(text)
    except ValueError:
        epoch = -1
    if epoch < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not an epoch (an integer >= 0)")
    return epoch


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vqpu-devices", description="HPC-vQPU device registry")
    sub = parser.add_subparsers(dest="verb", required=True)
    sub.add_parser("list", help="the bundled catalogue").set_defaults(command=_list)
    show = sub.add_parser("show", help="one device: graph, faults and calibration summary")
    show.add_argument("name")
    show.add_argument("--json", action="store_true", help="print the canonical snapshot JSON")
    show.set_defaults(command=_show)
    imp = sub.add_parser("import-ibm", help="IBM backend props/conf JSON (.json or .json.gz) -> snapshot JSON")
    imp.add_argument("props", type=Path, help="the backend's properties (calibration) JSON")
    imp.add_argument("conf", type=Path, help="the backend's configuration JSON")
    imp.add_argument("--device-id", type=_device_id_arg, help="default: the backend's name, ibm_fez -> ibm-fez")
    imp.add_argument("--epoch", type=_epoch_arg, default=0, help="the snapshot's epoch (default 0)")
    imp.add_argument(
        "-o", "--out", "--output", dest="output", type=Path, metavar="FILE", help="write here (default: stdout)"
    )
    imp.set_defaults(command=_import_ibm)
    chk = sub.add_parser("check", help="the admission check of a circuit file against a bundled device")
    chk.add_argument("name")
    chk.add_argument("circuit", type=Path)
    chk.add_argument("--dialect", choices=admissibility.DIALECTS, help="default: from the OPENQASM line")
    chk.set_defaults(command=_check)
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
