"""The simulator's view of a network being pruned: every MAC layer simulated on the architecture with
the network's real (masked) weights and the activations of real images, giving per-layer energy by
level and data type, MACs performed and cycles. Batch norm is folded into the preceding convolution
first, as inference hardware runs it.

The mapping policy is a parameter: a callable ``(layer_name, dims, arch) -> Mapping`` (or None for
the simulator's default mapping), passed through to ``sim.simulate.simulate_layer``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from networks.layers import BatchNorm, LoopDims
from networks.network import Network
from sim.arch import Architecture
from sim.mapping import Mapping
from sim.results import BREAKDOWN_BY_DATA_TYPE, BREAKDOWN_BY_LEVEL, layers_table
from sim.simulate import layer_data, mac_layers, simulate_layer

MappingPolicy = Callable[[str, LoopDims, Architecture], Mapping]
ENERGY_COLUMNS = ("energy_total", *BREAKDOWN_BY_DATA_TYPE, *BREAKDOWN_BY_LEVEL)
COUNT_COLUMNS = ("macs_dense", "macs_performed", "cycles_total")


def cached_policy(policy: MappingPolicy | None) -> MappingPolicy:
    """``policy`` (None: the simulator's default mapping) remembered per layer and loop dims: a run
    simulates the same shapes again and again, and pruning weights does not change a mapping."""
    from sim.default_mapping import default_mapping

    memo: dict[tuple, Mapping] = {}

    def mapping_of(name: str, dims: LoopDims, arch: Architecture) -> Mapping:
        key = (name, dims, arch.name)
        if key not in memo:
            memo[key] = policy(name, dims, arch) if policy else default_mapping(dims, arch, layer_name=name)
        return memo[key]

    mapping_of.__name__ = getattr(policy, "__name__", "default_mapping")
    return mapping_of


def inference_form(network: Network) -> Network:
    """The network as the accelerator runs it (batch norm folded into its convolution)."""
    if any(isinstance(layer, BatchNorm) for layer in network.layers):
        return network.fold_batchnorm()
    return network


def simulate_energy(
    network: Network, arch: Architecture, images: np.ndarray, *, mapping_policy: MappingPolicy | None = None,
) -> pd.DataFrame:
    """One row per MAC layer (the columns of a run's ``layers.csv``) plus ``weights_nonzero``, for
    ``images`` (N, C, H, W) as the batch."""
    hardware = inference_form(network)
    images = np.asarray(images, np.float32)
    _, activations = hardware.forward(images, return_activations=True)
    batch = len(images)
    results = []
    for name in mac_layers(hardware):
        dims = hardware.loop_dims(name, batch)
        data = layer_data(hardware, name, batch=batch, activations=activations)
        weights_nonzero = hardware.nonzero_weights(name)
        results.append(simulate_layer(
            dims, arch, layer=name, kind=hardware.layer(name).kind,
            mapping=mapping_policy(name, dims, arch) if mapping_policy else None,
            method="engine", tensors=data.tensors, raw_network_input=data.raw_network_input,
            output_values=data.output_values, densities=data.densities,
            macs_effective=weights_nonzero * dims.P * dims.Q * batch,
        ))
    table = layers_table(results, arch)
    table["weights_nonzero"] = [hardware.nonzero_weights(name) for name in table.layer]
    table["weights"] = [int(np.prod(hardware.param_shapes(name)["weight"])) for name in table.layer]
    return table


def energy_order(layers: pd.DataFrame, selected: list[str]) -> list[str]:
    """``selected`` layers by simulated energy, highest first (ties: network order)."""
    energy = layers.set_index("layer")["energy_total"]
    position = {name: i for i, name in enumerate(layers.layer)}
    return sorted(selected, key=lambda name: (-float(energy[name]), position[name]))


def network_totals(layers: pd.DataFrame) -> dict[str, float]:
    """Network sums of the energy, MAC, cycle and weight columns."""
    columns = (*ENERGY_COLUMNS, *COUNT_COLUMNS, "weights_nonzero", "weights")
    return {column: float(layers[column].sum()) for column in columns}
