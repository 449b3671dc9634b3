"""Which layers a pruning run may touch: by name pattern, by layer type, minus an exclude list.

A selector that matches nothing is an error listing the layer names (a misspelled name must never
silently prune nothing).
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from networks.network import Network
from pruning.errors import PruningError

KIND_ALIASES = {"conv": "Conv2D", "conv2d": "Conv2D", "fc": "FullyConnected", "fullyconnected": "FullyConnected",
                "linear": "FullyConnected"}


@dataclass(frozen=True, kw_only=True)
class LayerSelector:
    """``patterns``: shell-style name patterns (``conv*``), any of which selects a layer (empty:
    every prunable layer); ``kinds``: layer types (``conv``, ``fc``, or ``Conv2D``,
    ``FullyConnected``; empty: both); ``exclude``: name patterns removed afterwards."""

    patterns: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def select(self, network: Network) -> list[str]:
        prunable = network.prunable_layers
        kinds = set()
        for kind in self.kinds:
            resolved = KIND_ALIASES.get(kind.lower().replace("_", ""), kind)
            if resolved not in ("Conv2D", "FullyConnected"):
                raise PruningError(f"layer type {kind!r} cannot be pruned; choose conv (Conv2D) or fc (FullyConnected)")
            kinds.add(resolved)
        chosen = []
        for name in prunable:
            if self.patterns and not any(fnmatch.fnmatchcase(name, p) for p in self.patterns):
                continue
            if kinds and network.layer(name).kind not in kinds:
                continue
            if any(fnmatch.fnmatchcase(name, p) for p in self.exclude):
                continue
            chosen.append(name)
        for pattern in (*self.patterns, *self.exclude):
            if not any(fnmatch.fnmatchcase(name, pattern) for name in network.layer_names):
                raise PruningError(
                    f"layer pattern {pattern!r} matches no layer of {network.name!r}; layers: "
                    f"{', '.join(network.layer_names)} (prunable: {', '.join(prunable)})"
                )
        if not chosen:
            raise PruningError(
                f"the layer selection (patterns {list(self.patterns)}, types {list(self.kinds)}, exclude "
                f"{list(self.exclude)}) matches no prunable layer of {network.name!r}; prunable layers: "
                f"{', '.join(prunable)}"
            )
        return chosen


ALL_LAYERS = LayerSelector()
