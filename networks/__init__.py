"""NumPy representation of CNNs: layers, networks (DAGs with weights and masks), a model zoo."""
from __future__ import annotations

import numpy as np

from networks.errors import NetworkError, NetworkShapeError
from networks.io import load_npz, save_npz
from networks.layers import (
    NETWORK_INPUT, Add, AvgPool, BatchNorm, Concat, Conv2D, Dropout, Flatten, FullyConnected,
    GlobalAvgPool, Layer, LoopDims, LRN, MaxPool, ReLU, Softmax,
)
from networks.network import Network
from networks.zoo import ZOO


def available() -> dict[str, str]:
    """Zoo network names with a one-line description each."""
    return {name: description for name, (_, description) in ZOO.items()}


def get(name: str, *, seed: int | None = None) -> Network:
    """A zoo network by name. With ``seed`` its weights are initialised from
    ``numpy.random.default_rng(seed)``; without, it has shapes only (enough for counts)."""
    key = name.lower().replace("-", "").replace(" ", "")
    aliases = {n.replace("_", ""): n for n in ZOO}
    if key not in ZOO:
        key = aliases.get(key.replace("_", ""), key)
    if key not in ZOO:
        raise NetworkError(f"unknown network {name!r}; available: {', '.join(ZOO)}")
    network = ZOO[key][0]()
    if seed is not None:
        network.init_params(np.random.default_rng(seed))
    return network


__all__ = [
    "Add", "AvgPool", "BatchNorm", "Concat", "Conv2D", "Dropout", "Flatten", "FullyConnected",
    "GlobalAvgPool", "LRN", "Layer", "LoopDims", "MaxPool", "NETWORK_INPUT", "Network",
    "NetworkError", "NetworkShapeError", "ReLU", "Softmax", "available", "get", "load_npz", "save_npz",
]
