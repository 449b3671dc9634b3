"""Simulate a network (or one layer) on an architecture: mapping -> counts -> energy, per MAC layer.

Layers without MACs (pooling, ReLU, LRN, normalisation, merges) are not simulated: their data
movement is not part of the energy model (as in the energy-aware-pruning methodology).

The engine's data (:func:`layer_data`): the network's weights and the activations of a forward pass
on seeded random images, or, per layer, synthetic tensors of a requested density
(``sim.synthetic.DataProfile``). Every result carries the requested and achieved densities.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from tqdm import tqdm

from networks.layers import NETWORK_INPUT, Conv2D, LoopDims
from networks.network import Network
from sim.arch import DATA_TYPES, Architecture
from sim.counts import ACTIONS, AccessCounts
from sim.default_mapping import default_mapping
from sim.energy import access_energy, energy_breakdown
from sim.engine import layer_tensors, run_engine
from sim.errors import UsageError
from sim.mapping import Mapping, build_nest
from sim.model import closed_form_counts
from sim.timing import pe_utilization
from sim.synthetic import REAL_DATA, DataProfile, achieved_density, sparsify_weights, synthetic_tensor

log = logging.getLogger(__name__)

METHODS = ("engine", "model")
MAPPERS = ("search", "default")  # sim.mapper's search, or sim.default_mapping (fast, not optimised)
MAPPING_COLUMNS = ("mapper", "mapping_dataflow", "mapping_candidates", "mapping_search_s", "mapping_exact",
                   "mapping_gap")
NAN = float("nan")
DENSITY_COLUMNS = ("input_density_requested", "input_density_achieved", "weight_density_requested",
                   "weight_density_achieved", "output_density_achieved")


@dataclass
class LayerResult:
    layer: str
    kind: str
    dims: LoopDims
    mapping: Mapping
    counts: AccessCounts
    access: pd.DataFrame  # access_energy rows
    macs_effective: int
    seconds: float
    method: str
    breakdown: dict[str, float] = field(default_factory=dict)
    # fractions of non-zero values (NaN: not requested / no data, as with the closed form); inputs
    # before padding, outputs as written to DRAM (after a fused ReLU)
    densities: dict[str, float] = field(default_factory=lambda: dict.fromkeys(DENSITY_COLUMNS, NAN))
    # how the mapping was chosen (MAPPING_COLUMNS): "search" (sim.mapper), "default" or "fixed"
    mapping_info: dict = field(default_factory=lambda: {"mapper": "fixed"})

    def summary_row(self, arch: Architecture) -> dict:
        c = self.counts
        return {
            "layer": self.layer,
            "kind": self.kind,
            **{f"dim_{k}": v for k, v in self.dims._asdict().items()},
            "macs_dense": c.macs,
            "macs_effective": self.macs_effective,
            "macs_zero_operand": c.macs_zero_operand,
            "macs_performed": c.macs_performed,
            "macs_skipped": c.macs_skipped,
            **{k: self.densities.get(k, NAN) for k in DENSITY_COLUMNS},
            **timing_columns(c, arch),
            "pes_used": c.pes_used,
            **self.breakdown,
            **dram_bits(c, arch),
            "energy_unit": arch.energy_unit,
            "method": self.method,
            "simulation_s": self.seconds,
            **{k: self.mapping_info.get(k, NAN) for k in MAPPING_COLUMNS},
        }


# Architectures whose dense-model warning was given in this process.
_WARNED_DENSE_MODEL: set[str] = set()


def timing_columns(counts: AccessCounts, arch: Architecture) -> dict[str, float]:
    """The layer's cycles (``sim.timing``): total, compute, stalls by cause, PE utilisation (active
    PE-cycles / all PE-cycles) and latency in seconds at the core clock."""
    t = counts.timing
    return {
        "cycles_total": t.cycles_total, "cycles_compute": t.cycles_compute,
        "cycles_stall_dram": t.cycles_stall_dram, "cycles_stall_buffer": t.cycles_stall_buffer,
        "cycles_stall_noc": t.cycles_stall_noc, "cycles_stall_compute": t.cycles_stall_compute,
        "cycles_bound": t.cycles_bound,
        "pe_utilization": pe_utilization(counts, t, arch),
        "latency_s": t.cycles_total / (arch.clock_mhz * 1e6),
    }


def dram_bits(counts: AccessCounts, arch: Architecture) -> dict[str, int]:
    """DRAM traffic in bits per data type (reads + fills + updates), uncompressed and as moved
    (compressed where the architecture compresses that data type)."""
    out = {}
    for di, d in enumerate(DATA_TYPES):
        words = sum(counts.total(0, d, action) for action in ACTIONS)
        plain = words * arch.word_bits[d]
        out[f"dram_bits_uncompressed_{d}"] = plain
        out[f"dram_bits_compressed_{d}"] = int(counts.dram_bits[di].sum()) if counts.dram_compressed[di] else plain
    return out


def simulate_layer(
    dims: LoopDims,
    arch: Architecture,
    *,
    layer: str = "layer",
    kind: str = "Conv2D",
    mapping: Mapping | None = None,
    method: str = "engine",
    tensors: tuple[np.ndarray, np.ndarray] | None = None,
    macs_effective: int | None = None,
    rng: np.random.Generator | None = None,
    raw_network_input: bool = False,
    output_values: np.ndarray | None = None,
    densities: dict[str, float] | None = None,
    mapper: str = "search",
    dataflow: str | None = None,
    objective: str = "energy",
) -> LayerResult:
    """One layer. ``tensors`` are (weights, inputs) in loop-nest layout, flattened
    (``sim.engine.layer_tensors``); without them the engine runs on seeded random tensors.
    ``raw_network_input`` and ``output_values``: see ``sim.engine`` (DRAM compression).
    ``densities``: the ``DENSITY_COLUMNS`` to report (default: achieved on the tensors the engine
    runs on; none with the closed form). Without ``mapping``: ``mapper="search"`` finds the
    mapping under ``dataflow`` (default: the architecture's) that minimises ``objective``
    ("energy", "cycles" or "edp"; see ``sim.mapper``),
    ``mapper="default"`` takes ``sim.default_mapping``."""
    if method not in METHODS:
        raise UsageError(f"method {method!r} is not one of {METHODS}")
    if mapper not in MAPPERS:
        raise UsageError(f"mapper {mapper!r} is not one of {MAPPERS}")
    start = time.perf_counter()
    mapping_info = {"mapper": "fixed"}
    if mapping is None and mapper == "search":
        from sim.mapper import map_layer

        found = map_layer(dims, arch, dataflow=dataflow, objective=objective, layer_name=layer)
        mapping, mapping_info = found.mapping, found.summary()
    elif mapping is None:
        mapping, mapping_info = default_mapping(dims, arch, layer_name=layer), {"mapper": "default"}
    nest = build_nest(dims, arch, mapping, layer_name=layer)
    if method == "engine":
        if tensors is None:
            rng = rng or np.random.default_rng(0)
            tensors = (
                rng.standard_normal(dims.G * dims.M * dims.C * dims.R * dims.S, dtype=np.float32),
                rng.standard_normal(dims.N * dims.G * dims.C * dims.H * dims.W, dtype=np.float32),
            )
        engine = run_engine(nest, arch, *tensors, raw_network_input=raw_network_input, output_values=output_values)
        counts = engine.counts
        measured = {
            "input_density_achieved": achieved_density(tensors[1]),
            "weight_density_achieved": achieved_density(tensors[0]),
            "output_density_achieved": achieved_density(engine.outputs if output_values is None else output_values),
        }
        densities = {**dict.fromkeys(DENSITY_COLUMNS, NAN), **measured, **(densities or {})}
    else:
        if arch.exploits_zeros and arch.name not in _WARNED_DENSE_MODEL:
            # once per architecture and process: a network would otherwise repeat it for every layer
            _WARNED_DENSE_MODEL.add(arch.name)
            log.warning("the closed-form model counts dense data: the zero handling %s and DRAM "
                        "compression %s of %s are not applied; use the engine (--method engine) to "
                        "count them on real tensors", arch.zero_handling, arch.dram_compression,
                        arch.name)
        counts = closed_form_counts(nest, arch)
    access = access_energy(counts, arch)
    return LayerResult(
        layer=layer, kind=kind, dims=dims, mapping=mapping, counts=counts, access=access,
        macs_effective=counts.macs if macs_effective is None else macs_effective,
        seconds=time.perf_counter() - start, method=method, breakdown=energy_breakdown(access),
        densities={**dict.fromkeys(DENSITY_COLUMNS, NAN), **(densities or {})}, mapping_info=mapping_info,
    )


def _fused_relu(network: Network, name: str) -> str | None:
    """The ReLU that is a layer's only consumer (Eyeriss applies it on chip before writing ofmaps
    out, so DRAM receives its output), or None."""
    consumers = [other for other in network.layer_names if name in network.input_names(other)]
    if len(consumers) == 1 and network.layer(consumers[0]).kind == "ReLU":
        return consumers[0]
    return None


@dataclass(frozen=True)
class LayerData:
    """What the engine runs one layer on: ``tensors`` (weights, inputs) in loop-nest layout,
    flattened; ``output_values``: what DRAM receives as the layer's outputs (None: the engine's raw
    outputs); ``densities``: the ``DENSITY_COLUMNS`` (inputs before padding)."""

    tensors: tuple[np.ndarray, np.ndarray]
    output_values: np.ndarray | None
    raw_network_input: bool
    densities: dict[str, float]


def layer_data(network: Network, name: str, *, batch: int, activations: dict[str, np.ndarray] | None,
               data: DataProfile = REAL_DATA, rng: np.random.Generator | None = None) -> LayerData:
    """A MAC layer's data: the network's weights and its input from ``activations`` (a forward
    pass), each replaced by a synthetic tensor where ``data`` requests a density (drawn from
    ``rng``). When anything is synthetic, the outputs DRAM receives are recomputed from the data
    the layer actually sees (its forward function, then a fused ReLU)."""
    layer = network.layer(name)
    dims = network.loop_dims(name, batch)
    source = network.input_names(name)[0]
    weight = network.layer_params(name)["weight"]
    want_x, want_w = data.input_density_of(name), data.weight_density_of(name)
    if (want_x is not None or want_w is not None) and rng is None:
        raise ValueError(f"layer {name!r}: synthetic data needs an rng")
    if want_x is not None:
        x = synthetic_tensor((batch, *network.input_shapes(name)[0]), want_x, rng, clustered=data.clustered,
                             cluster_size=data.cluster_size, signed=source == NETWORK_INPUT)
    elif activations is not None:
        x = activations[source]
    else:
        raise ValueError(f"layer {name!r}: no activations and no synthetic input density")
    if want_w is not None:
        weight = sparsify_weights(weight, want_w, rng)
    relu = _fused_relu(network, name)
    if want_x is None and want_w is None:
        outputs = activations[relu] if relu else None
    else:
        params = {**network.layer_params(name), "weight": weight}
        raw = layer.forward([x], params)
        outputs = np.maximum(raw, 0) if relu else None
    padding = layer.padding if isinstance(layer, Conv2D) else 0
    densities = {
        "input_density_requested": NAN if want_x is None else want_x,
        "input_density_achieved": achieved_density(x),
        "weight_density_requested": NAN if want_w is None else want_w,
        "weight_density_achieved": achieved_density(weight),
    }
    if outputs is not None:
        densities["output_density_achieved"] = achieved_density(outputs)
    return LayerData(tensors=layer_tensors(dims, weight, x, padding), output_values=outputs,
                     raw_network_input=source == NETWORK_INPUT, densities=densities)


def mac_layers(network: Network) -> list[str]:
    return [name for name in network.layer_names if network.loop_dims(name) is not None]


LAYER_KEYS = ("N", "G", "M", "C", "P", "Q", "R", "S", "stride")


def parse_layer(text: str) -> LoopDims:
    """``"N=1,C=128,M=256,P=56,Q=56,R=3,S=3,stride=1"`` -> LoopDims (N, G, stride default to 1;
    M and C per group)."""
    values: dict[str, int] = {"N": 1, "G": 1, "stride": 1}
    for item in text.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or key not in LAYER_KEYS:
            raise UsageError(f"--layer: {item.strip()!r} is not KEY=VALUE with KEY one of {', '.join(LAYER_KEYS)}")
        try:
            values[key] = int(value)
        except ValueError:
            raise UsageError(f"--layer: {key}={value!r} is not an integer") from None
        if values[key] < 1:
            raise UsageError(f"--layer: {key}={values[key]} must be >= 1")
    missing = [k for k in ("M", "C", "P", "Q", "R", "S") if k not in values]
    if missing:
        raise UsageError(f"--layer: missing {', '.join(missing)} (give N, G, M, C, P, Q, R, S, stride)")
    return LoopDims(
        **{k: values[k] for k in ("N", "G", "M", "C", "P", "Q", "R", "S", "stride")},
        H=(values["P"] - 1) * values["stride"] + values["R"], W=(values["Q"] - 1) * values["stride"] + values["S"],
    )


def simulate_network(
    network: Network,
    arch: Architecture,
    *,
    batch: int = 1,
    method: str = "engine",
    mappings: dict[str, Mapping] | None = None,
    seed: int = 0,
    data: DataProfile = REAL_DATA,
    layers: list[str] | None = None,
    progress: bool = True,
    on_layer: Callable[[LayerResult], None] | None = None,
    mapper: str = "search",
    dataflow: str | None = None,
    objective: str = "energy",
) -> list[LayerResult]:
    """Every MAC layer of ``network`` (or the MAC layers named in ``layers``). The engine runs on the
    network's real tensors: its weights (initialised from ``seed`` if it has none) and the
    activations of a forward pass of a batch of seeded standard-normal images, except where
    ``data`` asks for synthetic tensors of a given density (``sim.synthetic``; layer i draws them
    from ``numpy.random.default_rng((seed, 1, i))``, i its position among the MAC layers).
    Layers without an entry in ``mappings`` are mapped by ``mapper`` (see :func:`simulate_layer`)."""
    all_names = mac_layers(network)
    names = all_names if layers is None else list(layers)
    unknown = sorted(set(names) - set(all_names)) + data.unknown_layers(all_names)
    if unknown:
        raise UsageError(f"{network.name}: no MAC layer named {', '.join(map(repr, unknown))}; MAC layers: "
                         f"{', '.join(all_names)}")
    if data.synthetic and method != "engine":
        raise UsageError("synthetic densities need --method engine: the closed-form model counts dense data")
    rng = np.random.default_rng(seed)
    activations = None
    if method == "engine":
        if not network.has_params:
            network = network.copy().init_params(np.random.default_rng(seed))
        images = rng.standard_normal((batch, *network.input_shape), dtype=np.float32)
        if any(data.input_density_of(name) is None for name in names):
            _, activations = network.forward(images, return_activations=True)
    summary = network.summary().set_index("layer")
    results = []
    for name in tqdm(names, desc=f"{network.name} on {arch.name}", disable=not progress, unit="layer"):
        dims = network.loop_dims(name, batch)
        layer = network.layer(name)
        macs_effective = int(summary.loc[name, "macs_effective"]) * batch
        engine_inputs = {}
        if method == "engine":
            d = layer_data(network, name, batch=batch, activations=activations, data=data,
                           rng=np.random.default_rng((seed, 1, all_names.index(name))))
            engine_inputs = dict(tensors=d.tensors, raw_network_input=d.raw_network_input,
                                 output_values=d.output_values, densities=d.densities)
            if data.weight_density_of(name) is not None:  # a conv weight is used P*Q times per image
                macs_effective = int(np.count_nonzero(d.tensors[0])) * dims.P * dims.Q * batch
        result = simulate_layer(dims, arch, layer=name, kind=layer.kind, mapping=(mappings or {}).get(name),
                                method=method, macs_effective=macs_effective, mapper=mapper, dataflow=dataflow,
                                objective=objective,
                                **engine_inputs)
        results.append(result)
        if on_layer:
            on_layer(result)
    return results
