"""The least-squares view of one MAC layer on calibration images: ``Y ~ X A``.

X is the layer's input in im2col form (one row per output position and image, one column per
weight of an output channel: C/G * R * S for a convolution, the flattened input for an FC layer), Y
the layer's output without bias (one column per output channel). Only the second moments are kept
(``gram = X^T X``, ``cross = X^T Y``, ``output_sq = sum Y^2``, in float64, per group): every error and
every refit the pruning methods need is a function of them, so memory stays bounded however many
images are used.

X comes from ``network`` (the network being pruned, so upstream pruning is accounted for) and Y
from ``reference`` (the network as it was before this pass: the outputs the layer should keep).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from networks.backprop import im2col_offsets
from networks.layers import BatchNorm, Conv2D, FullyConnected
from networks.network import Network
from pruning.errors import PruningError

DEFAULT_BATCH_IMAGES = 250


@dataclass(frozen=True)
class LayerStatistics:
    """Second moments of one layer on calibration data, per group g: ``gram[g]`` (K, K) = X^T X,
    ``cross[g]`` (K, M/G) = X^T Y, ``output_sq[g]`` (M/G,) = column sums of Y^2; ``rows`` samples.
    ``channel_scale`` (M,): the factor each output channel is multiplied by before it is used (a
    following batch norm's scale, else 1), so errors are weighed as the next layer sees them."""

    layer: str
    gram: np.ndarray
    cross: np.ndarray
    output_sq: np.ndarray
    rows: int
    channel_scale: np.ndarray

    @property
    def groups(self) -> int:
        return self.gram.shape[0]


def weight_matrix(network: Network, name: str) -> np.ndarray:
    """The layer's (masked) weights as (G, M/G, K), K the weights of one output channel."""
    weight = network.layer_params(name)["weight"]
    groups = _groups(network, name)
    return weight.reshape(groups, weight.shape[0] // groups, -1).astype(np.float64)


def _groups(network: Network, name: str) -> int:
    layer = network.layer(name)
    return layer.groups if isinstance(layer, Conv2D) else 1


def _channel_scale(network: Network, name: str, channels: int) -> np.ndarray:
    consumers = [other for other in network.layer_names if name in network.input_names(other)]
    if len(consumers) == 1 and isinstance(network.layer(consumers[0]), BatchNorm):
        scale, _ = network.layer(consumers[0]).scale_shift(network.params[consumers[0]])
        return np.abs(scale).astype(np.float64)
    return np.ones(channels)


def layer_columns(network: Network, name: str, x: np.ndarray) -> np.ndarray:
    """The layer's input batch ``x`` in im2col form (G, K, rows)."""
    layer = network.layer(name)
    if isinstance(layer, Conv2D):
        return im2col_offsets(x, layer.kernel, stride=layer.stride, padding=layer.padding, groups=layer.groups)
    if isinstance(layer, FullyConnected):
        return x.reshape(x.shape[0], -1).T[None]
    raise PruningError(f"layer {name!r} ({layer.kind}) has no weights to prune; prunable: {network.prunable_layers}")


def layer_statistics(
    network: Network, reference: Network, name: str, images: np.ndarray, *, rng: np.random.Generator,
    max_rows: int = 50_000, batch_images: int = DEFAULT_BATCH_IMAGES,
) -> LayerStatistics:
    """Second moments of layer ``name`` on ``images``; at most ``max_rows`` rows in all, drawn
    uniformly from each batch (a convolution gives N * P * Q rows, most of them redundant)."""
    if name not in network.prunable_layers:
        raise PruningError(f"layer {name!r} has no weights to prune; prunable: {network.prunable_layers}")
    source = network.input_names(name)[0]
    bias = network.layer_params(name).get("bias")
    groups = _groups(network, name)
    gram = cross = output_sq = None
    rows = 0
    batches = range(0, len(images), batch_images)
    rows_per_batch = max(1, max_rows // max(1, len(batches)))
    for start in batches:
        chunk = images[start : start + batch_images]
        _, acts = network.forward(chunk, return_activations=True)
        _, ref_acts = reference.forward(chunk, return_activations=True)
        cols = layer_columns(network, name, acts[source]).astype(np.float64)
        y = ref_acts[name].astype(np.float64)
        if bias is not None:
            y = y - bias[None, :, None, None]
        channels = y.shape[1]
        y = y.transpose(1, 0, 2, 3).reshape(groups, channels // groups, -1)
        if cols.shape[2] > rows_per_batch:
            pick = np.sort(rng.choice(cols.shape[2], rows_per_batch, replace=False))
            cols, y = cols[:, :, pick], y[:, :, pick]
        g = cols @ cols.transpose(0, 2, 1)
        c = cols @ y.transpose(0, 2, 1)
        s = (y * y).sum(axis=2)
        gram, cross, output_sq = (g, c, s) if gram is None else (gram + g, cross + c, output_sq + s)
        rows += cols.shape[2]
    return LayerStatistics(layer=name, gram=gram, cross=cross, output_sq=output_sq, rows=rows,
                           channel_scale=_channel_scale(network, name, cross.shape[0] * cross.shape[2]))


def output_error(stats: LayerStatistics, weights: np.ndarray) -> np.ndarray:
    """Squared output error ``||Y - X A||^2`` per output channel (G, M/G) of ``weights`` (G, M/G, K),
    unscaled, from the second moments."""
    ga = np.einsum("gkl,gml->gmk", stats.gram, weights)
    return stats.output_sq - 2 * np.einsum("gkm,gmk->gm", stats.cross, weights) + np.einsum("gmk,gmk->gm", weights, ga)
