"""Local fine-tuning in closed form (energy-aware pruning, step 3): refit each output channel's kept
weights by least squares, ``A_S = argmin ||Y - X_S A_S||^2``; pruned weights stay exactly zero.

Solved from the second moments (``X_S^T X_S A_S = X_S^T Y``) with ``numpy.linalg.lstsq``, which gives
the minimum-norm solution when X_S is rank deficient (the same solution as lstsq on X_S itself).
"""
from __future__ import annotations

import numpy as np

from pruning.calibration import LayerStatistics


def refit(stats: LayerStatistics, weights: np.ndarray, keep: np.ndarray, *, ridge: float = 0.0) -> np.ndarray:
    """New weights (G, M/G, K): per output channel the least-squares fit of its kept weights, zero
    elsewhere. ``ridge`` adds ``ridge * mean(diag(X^T X))`` to the diagonal (0: plain least squares)."""
    out = np.zeros_like(weights, dtype=np.float64)
    for g in range(weights.shape[0]):
        gram = stats.gram[g]
        damping = ridge * float(np.mean(np.diag(gram))) if ridge else 0.0
        for m in range(weights.shape[1]):
            kept = np.flatnonzero(keep[g, m])
            if kept.size == 0:
                continue
            system = gram[np.ix_(kept, kept)]
            if damping:
                system = system + damping * np.eye(kept.size)
            out[g, m, kept] = np.linalg.lstsq(system, stats.cross[g][kept, m], rcond=None)[0]
    return out
