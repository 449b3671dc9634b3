"""One layer step: how much of a layer to prune, found by search against the accuracy threshold.

A ``LayerPruner`` turns a kept count into new weights for the layer (energy-aware: output-error
selection + least-squares refit; magnitude: the largest weights, values unchanged), always within the
layer's current mask. ``search_count`` bisects (on a log scale) for the lowest density whose
held-out accuracy stays at or above the threshold, and returns the weights of the best one found.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from networks.network import PRUNABLE_PARAM, Network
from pruning.calibration import LayerStatistics, weight_matrix
from pruning.lsq import refit
from pruning.magnitude import select_magnitude
from pruning.output_error import select_output_error

SELECTIONS = ("output_error", "magnitude")


@dataclass(frozen=True, kw_only=True)
class LayerPruner:
    """Prunes layer ``layer`` of a network to a kept count. ``stats`` is needed by output-error
    selection and by ``refit``."""

    layer: str
    selection: str
    refit: bool
    weights: np.ndarray  # (G, M/G, K) float64, masked
    keep: np.ndarray  # (G, M/G, K) bool, the current mask
    stats: LayerStatistics | None = None
    prefilter_factor: float = 2.0
    ridge: float = 0.0

    @property
    def available(self) -> int:
        return int(self.keep.sum())

    def prune(self, keep_count: int) -> tuple[np.ndarray, np.ndarray]:
        """(weights, mask) of the layer, in the shape of the layer's weight."""
        if self.selection == "output_error":
            keep = select_output_error(self.stats, self.weights, self.keep, keep_count, prefilter_factor=self.prefilter_factor)
        else:
            keep = select_magnitude(self.weights, self.keep, keep_count)
        weights = refit(self.stats, self.weights, keep, ridge=self.ridge) if self.refit else self.weights * keep
        return weights, keep

    def apply(self, network: Network, weights: np.ndarray, keep: np.ndarray) -> None:
        """Write pruned ``weights`` and mask into ``network`` (the mask only ever shrinks)."""
        shape = network.param_shapes(self.layer)[PRUNABLE_PARAM]
        mask = keep.reshape(shape)
        previous = network.masks.get(self.layer)
        if previous is not None and np.any(mask & ~previous):
            raise AssertionError(f"layer {self.layer!r}: a pruned weight would come back")
        stored = network.params[self.layer]
        stored[PRUNABLE_PARAM] = (weights.reshape(shape) * mask).astype(np.float32)
        network.set_mask(self.layer, mask)

    def available_in(self, network: Network) -> int:
        return network.nonzero_weights(self.layer)

    def candidate(self, network: Network, keep_count: int) -> Network:
        """A copy of ``network`` with this layer pruned to ``keep_count`` weights."""
        pruned = network.copy()
        self.apply(pruned, *self.prune(keep_count))
        return pruned


def make_pruner(network: Network, name: str, *, selection: str, refit: bool, stats: LayerStatistics | None = None,
                prefilter_factor: float = 2.0, ridge: float = 0.0) -> LayerPruner:
    if selection not in SELECTIONS:
        raise ValueError(f"selection {selection!r} is not one of {SELECTIONS}")
    weights = weight_matrix(network, name)
    mask = network.masks.get(name)
    keep = (np.ones(network.param_shapes(name)[PRUNABLE_PARAM], bool) if mask is None else mask).reshape(weights.shape)
    keep = keep & (weights != 0)  # a weight that is exactly zero is already pruned
    return LayerPruner(layer=name, selection=selection, refit=refit, weights=weights, keep=keep, stats=stats,
                       prefilter_factor=prefilter_factor, ridge=ridge)


@dataclass(frozen=True)
class SearchResult:
    keep_count: int  # kept units (weights or channels) of the accepted candidate (== available: none)
    accuracy: float  # held-out accuracy of the accepted candidate (NaN: nothing accepted)
    network: Network | None  # the accepted candidate
    evaluations: int


def search_count(
    candidate: Callable[[int], Network], accuracy_of: Callable[[Network], float], *, available: int, lowest: int,
    threshold: float, steps: int,
) -> SearchResult:
    """Bisect (geometrically) the kept count between ``lowest`` and ``available`` for the lowest whose
    candidate network keeps ``accuracy_of`` >= ``threshold``; ``available`` is taken to pass (the
    network is at or above the threshold when a step starts)."""
    if lowest >= available:
        return SearchResult(available, math.nan, None, 0)
    best = SearchResult(available, math.nan, None, 0)
    evaluations = 0
    trial = candidate(lowest)
    accuracy = accuracy_of(trial)
    evaluations += 1
    if accuracy >= threshold:
        return SearchResult(lowest, accuracy, trial, evaluations)
    failing, passing = lowest, available
    for _ in range(steps):
        count = round(math.sqrt(failing * passing))
        if count <= failing or count >= passing:
            break
        trial = candidate(count)
        accuracy = accuracy_of(trial)
        evaluations += 1
        if accuracy >= threshold:
            best = SearchResult(count, accuracy, trial, evaluations)
            passing = count
        else:
            failing = count
    return SearchResult(best.keep_count, best.accuracy, best.network, evaluations)
