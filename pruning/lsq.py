"""Local fine-tuning in closed form (energy-aware pruning, step 3): refit each output channel's kept
weights by least squares, ``A_S = argmin ||Y - X_S A_S||^2``; pruned weights stay exactly zero.

Solved from the second moments (``X_S^T X_S A_S = X_S^T Y``) by a Cholesky-speed solve with a
vanishing ridge (``MIN_RIDGE`` x the mean diagonal): the least-squares solution to rounding when X_S
has full column rank, and the limit of the ridge path, the minimum-norm solution (what ``lstsq`` on
X_S gives), when it has not (fewer calibration rows than kept weights).
"""
from __future__ import annotations

import numpy as np

from pruning.calibration import LayerStatistics

MIN_RIDGE = 1e-9


def refit(stats: LayerStatistics, weights: np.ndarray, keep: np.ndarray, *, ridge: float = 0.0) -> np.ndarray:
    """New weights (G, M/G, K): per output channel the least-squares fit of its kept weights, zero
    elsewhere. ``ridge`` adds ``ridge * mean(diag(X^T X))`` to the diagonal (at least ``MIN_RIDGE``)."""
    out = np.zeros_like(weights, dtype=np.float64)
    for g in range(weights.shape[0]):
        gram = stats.gram[g]
        damping = max(ridge, MIN_RIDGE) * max(float(np.mean(np.diag(gram))), np.finfo(float).tiny)
        for m in range(weights.shape[1]):
            kept = np.flatnonzero(keep[g, m])
            if kept.size == 0:
                continue
            system = gram[np.ix_(kept, kept)]
            system[np.diag_indices_from(system)] += damping
            out[g, m, kept] = np.linalg.solve(system, stats.cross[g][kept, m])
    return out
