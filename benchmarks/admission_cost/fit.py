"""Fit the cost model to measured runs: non-negative least squares on relative error.

A run's estimate is a sum of coefficient x term (vqpu_protocol.pricing.runtime_terms), so dividing each
row by the measured time makes the fit minimise the relative errors; a coefficient no case exercises
keeps its committed value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import nnls

from vqpu_protocol import pricing

WHOLE_RUN = ("start", "parse_op")


def fit(rows: list[dict[str, Any]]) -> dict[str, Any]:
    names = [n for n in pricing.Cost._fields if n not in WHOLE_RUN]
    simulate = _nnls(rows, names, lambda r: r["measured"]["simulate_s"])
    # What a fresh process spends besides simulating: its start and the per-operation parse and fit.
    outside = _nnls(rows, list(WHOLE_RUN), lambda r: r["measured"]["wall_s"] - r["measured"]["simulate_s"])
    coefficients = {**simulate, **outside}
    committed = pricing.COST._asdict()
    coefficients = {n: coefficients.get(n, committed[n]) for n in pricing.Cost._fields}
    # Memory: resident memory besides the state, as a fixed part and a part per operation; the fixed part
    # is then raised so that no case's peak exceeds its price (the price is a bound the runner holds to).
    extra = np.array([r["measured"]["peak_rss_bytes"] - r["price"]["state_bytes"] for r in rows], dtype=float)
    ops = np.array([r["price"]["expanded_ops"] for r in rows], dtype=float)
    (base, per_op), _ = nnls(np.column_stack([np.ones_like(ops), ops]), extra)
    bound = float(max(extra - per_op * ops))
    return {
        "cost": coefficients,
        "runner_bytes_least_squares": float(base),
        "runner_bytes_bound": bound,
        "bytes_per_op": float(per_op),
    }


def _nnls(rows: list[dict[str, Any]], names: list[str], measured: Any) -> dict[str, float]:
    a = np.array([[r["terms"][n] / max(measured(r), 1e-6) for n in names] for r in rows], dtype=float)
    used = a.any(axis=0)
    solution, _ = nnls(a[:, used], np.ones(len(rows)))
    return dict(zip([n for n, u in zip(names, used, strict=True) if u], map(float, solution), strict=True))
