"""What mutual TLS costs the agent's Dask cluster, beside plain TCP, in the same run on the same machine.

    python -m benchmarks.dask_tls.run [--tasks 200] [--repeats 3] [--out DIR]

Two LocalClusters built as the agent builds them (one worker process per slot, one thread each, on
127.0.0.1), one with plain TCP and one with the agent's per-start credentials (`Security.temporary()`,
`require_encryption=True`); alternately, `--repeats` times each:

- cluster start until its workers are connected (TLS adds a handshake per connection);
- a client's connect (what the agent pays once per start);
- a no-op task's round trip, submitted one after the other (what each runner step pays for its Dask
  hop: submit, run, result), median and 90th percentile over `--tasks` tasks;
- a 1 MiB result's round trip (encryption on the payload).

The runner step's own cost (a forked runner, Prefect's task engine) is measured end to end by
benchmarks/service_vs_sbatch; this isolates the transport.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dask.config
from distributed import Client, LocalCluster
from distributed.security import Security

from agent.dask_security import NO_HTTP_ROUTES
from benchmarks.runner_overhead import machine

HERE = Path(__file__).resolve().parent
SCHEMA = "vqpu.bench.dask_tls/1"


def noop() -> int:
    return 0


def payload(size: int) -> bytes:
    return b"x" * size


def _cluster(tls: bool) -> tuple[LocalCluster, Security | None]:
    security: Security | None = Security.temporary() if tls else None  # type: ignore[no-untyped-call]
    kwargs: dict[str, Any] = {"protocol": "tls://", "security": security} if tls else {"protocol": "tcp://"}
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None, **kwargs
    )
    return cluster, security


def measure(tls: bool, tasks: int) -> dict[str, Any]:
    began = time.perf_counter()
    cluster, security = _cluster(tls)
    try:
        start_s = time.perf_counter() - began
        began = time.perf_counter()
        client = Client(cluster.scheduler_address, security=security)
        connect_s = time.perf_counter() - began
        try:
            client.wait_for_workers(2)
            for _ in range(10):  # warm: imports, the workers' connections to each other
                client.submit(noop, pure=False).result()
            trips = []
            for _ in range(tasks):
                t = time.perf_counter()
                client.submit(noop, pure=False).result()
                trips.append(time.perf_counter() - t)
            big = []
            for _ in range(max(10, tasks // 10)):
                t = time.perf_counter()
                client.submit(payload, 1 << 20, pure=False).result()
                big.append(time.perf_counter() - t)
        finally:
            client.close()
    finally:
        cluster.close()
    trips.sort()
    return {
        "transport": "tls" if tls else "tcp",
        "cluster_start_s": start_s,
        "client_connect_s": connect_s,
        "noop_round_trip_median_s": statistics.median(trips),
        "noop_round_trip_p90_s": trips[int(0.9 * (len(trips) - 1))],
        "mib_result_round_trip_median_s": statistics.median(big),
        "tasks": tasks,
    }


def render(doc: dict[str, Any]) -> str:
    runs = doc["runs"]
    rows = []
    for key, label in (
        ("cluster_start_s", "cluster start, 2 workers connected"),
        ("client_connect_s", "client connect"),
        ("noop_round_trip_median_s", "no-op task round trip, median"),
        ("noop_round_trip_p90_s", "no-op task round trip, 90th percentile"),
        ("mib_result_round_trip_median_s", "1 MiB result round trip, median"),
    ):
        tcp = statistics.median(r[key] for r in runs if r["transport"] == "tcp")
        tls = statistics.median(r[key] for r in runs if r["transport"] == "tls")
        rows.append(f"| {label} | {tcp * 1000:.2f} ms | {tls * 1000:.2f} ms | {(tls - tcp) * 1000:+.2f} ms |")
    m = doc["machine"]
    return "\n".join(
        [
            "# Mutual TLS on the agent's Dask cluster: what it costs",
            "",
            f"Measured {doc['measured_at']} on {m['cpu_count']} CPUs ({m['cpu_model']}), {m['python']}, "
            f"commit {m['git_commit'][:10]}{' (dirty)' if m['git_dirty'] else ''}; "
            f"`python -m benchmarks.dask_tls.run --tasks {doc['tasks']} --repeats {doc['repeats']}`. "
            "Two LocalClusters as the agent builds them (2 worker processes, 1 thread each), plain TCP and "
            "TLS with the agent's per-start credentials, alternating; medians over the repeats.",
            "",
            "| | TCP | TLS (mutual) | TLS - TCP |",
            "|---|---:|---:|---:|",
            *rows,
            "",
            "Each runner step makes one such round trip (plus the kill and placement queries when they are "
            "needed), so the per-task cost of authentication is the round-trip difference above. A round trip is "
            "about 10 ms of Dask's own scheduling either way, so a difference well under a millisecond is below "
            "what this resolves: TLS adds a handshake per connection (cluster start, client connect), and the "
            "connections are then reused. The end-to-end per-task figures are in "
            "[service_vs_sbatch](../service_vs_sbatch/REPORT.md).",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    dask.config.set(NO_HTTP_ROUTES)
    runs = []
    for _ in range(args.repeats):
        for tls in (False, True):
            runs.append(measure(tls, args.tasks))
            print(json.dumps(runs[-1]), flush=True)
    doc = {
        "schema": SCHEMA,
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine.describe(),
        "tasks": args.tasks,
        "repeats": args.repeats,
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    (args.out / "REPORT.md").write_text(render(doc))
    print(render(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
