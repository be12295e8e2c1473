"""`python -m benchmarks.control_plane.run [--quick] [--databases sqlite,postgresql] [--out DIR]`.

For each database, a real `vqpu-server serve` (uvicorn, log level warning) on loopback on a fresh
database, measured over HTTP in one run, each series beside its baseline:

- the admission check's cost on hostile circuits (no `;`, unclosed comments, one long word, ...)
  and a valid program at 16 KB, 128 KB and 1 MiB, in-process: it must grow linearly;
- admission of a 1,000-gate native circuit on ibm-fez (`POST /v1/tasks`), beside the HTTP floor
  (`GET /v1/health`), the same check over `POST .../viability` (nothing stored) and in-process;
  once more with stalled SSE subscribers connected;
- dispatch from submit to claim with an agent long-polling, beside agents short-polling every 1 s
  and every 0.1 s;
- submit -> claim -> complete throughput with 8 agents, beside the same lifecycle on the Store in
  this process (no HTTP).

Every series drops its first samples (warm-up: connections, caches, SQLite page cache). The
benchmark's clients and the server share this machine's CPUs; results.json records how many.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.control_plane import measure, report, workload
from benchmarks.runner_overhead import machine
from harness.postgres import postgres_unreachable, scratch_postgres_database
from harness.servers import ServerProcess, make_keys, stalled_sse_subscriber
from vqpu_service.bootstrap import build_store, register_catalog
from vqpu_service.config import Settings
from vqpu_service.domain.model import Role

HERE = Path(__file__).resolve().parent
SCHEMA = "vqpu.bench.control_plane/1"
DATABASES = ("sqlite", "postgresql")
REFERENCE = {
    "admission": {"paper_s": 0.4, "aim_p50_s": 0.005, "aim_p99_s": 0.025},
    "dispatch": {"paper_s": [22.0, 27.0], "paper_poll_s": 30.0, "aim_p99_s": 0.25},
}
STALLED_SUBSCRIBERS = 4


@dataclass(frozen=True)
class Sizes:
    floor: int = 1000
    check: int = 300
    admission: int = 500
    warmup: int = 50
    dispatch_long: int = 200
    dispatch_short_fast: int = 100
    dispatch_short_slow: int = 30
    dispatch_warmup: int = 5
    lifecycle_tasks: int = 1000
    agents: int = 8
    submitters: int = 2
    scaling_reps: int = 5

    @classmethod
    def quick(cls) -> Sizes:
        return cls(100, 50, 100, 10, 30, 20, 8, 2, 200, 8, 2, 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.control_plane.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small samples: a smoke run, not a measurement")
    parser.add_argument("--databases", default=",".join(DATABASES), help="comma-separated: sqlite,postgresql")
    parser.add_argument("--out", type=Path, default=HERE, help="where results.json and REPORT.md go")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="results.json of a run of other code on this machine (e.g. the last release, from a worktree, just "
        "before): REPORT.md then sets this run beside it",
    )
    args = parser.parse_args(argv)
    databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    unknown = sorted(set(databases) - set(DATABASES))
    if unknown or not databases:
        parser.error(f"--databases takes {', '.join(DATABASES)}; got {args.databases!r}")
    if "postgresql" in databases and (reason := postgres_unreachable()):
        parser.error(f"{reason}; set VQPU_TEST_POSTGRES, or pass --databases sqlite")
    results = collect(databases, Sizes.quick() if args.quick else Sizes())
    if args.baseline is not None:
        results["baseline"] = json.loads(args.baseline.read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "REPORT.md").write_text(report.render(results))
    print(f"wrote {args.out / 'results.json'} and {args.out / 'REPORT.md'}", file=sys.stderr)
    return 0


def collect(databases: list[str], sizes: Sizes) -> dict[str, Any]:
    _progress("in-process admission check")
    in_process = measure.in_process_check(sizes.check, sizes.warmup)
    _progress("admission check on hostile circuits, 16 KB to 1 MiB")
    scaling = measure.check_scaling(sizes.scaling_reps)
    per_db = {}
    with tempfile.TemporaryDirectory(prefix="vqpu-bench-cp-") as tmp:
        for db in databases:
            per_db[db] = _one_database(db, Path(tmp) / db, sizes)
    return {
        "schema": SCHEMA,
        "created": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "machine": machine.describe(),
        "config": {
            **asdict(sizes),
            "circuit": {
                "device": workload.FEZ,
                "gates": workload.GATES,
                "qubits": workload.QUBITS,
                "bytes": len(workload.fez_circuit().encode()),
                "dialect": "qasm3",
            },
            "small_device": workload.SMALL_DEVICE,
            "stalled_subscribers": STALLED_SUBSCRIBERS,
            "server": "vqpu-server serve, uvicorn, --log-level warning, default settings but VQPU_MAX_QUEUED_PER_OWNER",
        },
        "reference": REFERENCE,
        "in_process_check_s": measure.summarize(in_process),
        "check_scaling": scaling,
        "databases": per_db,
    }


@contextmanager
def _database(db: str, work: Path, name: str) -> Iterator[str]:
    if db == "sqlite":
        yield f"sqlite:///{work / name}.db"
    else:
        with scratch_postgres_database() as url:
            yield url


SERVER_ENV = {"VQPU_MAX_QUEUED_PER_OWNER": "1000000"}
"""Default settings but the per-owner QUEUED cap (issue 18): the benchmark's one tenant queues thousands of
tasks to time admission. Servers that predate the setting ignore it."""


def _one_database(db: str, work: Path, sizes: Sizes) -> dict[str, Any]:
    work.mkdir(parents=True)
    keys = make_keys(work / "keys.json", bench=Role.USER, agent=Role.AGENT)
    user, agent = keys["bench"], keys["agent"]
    out: dict[str, Any] = {}
    with _database(db, work, "server") as url:
        server = ServerProcess(work, url, work / "keys.json", name=f"server-{db}", env=SERVER_ENV).start()
        try:
            base = server.url
            _progress(f"{db}: HTTP floor, viability, admission")
            out["http_floor_s"] = measure.summarize(measure.http_floor(base, sizes.floor, sizes.warmup))
            out["viability_s"] = measure.summarize(measure.viability(base, user, sizes.check, sizes.warmup))
            out["admission_s"] = measure.summarize(measure.admission(base, user, sizes.admission, sizes.warmup))
            _progress(f"{db}: admission with {STALLED_SUBSCRIBERS} stalled SSE subscribers")
            stalled = [stalled_sse_subscriber(base, user) for _ in range(STALLED_SUBSCRIBERS)]
            time.sleep(0.5)
            with_stalled = measure.admission(base, user, sizes.admission, sizes.warmup)
            evicted = [measure.drain_evicted(s, 1.0) for s in stalled]
            out["admission_with_stalled_sse_s"] = measure.summarize(with_stalled)
            out["stalled_subscribers_evicted"] = sum(evicted)
            out["dispatch"] = {}
            for label, poll_s, n in (
                ("long_poll", None, sizes.dispatch_long),
                ("short_poll_0.1s", 0.1, sizes.dispatch_short_fast),
                ("short_poll_1s", 1.0, sizes.dispatch_short_slow),
            ):
                _progress(f"{db}: dispatch, {label}")
                d = measure.dispatch(base, user, agent, n, sizes.dispatch_warmup, poll_s=poll_s)
                out["dispatch"][label] = {
                    "poll_s": poll_s,
                    "latency_s": measure.summarize(d["latency_s"]),
                    "submit_s": measure.summarize(d["submit_s"]),
                    "claim_requests_per_task": d["claim_requests_per_task"],
                }
            _progress(f"{db}: lifecycle throughput over HTTP, {sizes.agents} agents")
            out["lifecycle_http"] = measure.lifecycle_http(
                base, user, agent, sizes.lifecycle_tasks, sizes.agents, sizes.submitters
            )
        finally:
            status = server.stop()
        if status != 0:
            raise RuntimeError(f"the server exited {status} on SIGTERM:\n{server.log_tail()}")
    _progress(f"{db}: lifecycle throughput on the Store in-process, {sizes.agents} agents")
    with _database(db, work, "store") as url:
        store = build_store(Settings(database_url=url))
        try:
            register_catalog(store)
            out["lifecycle_store"] = measure.lifecycle_store(
                store, sizes.lifecycle_tasks, sizes.agents, sizes.submitters
            )
        finally:
            store.close()
    return out


def _progress(message: str) -> None:
    print(f"[control_plane] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
