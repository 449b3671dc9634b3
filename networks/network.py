"""A CNN as a named DAG of layers in topological order, with weights and pruning masks.

The architecture (layers and input shape) is fixed at construction and every shape is inferred
then, so a wrongly wired network fails before any data flows. Weights live in ``params``
(``{layer: {param: float32 array}}``); pruning masks live apart from the weights in ``masks``
(``{layer: bool array shaped like that layer's weight}``), and the forward pass multiplies them in.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable

import numpy as np
import pandas as pd

from networks.errors import NetworkError, NetworkShapeError
from networks.layers import (
    NETWORK_INPUT, BatchNorm, Conv2D, Layer, LoopDims, Shape, fan_in,
)

PRUNABLE_PARAM = "weight"


class Network:
    def __init__(
        self,
        *,
        name: str,
        input_shape: Shape,
        layers: Iterable[Layer],
        params: dict[str, dict[str, np.ndarray]] | None = None,
        masks: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.name = name
        self.input_shape: Shape = tuple(int(v) for v in input_shape)  # type: ignore[assignment]
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise NetworkShapeError(
                f"network {name!r}: input_shape must be (C, H, W) with positive sizes, got {input_shape}"
            )
        self.layers: tuple[Layer, ...] = tuple(layers)
        if not self.layers:
            raise NetworkError(f"network {name!r} has no layers")
        self._by_name: dict[str, Layer] = {}
        self._inputs: dict[str, tuple[str, ...]] = {}
        self._shapes: dict[str, Shape] = {NETWORK_INPUT: self.input_shape}
        previous = NETWORK_INPUT
        for layer in self.layers:
            if layer.name in self._by_name:
                raise NetworkError(f"network {name!r}: layer name {layer.name!r} is used twice")
            sources = layer.inputs or (previous,)
            for source in sources:
                if source not in self._shapes:
                    raise NetworkError(
                        f"network {name!r}: layer {layer.name!r} takes input {source!r}, which is "
                        f"not an earlier layer (layers must be listed in topological order)"
                    )
            if layer.arity is not None and len(sources) != layer.arity:
                raise NetworkError(
                    f"network {name!r}: layer {layer.name!r} ({layer.kind}) takes {layer.arity} "
                    f"input(s), got {len(sources)}: {list(sources)}"
                )
            if layer.arity is None and len(sources) < 2:
                raise NetworkError(
                    f"network {name!r}: layer {layer.name!r} ({layer.kind}) merges two or more "
                    f"inputs, got {list(sources)}"
                )
            self._by_name[layer.name] = layer
            self._inputs[layer.name] = tuple(sources)
            self._shapes[layer.name] = layer.output_shape([self._shapes[s] for s in sources])
            previous = layer.name
        self.output_name = previous
        self.params: dict[str, dict[str, np.ndarray]] = {}
        self.masks: dict[str, np.ndarray] = {}
        if params is not None:
            self.set_params(params)
        for layer_name, mask in (masks or {}).items():
            self.set_mask(layer_name, mask)

    # --- structure ---------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"Network({self.name!r}, {len(self.layers)} layers, input {self.input_shape})"

    @property
    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def layer(self, name: str) -> Layer:
        try:
            return self._by_name[name]
        except KeyError:
            raise NetworkError(
                f"network {self.name!r} has no layer {name!r}; layers: {self.layer_names}"
            ) from None

    def input_names(self, name: str) -> tuple[str, ...]:
        self.layer(name)
        return self._inputs[name]

    def input_shapes(self, name: str) -> list[Shape]:
        return [self._shapes[s] for s in self.input_names(name)]

    def output_shape(self, name: str | None = None) -> Shape:
        return self._shapes[name or self.output_name]

    def param_shapes(self, name: str) -> dict[str, tuple[int, ...]]:
        return self.layer(name).param_shapes(self.input_shapes(name))

    def loop_dims(self, name: str, batch: int = 1) -> LoopDims | None:
        return self.layer(name).loop_dims(self.input_shapes(name), batch)

    @property
    def prunable_layers(self) -> list[str]:
        """Layers with a weight tensor that a pruning mask applies to (Conv2D, FullyConnected)."""
        return [n for n in self.layer_names if PRUNABLE_PARAM in self.param_shapes(n)]

    # --- weights and masks -------------------------------------------------------------------
    @property
    def has_params(self) -> bool:
        return all(name in self.params for name in self.layer_names if self.param_shapes(name))

    def set_params(self, params: dict[str, dict[str, np.ndarray]]) -> None:
        """Replace the weights, checking every tensor against the inferred shapes."""
        checked: dict[str, dict[str, np.ndarray]] = {}
        for layer in self.layers:
            expected = self.param_shapes(layer.name)
            if not expected:
                continue
            given = params.get(layer.name)
            if given is None:
                raise NetworkError(f"network {self.name!r}: no parameters given for layer {layer.name!r}")
            if set(given) != set(expected):
                raise NetworkError(
                    f"layer {layer.name!r}: parameters {sorted(given)} given, expected {sorted(expected)}"
                )
            checked[layer.name] = {}
            for param_name, shape in expected.items():
                array = np.asarray(given[param_name], dtype=np.float32)
                if array.shape != shape:
                    raise NetworkShapeError(
                        f"layer {layer.name!r}: parameter {param_name!r} has shape {array.shape}, "
                        f"expected {shape}"
                    )
                checked[layer.name][param_name] = array
        extra = set(params) - set(checked)
        if extra:
            raise NetworkError(f"network {self.name!r}: parameters given for unknown layers {sorted(extra)}")
        self.params = checked

    def init_params(self, rng: np.random.Generator) -> "Network":
        """He-normal weights, zero biases, identity batch norm; deterministic for a given ``rng``."""
        params: dict[str, dict[str, np.ndarray]] = {}
        for layer in self.layers:
            shapes = self.param_shapes(layer.name)
            if not shapes:
                continue
            layer_params = {}
            for param_name, shape in shapes.items():
                if param_name == "weight":
                    std = np.sqrt(2.0 / fan_in(shape))
                    layer_params[param_name] = (rng.standard_normal(shape, dtype=np.float32) * std).astype(np.float32)
                elif param_name in ("gamma", "running_var"):
                    layer_params[param_name] = np.ones(shape, np.float32)
                else:
                    layer_params[param_name] = np.zeros(shape, np.float32)
            params[layer.name] = layer_params
        self.set_params(params)
        return self

    def set_mask(self, name: str, mask: np.ndarray) -> None:
        shapes = self.param_shapes(name)
        if PRUNABLE_PARAM not in shapes:
            raise NetworkError(
                f"layer {name!r} ({self.layer(name).kind}) has no weight to mask; prunable layers: "
                f"{self.prunable_layers}"
            )
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != shapes[PRUNABLE_PARAM]:
            raise NetworkShapeError(
                f"layer {name!r}: mask has shape {mask.shape}, weight has shape {shapes[PRUNABLE_PARAM]}"
            )
        self.masks[name] = mask

    def layer_params(self, name: str) -> dict[str, np.ndarray]:
        """The layer's parameters as the forward pass uses them (weight x mask)."""
        params = self.params.get(name, {})
        if name in self.masks:
            params = {**params, PRUNABLE_PARAM: params[PRUNABLE_PARAM] * self.masks[name]}
        return params

    def nonzero_weights(self, name: str) -> int:
        """Weights that survive the mask (and are not zero themselves, when weights are loaded)."""
        shape = self.param_shapes(name).get(PRUNABLE_PARAM)
        if shape is None:
            return 0
        if name in self.params:
            return int(np.count_nonzero(self.layer_params(name)[PRUNABLE_PARAM]))
        if name in self.masks:
            return int(self.masks[name].sum())
        return int(np.prod(shape))

    # --- counts ------------------------------------------------------------------------------
    def summary(self) -> pd.DataFrame:
        """One row per layer: output shape, weights (no biases), dense and effective MACs per sample.

        Effective MACs count only non-zero weights: a conv weight is used P*Q times per sample, so
        ``macs_effective = nonzero_weights * P * Q`` (an FC layer has P = Q = 1).
        """
        rows = []
        for layer in self.layers:
            shapes = self.param_shapes(layer.name)
            weight_shape = shapes.get(PRUNABLE_PARAM)
            weights = int(np.prod(weight_shape)) if weight_shape else 0
            nonzero = self.nonzero_weights(layer.name)
            macs = layer.macs(self.input_shapes(layer.name))
            _, p, q = self.output_shape(layer.name)
            rows.append(
                {
                    "layer": layer.name,
                    "kind": layer.kind,
                    "output_shape": "x".join(str(v) for v in self.output_shape(layer.name)),
                    "weights": weights,
                    "biases": int(np.prod(shapes["bias"])) if "bias" in shapes else 0,
                    "weights_nonzero": nonzero,
                    "macs_dense": macs,
                    "macs_effective": nonzero * p * q if weights else 0,
                }
            )
        return pd.DataFrame(rows)

    def totals(self) -> dict[str, int]:
        table = self.summary()
        return {
            column: int(table[column].sum())
            for column in ("weights", "biases", "weights_nonzero", "macs_dense", "macs_effective")
        }

    # --- execution ---------------------------------------------------------------------------
    def forward(
        self, x: np.ndarray, *, return_activations: bool = False
    ) -> np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]:
        """Inference forward pass on a batch ``x`` of shape (N, C, H, W).

        With ``return_activations`` also returns every layer's output by layer name, and the
        network input under ``"input"``; a layer's input is the output of ``input_names(layer)``.
        """
        x = np.asarray(x, dtype=np.float32)
        self.check_input(x)
        activations: dict[str, np.ndarray] = {NETWORK_INPUT: x}
        consumers_left = self._consumer_counts()
        for layer in self.layers:
            sources = self._inputs[layer.name]
            activations[layer.name] = layer.forward(
                [activations[s] for s in sources], self.layer_params(layer.name)
            )
            if not return_activations:  # free what no later layer reads
                for s in sources:
                    consumers_left[s] -= 1
                    if consumers_left[s] == 0:
                        del activations[s]
        output = activations[self.output_name]
        return (output, activations) if return_activations else output

    def check_input(self, x: np.ndarray) -> None:
        """Raise unless ``x`` is a batch of this network's input shape and the network has weights."""
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise NetworkShapeError(
                f"network {self.name!r} expects input (N, {', '.join(map(str, self.input_shape))}) "
                f"but got {x.shape}"
            )
        if not self.has_params:
            raise NetworkError(
                f"network {self.name!r} has no weights: call init_params(rng) or load a saved model"
            )

    def _consumer_counts(self) -> dict[str, int]:
        counts = {NETWORK_INPUT: 0, **{n: 0 for n in self.layer_names}}
        for sources in self._inputs.values():
            for s in sources:
                counts[s] += 1
        counts[self.output_name] += 1  # never free the output
        return counts

    # --- transformations ---------------------------------------------------------------------
    def copy(self) -> "Network":
        return Network(
            name=self.name, input_shape=self.input_shape, layers=self.layers,
            params={k: {p: a.copy() for p, a in v.items()} for k, v in self.params.items()} or None,
            masks={k: m.copy() for k, m in self.masks.items()},
        )

    def fold_batchnorm(self) -> "Network":
        """A copy in which each BatchNorm that directly follows a Conv2D (its only reader) is folded
        into that conv's weight and bias, as inference hardware runs it."""
        readers: dict[str, int] = {}
        for sources in self._inputs.values():
            for s in sources:
                readers[s] = readers.get(s, 0) + 1
        renamed: dict[str, str] = {}
        layers: list[Layer] = []
        params = {k: dict(v) for k, v in self.params.items()}
        by_name = {}
        for layer in self.layers:
            sources = tuple(renamed.get(s, s) for s in self._inputs[layer.name])
            producer = by_name.get(sources[0])
            if (
                isinstance(layer, BatchNorm)
                and isinstance(producer, Conv2D)
                and readers.get(producer.name, 0) == 1
            ):
                folded = dataclasses.replace(producer, bias=True)
                layers[layers.index(producer)] = folded
                by_name[producer.name] = folded
                renamed[layer.name] = producer.name
                if self.params:
                    scale, shift = layer.scale_shift(self.params[layer.name])
                    conv = params[producer.name]
                    bias = conv.get("bias", np.zeros_like(scale))
                    params[producer.name] = {
                        "weight": conv["weight"] * scale[:, None, None, None],
                        "bias": bias * scale + shift,
                    }
                    params.pop(layer.name)
                continue
            new_layer = dataclasses.replace(layer, inputs=sources)
            layers.append(new_layer)
            by_name[new_layer.name] = new_layer
        return Network(
            name=self.name, input_shape=self.input_shape, layers=layers,
            params=params or None, masks=self.masks,
        )
