"""Magnitude pruning (Han et al., "Learning both Weights and Connections", NIPS 2015): one threshold
per layer on |w|, applied on top of the previous mask; the iterations of prune and retrain are the
driver's passes. A threshold is the same thing as a kept count, which is what the search sets."""
from __future__ import annotations

import numpy as np

from pruning.errors import PruningError
from pruning.output_error import magnitude_keep


def select_magnitude(weights: np.ndarray, keep: np.ndarray, keep_count: int) -> np.ndarray:
    """The ``keep_count`` largest-magnitude weights of the layer among those in ``keep``."""
    available = int(keep.sum())
    if not 0 <= keep_count <= available:
        raise PruningError(f"cannot keep {keep_count} of {available} weights")
    return magnitude_keep(weights, keep, keep_count)


def magnitude_threshold(weights: np.ndarray, keep: np.ndarray) -> float:
    """The per-layer threshold a kept set corresponds to: the smallest kept |w| (0 when empty)."""
    kept = np.abs(weights[keep])
    return float(kept.min()) if kept.size else 0.0
