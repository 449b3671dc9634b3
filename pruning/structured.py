"""Structured pruning (beyond the paper): whole output channels of a layer (a convolution's filters,
an FC layer's neurons), which also removes the matching input channels of the one layer that reads
them, so both layers become smaller and take fewer cycles, not only fewer non-zero MACs.

A layer is structurally prunable when its output reaches exactly one MAC layer (its consumer) through
a chain of per-channel layers (batch norm, ReLU, pooling, dropout, flatten), and it is not the
network's last MAC layer (its outputs are the classes). The channels that stay are chosen by the
consumer's output error, greedily removing the channel whose input block raises it least (the
consumer's weights keeping their values), then the consumer's kept weights are refitted by least
squares (channel pruning in the manner of He, Zhang, Sun, ICCV 2017; the error is the one of
``pruning.output_error``, block by block). Pruned channels are gone from the network (its
architecture changes); masks of both layers are carried over.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from networks.layers import AvgPool, BatchNorm, Conv2D, Dropout, Flatten, FullyConnected, MaxPool, ReLU
from networks.network import PRUNABLE_PARAM, Network
from pruning.calibration import LayerStatistics, layer_statistics, weight_matrix
from pruning.errors import PruningError
from pruning.lsq import refit

PER_CHANNEL_LAYERS = (BatchNorm, ReLU, MaxPool, AvgPool, Dropout, Flatten)


def _consumers(network: Network, name: str) -> list[str]:
    return [other for other in network.layer_names if name in network.input_names(other)]


def chain(network: Network, name: str) -> tuple[list[str], str] | None:
    """(per-channel layers in between, consumer) of layer ``name``, or None when not prunable."""
    layer = network.layer(name)
    if isinstance(layer, Conv2D) and layer.groups != 1:
        return None
    between: list[str] = []
    current = name
    while True:
        readers = _consumers(network, current)
        if len(readers) != 1:
            return None
        reader = network.layer(readers[0])
        if isinstance(reader, PER_CHANNEL_LAYERS):
            between.append(reader.name)
            current = reader.name
            continue
        if isinstance(reader, FullyConnected) or (isinstance(reader, Conv2D) and reader.groups == 1):
            return between, reader.name
        return None


def structured_layers(network: Network, layers: list[str]) -> list[str]:
    """The layers of ``layers`` that can lose whole output channels (error when none can)."""
    chosen = [name for name in layers if chain(network, name) is not None]
    if not chosen:
        raise PruningError(
            f"none of the layers {layers} of {network.name!r} can lose whole channels (each needs exactly one "
            f"conv/FC consumer through batch norm, ReLU, pooling or dropout; the last MAC layer never can)"
        )
    return chosen


def output_channels(network: Network, name: str) -> int:
    return network.param_shapes(name)[PRUNABLE_PARAM][0]


def remove_channels(network: Network, name: str, keep: np.ndarray, consumer_weight: np.ndarray | None = None) -> Network:
    """A new network in which layer ``name`` keeps only output channels ``keep`` (sorted indices), with
    the matching input channels of its consumer removed; ``consumer_weight`` (optional) replaces the
    consumer's sliced weight."""
    between, consumer = chain(network, name)
    keep = np.asarray(keep, dtype=np.int64)
    channels = output_channels(network, name)
    consumer_shape = network.param_shapes(consumer)[PRUNABLE_PARAM]
    block = consumer_shape[1] // channels if isinstance(network.layer(consumer), FullyConnected) else 1
    layers, params, masks = [], {}, {}
    for layer in network.layers:
        p = {k: v.copy() for k, v in network.params.get(layer.name, {}).items()}
        mask = network.masks.get(layer.name)
        if layer.name == name:
            field = "out_channels" if isinstance(layer, Conv2D) else "out_features"
            layer = dataclasses.replace(layer, **{field: len(keep)})
            p = {k: v[keep] for k, v in p.items()}
            mask = None if mask is None else mask[keep]
        elif layer.name in between and isinstance(layer, BatchNorm):
            p = {k: v[keep] for k, v in p.items()}
        elif layer.name == consumer:
            if isinstance(layer, Conv2D):
                columns = keep
                if layer.in_channels is not None:
                    layer = dataclasses.replace(layer, in_channels=len(keep))
                p[PRUNABLE_PARAM] = p[PRUNABLE_PARAM][:, columns]
                mask = None if mask is None else mask[:, columns]
            else:
                columns = (keep[:, None] * block + np.arange(block)[None, :]).ravel()
                if layer.in_features is not None:
                    layer = dataclasses.replace(layer, in_features=len(keep) * block)
                p[PRUNABLE_PARAM] = p[PRUNABLE_PARAM][:, columns]
                mask = None if mask is None else mask[:, columns]
            if consumer_weight is not None:
                p[PRUNABLE_PARAM] = consumer_weight.reshape(p[PRUNABLE_PARAM].shape).astype(np.float32)
        layers.append(layer)
        if p:
            params[layer.name] = p
        if mask is not None:
            masks[layer.name] = mask
    pruned = Network(name=network.name, input_shape=network.input_shape, layers=layers, params=params or None)
    for layer_name, mask in masks.items():
        pruned.set_mask(layer_name, mask)
        pruned.params[layer_name][PRUNABLE_PARAM] *= mask
    return pruned


def greedy_channels(stats: LayerStatistics, weights: np.ndarray, channels: int, keep_count: int) -> np.ndarray:
    """Sorted indices of the ``keep_count`` input channels of the consumer (weights (M, K), K =
    channels x block) whose removal of the others raises the consumer's scaled output error least,
    removing one channel at a time."""
    gram, cross = stats.gram[0], stats.cross[0]
    block = weights.shape[1] // channels
    scale = stats.channel_scale ** 2
    t = cross.T - weights @ gram  # (M, K): x_k^T (y_m - X w_m)
    alive = list(range(channels))
    while len(alive) > keep_count:
        costs = []
        for c in alive:
            cols = slice(c * block, (c + 1) * block)
            w = weights[:, cols]
            costs.append(float(scale @ (2 * np.einsum("mk,mk->m", w, t[:, cols])
                                        + np.einsum("mk,kl,ml->m", w, gram[cols, cols], w))))
        c = alive.pop(int(np.argmin(costs)))
        cols = slice(c * block, (c + 1) * block)
        t += weights[:, cols] @ gram[cols, :]
    return np.array(alive, dtype=np.int64)


@dataclass(frozen=True, kw_only=True)
class ChannelPruner:
    """Prunes whole output channels of ``layer``; the interface of ``layer_step.LayerPruner``."""

    layer: str
    consumer: str
    stats: LayerStatistics  # of the consumer, X and Y from the network before this step
    consumer_weights: np.ndarray  # (M, K), masked
    consumer_keep: np.ndarray  # (M, K) bool
    available: int  # channels now

    @classmethod
    def for_layer(cls, network: Network, name: str, *, calibration_images: np.ndarray, rng: np.random.Generator,
                  max_rows: int) -> "ChannelPruner":
        found = chain(network, name)
        if found is None:
            raise PruningError(f"layer {name!r} cannot lose whole channels (see pruning.structured)")
        consumer = found[1]
        stats = layer_statistics(network, network, consumer, calibration_images, rng=rng, max_rows=max_rows)
        weights = weight_matrix(network, consumer)[0]
        return cls(layer=name, consumer=consumer, stats=stats, consumer_weights=weights,
                   consumer_keep=weights != 0, available=output_channels(network, name))

    def available_in(self, network: Network) -> int:
        return output_channels(network, self.layer)

    def candidate(self, network: Network, keep_count: int) -> Network:
        keep = greedy_channels(self.stats, self.consumer_weights, self.available, keep_count)
        block = self.consumer_weights.shape[1] // self.available
        columns = np.zeros(self.consumer_weights.shape[1], bool)
        for c in keep:
            columns[c * block : (c + 1) * block] = True
        mask = self.consumer_keep & columns[None, :]
        fitted = refit(self.stats, self.consumer_weights[None], mask[None])[0]
        return remove_channels(network, self.layer, keep, fitted[:, columns])
