"""Measurements that must run in their own interpreter; each prints one JSON object on stdout.

`python -m benchmarks.runner_overhead.probes bare-aer --optimization-level L`: what a user does
without HPC-vQPU — load IBM's Fez backend, `NoiseModel.from_backend`, `transpile`, run on Aer
(`--backend snapshot`: the same over `SnapshotBackend`, whose Target is our Fez snapshot).
`python -m benchmarks.runner_overhead.probes warm --noise-model M --calls K`: the runner pipeline
called K times in one process with one NoiseCache (a long-lived worker rather than a Slurm job).

Heavy imports happen inside the probes, so they are timed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.runner_overhead.workload import DEVICE, QUBITS, SEED, SHOTS, qasm, write_run_dir


def bare_aer(optimization_level: int, backend_kind: str = "fakefez") -> dict[str, Any]:
    t0 = time.perf_counter()
    from qiskit import QuantumCircuit, transpile
    from qiskit_aer import AerSimulator
    from qiskit_aer.noise import NoiseModel

    backend, source = _fez_backend(backend_kind)
    t1 = time.perf_counter()
    _ = backend.target  # FakeFez builds its Target lazily from the bundled calibration JSON
    t2 = time.perf_counter()
    circuit = QuantumCircuit.from_qasm_str(qasm())
    t3 = time.perf_counter()
    noise = NoiseModel.from_backend(backend)
    t4 = time.perf_counter()
    layout = list(QUBITS) if optimization_level == 0 else None
    compiled = transpile(
        circuit, backend, optimization_level=optimization_level, initial_layout=layout, seed_transpiler=SEED
    )
    t5 = time.perf_counter()
    result = AerSimulator(noise_model=noise, seed_simulator=SEED).run(compiled, shots=SHOTS).result()
    t6 = time.perf_counter()
    return {
        "backend": source,
        "import_s": t1 - t0,
        "backend_s": t2 - t1,
        "parse_s": t3 - t2,
        "noise_s": t4 - t3,
        "transpile_s": t5 - t4,
        "simulate_s": t6 - t5,
        "method": result.results[0].metadata.get("method"),
        "compiled_ops": {name: int(n) for name, n in compiled.count_ops().items()},
        "counts": {str(k): int(v) for k, v in result.get_counts(0).items()},
    }


def _fez_backend(kind: str) -> tuple[Any, str]:
    """IBM's FakeFez when asked for and installed, else our SnapshotBackend over the Fez snapshot."""
    try:
        if kind != "fakefez":
            raise ImportError(kind)
        from qiskit_ibm_runtime.fake_provider import FakeFez
    except ImportError:
        return _snapshot_backend(), "device_registry.qiskit_backend.SnapshotBackend(ibm-fez)"
    return FakeFez(), "qiskit_ibm_runtime.fake_provider.FakeFez"


def _snapshot_backend() -> Any:
    from device_registry import catalog
    from device_registry.qiskit_backend import SnapshotBackend

    return SnapshotBackend(catalog.load(DEVICE))


def warm(noise_model: str, calls: int) -> dict[str, Any]:
    from runner import pipeline
    from runner.rundir import read_inputs

    caches = pipeline.Caches()
    samples: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="vqpu-bench-warm-") as tmp:
        run_dir = Path(tmp)
        write_run_dir(run_dir, noise_model)
        for _ in range(calls):
            t0 = time.perf_counter()
            inputs = read_inputs(run_dir)
            t1 = time.perf_counter()
            result = pipeline.execute(inputs, caches).model_dump(mode="json")
            t2 = time.perf_counter()
            inputs.snapshot.sha256()  # the key of both the Target cache and the noise cache, timed on its own
            hash_s = time.perf_counter() - t2
            cache_state = result["provenance"]["noise_cache"]
            samples.append({"read_s": t1 - t0, "hash_s": hash_s, **result["timings"], "noise_cache": cache_state})
    return {"calls": samples}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.runner_overhead.probes")
    sub = parser.add_subparsers(dest="probe", required=True)
    bare = sub.add_parser("bare-aer", help="bare Qiskit-Aer on FakeFez")
    bare.add_argument("--optimization-level", type=int, choices=range(4), default=0)
    bare.add_argument("--backend", choices=("fakefez", "snapshot"), default="fakefez")
    hot = sub.add_parser("warm", help="runner pipeline, repeated in one process")
    hot.add_argument("--noise-model", default="paper")
    hot.add_argument("--calls", type=int, default=15)
    args = parser.parse_args(argv)
    if args.probe == "bare-aer":
        out = bare_aer(args.optimization_level, args.backend)
    else:
        out = warm(args.noise_model, args.calls)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
