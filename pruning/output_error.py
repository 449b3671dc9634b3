"""Choosing which weights stay so that the layer's *output* error is smallest (energy-aware pruning,
Yang, Chen, Sze, CVPR 2017, step 2): ``min ||Y - X A||^2`` with at most q non-zeros in A.

Greedy backward elimination on the layer's summed output error, after a quick magnitude pre-pruning:
the weights outside the top ``prefilter_factor * q`` by magnitude go first (cheap), then one weight at
a time leaves, always the one (in any output channel) whose removal raises the error least, the kept
weights keeping their values. Removing weight j of channel m with residual r = y - X a changes the
squared error by ``2 a_j x_j^T r + a_j^2 (X^T X)_jj``; with ``t = X^T r`` kept per channel this is O(K)
per removal. The number kept per channel is therefore not fixed: it follows the error.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from pruning.calibration import LayerStatistics
from pruning.errors import PruningError


@njit(cache=True)
def _cheapest_removal(m, gram, t, weights, keep, scale, best_cost, best_index):
    """The kept weight of channel ``m`` whose removal raises the output error least, and that rise
    (``best_index[m]`` = -1 when the channel keeps nothing)."""
    best_cost[m] = np.inf
    best_index[m] = -1
    for k in range(weights.shape[1]):
        if keep[m, k]:
            w = weights[m, k]
            cost = scale[m] * (2.0 * w * t[m, k] + w * w * gram[k, k])
            if cost < best_cost[m]:
                best_cost[m] = cost
                best_index[m] = k


@njit(cache=True)
def _greedy_backward(gram, t, weights, keep, scale, remove_count):
    """Remove ``remove_count`` weights from ``keep`` (M, K) in place. ``gram`` (K, K), ``weights``
    (M, K) float64, ``t`` (M, K) = x_k^T (y_m - X a_m) over the kept weights (updated in place),
    ``scale`` (M,) the squared weight of each channel's error."""
    m_count, k_count = weights.shape
    best_cost = np.empty(m_count)
    best_index = np.empty(m_count, np.int64)
    for m in range(m_count):
        _cheapest_removal(m, gram, t, weights, keep, scale, best_cost, best_index)
    for _ in range(remove_count):
        chosen = -1
        lowest = np.inf
        for m in range(m_count):
            if best_index[m] >= 0 and best_cost[m] < lowest:
                lowest = best_cost[m]
                chosen = m
        if chosen < 0:
            break
        j = best_index[chosen]
        w = weights[chosen, j]
        keep[chosen, j] = False
        for k in range(k_count):
            t[chosen, k] += gram[k, j] * w
        _cheapest_removal(chosen, gram, t, weights, keep, scale, best_cost, best_index)


def _correlations(stats: LayerStatistics, weights: np.ndarray, keep: np.ndarray, group: int) -> np.ndarray:
    """``t[m, k] = x_k^T (y_m - X a_m)`` with a_m the kept weights of channel m (one BLAS product)."""
    return np.ascontiguousarray(stats.cross[group].T - (weights[group] * keep[group]) @ stats.gram[group])


def magnitude_keep(weights: np.ndarray, keep: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` largest-magnitude weights among those in ``keep`` (ties: lowest index first)."""
    flat = np.where(keep, np.abs(weights), -1.0).ravel()
    out = np.zeros(flat.shape, bool)
    if count > 0:
        order = np.argsort(-flat, kind="stable")[:count]
        out[order] = True
    return out.reshape(keep.shape) & keep


def select_output_error(
    stats: LayerStatistics, weights: np.ndarray, keep: np.ndarray, keep_count: int, *, prefilter_factor: float = 2.0,
) -> np.ndarray:
    """Of the weights in ``keep`` (G, M/G, K bool), the ``keep_count`` to keep so that the output error
    of ``weights`` (G, M/G, K) restricted to them is smallest (greedy; see module doc). Never keeps a
    weight outside ``keep``."""
    available = int(keep.sum())
    if not 0 <= keep_count <= available:
        raise PruningError(f"layer {stats.layer!r}: cannot keep {keep_count} of {available} weights")
    if prefilter_factor < 1:
        raise PruningError(f"prefilter_factor={prefilter_factor} must be >= 1")
    candidates = magnitude_keep(weights, keep, min(available, math.ceil(prefilter_factor * keep_count)))
    groups, per_group, _ = weights.shape
    scale = (stats.channel_scale ** 2).reshape(groups, per_group)
    result = candidates.copy()
    remove = int(candidates.sum()) - keep_count
    if groups == 1:
        _greedy_backward(stats.gram[0], _correlations(stats, weights, result, 0), weights[0], result[0], scale[0], remove)
        return result
    # Groups are independent layers: split the removals by each group's share of the candidates.
    shares = candidates.reshape(groups, -1).sum(axis=1)
    targets = np.floor(shares / max(1, shares.sum()) * keep_count).astype(int)
    targets[: keep_count - targets.sum()] += 1
    for g in range(groups):
        _greedy_backward(stats.gram[g], _correlations(stats, weights, result, g), weights[g], result[g], scale[g],
                         int(shares[g] - targets[g]))
    return result
