"""NumPy representation of CNNs: layers, networks (DAGs with weights and masks), a model zoo."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from networks.errors import NetworkError, NetworkShapeError
from networks.io import load_npz, save_npz
from networks.layers import (
    NETWORK_INPUT, Add, AvgPool, BatchNorm, Concat, Conv2D, Dropout, Flatten, FullyConnected,
    GlobalAvgPool, Layer, LoopDims, LRN, MaxPool, ReLU, Softmax,
)
from networks.network import Network
from networks.zoo import ZOO

if TYPE_CHECKING:
    from networks.onnx_import import from_onnx


def available() -> dict[str, str]:
    """Zoo network names with a one-line description each."""
    return {name: description for name, (_, description) in ZOO.items()}


def get(name: str, *, seed: int | None = None) -> Network:
    """A zoo network by name, or the ONNX file ``name`` when it ends in ``.onnx``. With ``seed`` a
    network without weights gets them from ``numpy.random.default_rng(seed)`` (an ONNX file's own
    weights are kept); without, a zoo network has shapes only (enough for counts)."""
    if name.lower().endswith(".onnx"):
        if not Path(name).is_file():
            raise NetworkError(f"ONNX file {name!r} does not exist")
        from networks.onnx_import import from_onnx

        network = from_onnx(name)
        if seed is not None and not network.has_params:
            network.init_params(np.random.default_rng(seed))
        return network
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


def __getattr__(attribute: str):
    """``networks.from_onnx``, imported on first use so that ``onnx`` stays optional."""
    if attribute == "from_onnx":
        from networks.onnx_import import from_onnx

        return from_onnx
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")


__all__ = [
    "Add", "AvgPool", "BatchNorm", "Concat", "Conv2D", "Dropout", "Flatten", "FullyConnected",
    "GlobalAvgPool", "LRN", "Layer", "LoopDims", "MaxPool", "NETWORK_INPUT", "Network",
    "NetworkError", "NetworkShapeError", "ReLU", "Softmax", "available", "from_onnx", "get", "load_npz", "save_npz",
]
