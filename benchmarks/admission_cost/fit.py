"""Fit the cost model to measured runs: least squares on the log of estimate / measured.

A run's estimate is a sum of coefficient x term (vqpu_protocol.pricing.runtime_terms). The fit starts
from non-negative least squares on relative error, then minimises the squared log ratios over the
logs of the coefficients (so they stay positive, and an over-estimate by 10x weighs what an
under-estimate by 10x does). A coefficient no case exercises keeps its committed value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import least_squares, nnls

from vqpu_protocol import pricing

WHOLE_RUN = ("start", "parse_op")
MEASURED_APART = ("mps_bond_op",)
"""Not fitted: a bound's coefficient, measured on its own (see pricing.Cost)."""


def fit(rows: list[dict[str, Any]]) -> dict[str, Any]:
    names = [n for n in pricing.Cost._fields if n not in WHOLE_RUN + MEASURED_APART]
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
    times = np.array([max(measured(r), 1e-6) for r in rows], dtype=float)
    terms = np.array([[r["terms"][n] for n in names] for r in rows], dtype=float)
    used = terms.any(axis=0)
    terms, names = terms[:, used], [n for n, u in zip(names, used, strict=True) if u]
    start, _ = nnls(terms / times[:, None], np.ones(len(rows)))
    committed = pricing.COST._asdict()
    start = np.array([v if v > 0 else committed[n] for n, v in zip(names, start, strict=True)])

    def log_ratios(logs: np.ndarray) -> np.ndarray:
        return np.log(terms @ np.exp(logs)) - np.log(times)

    solution = least_squares(log_ratios, np.log(start), method="lm").x
    return dict(zip(names, map(float, np.exp(solution)), strict=True))
