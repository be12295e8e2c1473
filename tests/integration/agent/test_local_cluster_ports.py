"""Two agents (or an agent and a test run) on one machine: an agent's LocalCluster binds no fixed port, so
one never finds its port taken by the other (Dask's HTTP server defaults to 8787 even without a dashboard)."""

from __future__ import annotations

import socket
import warnings
from pathlib import Path

from distributed import Client

from agent.cluster import start_cluster
from agent.dask_security import private_directory
from agent.site import parse_site


def test_a_local_cluster_starts_quietly_while_another_process_holds_dasks_default_port(tmp_path: Path) -> None:
    site = parse_site({"site": "ports", "slots": 1, "run_root": str(tmp_path / "runs"), "scheduler": {"kind": "local"}})
    site.run_root.mkdir(mode=0o700)
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        holder.bind(("127.0.0.1", 8787))
        holder.listen()
    except OSError:
        pass  # someone on this machine holds it already: the same situation
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # Dask warns "Port 8787 is already in use" and moves elsewhere
            cluster = start_cluster(site, private_dir=private_directory(site.run_root, ".dask-"))
        try:
            with Client(cluster, security=cluster.security) as client:
                assert client.submit(sum, [1, 2], pure=False).result(timeout=60) == 3
                http = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.http_server.port)
                assert http != 8787
        finally:
            cluster.close()
    finally:
        holder.close()
