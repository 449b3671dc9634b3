"""The mapper: the best mapping of a layer on an architecture under a dataflow, by energy (default),
cycles or energy-delay product, found by branch and bound over the closed-form model.

The space (for an architecture of DRAM, one shared buffer, a PE array and per-PE levels below it,
as every preset is):

- spatial: the dataflow's forced dimensions entirely on their axis, plus up to the dataflow's
  number of further dimensions per axis from its lists, each with any divisor of what is left,
  within the array (``sim.dataflow``);
- inside a PE: the dataflow's PE loops in its order, each with any divisor (forced ones whole),
  each at the innermost per-PE level that keeps a data type it indexes (never outside an earlier
  one), within every per-PE capacity;
- DRAM: any divisor of each dimension the dataflow lets leave the array, in one of ``ORDERS``;
- the buffer: the rest, in one of ``ORDERS``, within its capacity.

Every candidate is exact divisors (perfect factorisation). Search (exact for its space):

1. Every DRAM configuration (factors and order) whose buffer tile fits gets the exact energy of
   DRAM and of the buffer's fills (``sim.mapspace.outer_energy_batch``; it does not depend on how
   the buffer tile is split inside). Every inner configuration (spatial and PE factors) gets a
   bound on the rest that no mapping using it can beat (:func:`_inner_bounds`: the MACs, one read
   per MAC at each data type's innermost level, the distinct elements each PE must receive, their
   NoC words and buffer reads).
2. DRAM configurations are expanded best bound first. For each, every (inner configuration,
   buffer order) that divides the buffer tile gets the sum of the two plus what its loop order
   forces to be refetched (:func:`_revisit_bounds`, screened in ``sim.mapspace.screen_inner``);
   those whose bound does not exceed the best found so far are evaluated exactly with the batched
   model (``sim.mapspace.inner_batch``). A DRAM configuration whose bound exceeds the best found is
   pruned, and with it every later one (they are sorted), so the result is the optimum of the space.
3. Budget: when the candidates evaluated would exceed ``budget``, the search stops after the
   current configuration and returns the best found (best-first: the most promising DRAM
   configurations were expanded first) with ``exact=False`` and ``lower_bound``: the smallest
   bound left, so the optimum lies in [lower_bound, found]; ``gap`` = found / bound - 1.

Ties (equal objective) go to the smaller other metric (cycles for energy, energy otherwise), then
to the first candidate in enumeration order, so the same inputs always give the same mapping.
Results are cached in-process per (layer dims, architecture, dataflow, objective, budget).
"""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass

import numpy as np

from networks.layers import LoopDims
from sim.arch import DATA_TYPES, Architecture
from sim.counts import AccessCounts
from sim.dataflow import Dataflow, get_dataflow
from sim.energy import access_energy
from sim.errors import UsageError
from sim.mapping import DIMS, RELEVANT_DIMS, Mapping, MappingError, build_nest
from sim.mapspace import arch_tables, batch_workspace, decode, dims_array, inner_batch, outer_energy_batch, screen_inner
from sim.model import closed_form_counts

OBJECTIVES = ("energy", "cycles", "edp")
DEFAULT_DATAFLOW = "RS"
DEFAULT_BUDGET = 2_000_000
# Loop orders for DRAM and the buffer, outer to inner (dimensions with bound 1 drop out).
ORDERS = {
    "C_inner": ("G", "N", "P", "Q", "M", "R", "S", "C"),  # psums stay below while channels stream
    "M_inner": ("G", "N", "C", "P", "Q", "R", "S", "M"),  # inputs stay below while filters stream
    "PQ_inner": ("G", "M", "C", "R", "S", "N", "P", "Q"),  # weights stay below while pixels stream
    "N_inner": ("G", "M", "C", "R", "S", "P", "Q", "N"),  # weights stay below while images stream
}
_ORDER_TABLE = np.array([[DIMS.index(d) for d in order] for order in ORDERS.values()], np.int64)


class NoValidMappingError(MappingError):
    """No mapping of the layer obeys the dataflow and fits the architecture; ``constraint`` names
    the binding one."""

    def __init__(self, message: str, *, layer: str, constraint: str) -> None:
        super().__init__(message)
        self.layer = layer
        self.constraint = constraint


@dataclass(frozen=True)
class MapperResult:
    layer: str
    dataflow: str
    objective: str
    mapping: Mapping
    counts: AccessCounts
    energy: float
    cycles: int
    pes_used: int
    utilization: float
    candidates_evaluated: int
    space_size: int  # candidates in the space (before pruning)
    search_s: float
    exact: bool
    lower_bound: float  # of the objective: the optimum is in [lower_bound, found]
    gap: float  # found / lower_bound - 1 (0 when exact)
    cached: bool = False  # served from the in-process cache (candidates_evaluated: the original search's)

    @property
    def objective_value(self) -> float:
        return _primary(self.objective, self.energy, self.cycles)

    def loop_nest(self) -> str:
        return self.mapping.loop_nest()

    def summary(self) -> dict:
        return {"mapper": "search", "mapping_dataflow": self.dataflow, "mapping_objective": self.objective,
                "mapping_candidates": self.candidates_evaluated, "mapping_space": self.space_size,
                "mapping_search_s": self.search_s, "mapping_exact": self.exact, "mapping_gap": self.gap}


def _primary(objective: str, energy: float, cycles: float) -> float:
    return energy if objective == "energy" else cycles if objective == "cycles" else energy * cycles


def _key(objective: str, energy: float, cycles: float) -> tuple[float, float]:
    if objective == "energy":
        return (energy, cycles)
    if objective == "cycles":
        return (cycles, energy)
    return (energy * cycles, energy)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@dataclass(frozen=True)
class _Space:
    sizes: np.ndarray
    inner_y: np.ndarray  # (I, 8)
    inner_x: np.ndarray
    inner_pe: np.ndarray
    pe_dims: np.ndarray
    pe_levels: np.ndarray
    dram: np.ndarray  # (A, 8) DRAM factors
    dram_order: np.ndarray  # (A,)


def _check_shape(arch: Architecture, layer: str) -> int:
    fans = [i for i, level in enumerate(arch.levels) if level.fanout > 1]
    if len(fans) != 1 or fans[0] != 2 or arch.levels[0].capacity_words is not None:
        raise NoValidMappingError(
            f"layer {layer!r} on {arch.name!r}: the mapper searches architectures of DRAM, one shared buffer, "
            f"a PE array and per-PE levels (fan-out at the third level); this one has fan-outs at levels "
            f"{[arch.levels[i].name for i in fans]}; give a fixed mapping (--mapping) or --mapper default",
            layer=layer, constraint="architecture")
    for index, level in enumerate(arch.levels):
        if level.fanout > 1 and level.noc_energy_per_word is None:
            from sim.energy import EnergyTableError
            raise EnergyTableError(f"{arch.source_file}: level {level.name!r} has a fan-out but no noc_energy_per_word; "
                                   "add noc_energy_per_word and noc_energy_source to that level")
    return fans[0]


def _pe_placement(arch: Architecture, flow: Dataflow, fan: int) -> list[tuple[str, int]]:
    placed, previous = [], fan
    for d in flow.pe_loops:
        holders = [i for i in range(fan, len(arch.levels))
                   if any(d in RELEVANT_DIMS[t] for t in arch.levels[i].keeps)]
        level = max(previous, holders[-1] if holders else fan)
        placed.append((d, level))
        previous = level
    return placed


def _tile_words(ext: dict[str, int], data_type: str, stride: int) -> int:
    def hw(p, r):
        return (p - 1) * stride + r if (r >= stride or p == 1) else p * r
    if data_type == "weights":
        return ext["G"] * ext["M"] * ext["C"] * ext["R"] * ext["S"]
    if data_type == "inputs":
        return ext["N"] * ext["G"] * ext["C"] * hw(ext["P"], ext["R"]) * hw(ext["Q"], ext["S"])
    return ext["N"] * ext["G"] * ext["M"] * ext["P"] * ext["Q"]


def _level_problem(arch: Architecture, index: int, ext: dict[str, int], stride: int) -> str | None:
    level = arch.levels[index]
    if level.capacity_words is None:
        return None
    shared = 0
    for d in level.keeps:
        words = _tile_words(ext, d, stride)
        if d in level.partition_words:
            if words > level.partition_words[d]:
                return f"the {d} tile at {level.name!r} needs {words} words; its partition holds {level.partition_words[d]}"
        else:
            shared += words
    room = level.capacity_words - sum(level.partition_words.values())
    if shared > room:
        return f"the tiles at {level.name!r} need {shared} words; it holds {room}"
    return None


def _axis_options(sizes: dict[str, int], allowed: tuple[str, ...], count: int, room: int) -> list[dict[str, int]]:
    options = [{}]
    for k in range(1, count + 1):
        for chosen in itertools.combinations(allowed, k):
            lists = [[f for f in _divisors(sizes[d]) if f > 1 and f <= room] for d in chosen]
            for factors in itertools.product(*lists):
                if math.prod(factors) <= room:
                    options.append(dict(zip(chosen, factors)))
    return options


def _build_space(dims: LoopDims, arch: Architecture, flow: Dataflow, fan: int, layer: str) -> _Space:
    where = f"layer {layer!r} on {arch.name!r} under {flow.name}"
    sizes = {d: getattr(dims, d) for d in DIMS}
    array = arch.levels[fan]
    forced_y = {d: sizes[d] for d in flow.forced_spatial_y}
    used_y = math.prod(forced_y.values())
    if used_y > array.fanout_y:
        detail = ", ".join(f"{d}={v}" for d, v in forced_y.items())
        raise NoValidMappingError(
            f"{where}: {flow.name} puts all of {detail} on the array's Y axis (no strip-mining of "
            f"{'/'.join(forced_y)}), which has {array.fanout_y} PEs; no mapping exists",
            layer=layer, constraint="spatial:" + ",".join(forced_y))
    # Spatial options (Y then X), then PE options.
    spatial = []
    rest = {d: sizes[d] // forced_y.get(d, 1) for d in DIMS}
    y_allowed = tuple(d for d in flow.spatial_y if d not in flow.inner_only)
    x_allowed = tuple(d for d in flow.spatial_x if d not in flow.inner_only)
    for y in _axis_options(rest, y_allowed, flow.max_spatial_dims, array.fanout_y // used_y):
        left = {d: rest[d] // y.get(d, 1) for d in DIMS}
        for x in _axis_options(left, x_allowed, flow.max_spatial_dims, array.fanout_x):
            full_y = {**forced_y, **{d: v * forced_y.get(d, 1) for d, v in y.items()}}
            spatial.append((full_y, x))
    placement = _pe_placement(arch, flow, fan)
    pe_options: list[dict[str, int]] = []

    def fits_pe(factors: dict[str, int]) -> str | None:
        for index in range(fan, len(arch.levels)):
            ext = {d: 1 for d in DIMS}
            for d, level in placement:
                if level >= index:
                    ext[d] *= factors.get(d, 1)
            problem = _level_problem(arch, index, ext, dims.stride)
            if problem:
                return problem
        return None

    def grow(position: int, factors: dict[str, int]) -> None:
        if position == len(placement):
            pe_options.append(dict(factors))
            return
        d = placement[position][0]
        choices = [sizes[d]] if d in flow.forced_pe else _divisors(sizes[d])
        for f in choices:
            factors[d] = f
            if fits_pe(factors) is None:
                grow(position + 1, factors)
            elif d not in flow.forced_pe:
                break  # tiles grow with the factor: larger divisors do not fit either
        factors.pop(d, None)

    minimal = {d: sizes[d] for d in flow.forced_pe}
    problem = fits_pe(minimal)
    if problem:
        raise NoValidMappingError(
            f"{where}: even the smallest PE tile ({', '.join(f'{d}={v}' for d, v in minimal.items()) or 'one MAC'}) "
            f"does not fit: {problem}", layer=layer, constraint="capacity:pe")
    grow(0, {})
    # Inner configurations: every (spatial, PE) pair whose factors divide the layer, spatial-major.
    spatial_y = np.array([[y.get(d, 1) for d in DIMS] for y, _ in spatial], np.int64).reshape(-1, 8)
    spatial_x = np.array([[x.get(d, 1) for d in DIMS] for _, x in spatial], np.int64).reshape(-1, 8)
    pe_array = np.array([[pe.get(d, 1) for d in DIMS] for pe in pe_options], np.int64).reshape(-1, 8)
    together = (spatial_y * spatial_x)[:, None, :] * pe_array[None, :, :]
    si, pi = np.nonzero(np.all(dims_array(dims)[None, None, :] % together == 0, axis=2))
    inner_y, inner_x, inner_pe = spatial_y[si], spatial_x[si], pe_array[pi]
    # DRAM factor vectors whose buffer tile fits, in enumeration order, and their distinct orders.
    outer_dims = [d for d in DIMS if d not in flow.inner_only]
    divisor_lists = [_divisors(sizes[d]) if d in outer_dims else [1] for d in DIMS]
    grid = np.array(list(itertools.product(*divisor_lists)), np.int64).reshape(-1, 8)
    ext = dims_array(dims)[None, :] // grid
    fits = np.ones(len(grid), bool)
    buffer = arch.levels[1]
    if buffer.capacity_words is not None:
        e = {d: ext[:, i] for i, d in enumerate(DIMS)}
        stride = dims.stride

        def hw(p, r):
            return np.where((r >= stride) | (p == 1), (p - 1) * stride + r, p * r)
        words = {"weights": e["G"] * e["M"] * e["C"] * e["R"] * e["S"],
                 "inputs": e["N"] * e["G"] * e["C"] * hw(e["P"], e["R"]) * hw(e["Q"], e["S"]),
                 "outputs": e["N"] * e["G"] * e["M"] * e["P"] * e["Q"]}
        shared = np.zeros(len(grid), np.int64)
        for d in buffer.keeps:
            if d in buffer.partition_words:
                fits &= words[d] <= buffer.partition_words[d]
            else:
                shared += words[d]
        fits &= shared <= buffer.capacity_words - sum(buffer.partition_words.values())
    if not fits.any():
        smallest = {d: (sizes[d] if d in flow.inner_only else 1) for d in DIMS}
        raise NoValidMappingError(
            f"{where}: even the smallest buffer tile (everything else at DRAM) does not fit: "
            f"{_level_problem(arch, 1, smallest, dims.stride)}", layer=layer, constraint="capacity:" + buffer.name)
    grid = grid[fits]
    dram_rows, order_rows = [], []
    for row in grid:
        seen = set()
        for k, order in enumerate(_ORDER_TABLE):
            effective = tuple(int(d) for d in order if row[d] > 1)
            if effective not in seen:
                seen.add(effective)
                dram_rows.append(row)
                order_rows.append(k)
    return _Space(
        sizes=dims_array(dims), inner_y=inner_y, inner_x=inner_x, inner_pe=inner_pe,
        pe_dims=np.array([DIMS.index(d) for d, _ in placement], np.int64),
        pe_levels=np.array([level for _, level in placement], np.int64),
        dram=np.array(dram_rows, np.int64).reshape(-1, 8), dram_order=np.array(order_rows, np.int64),
    )


def _inner_bounds(dims: LoopDims, arch: Architecture, fan: int, space: "_Space") -> tuple[np.ndarray, np.ndarray]:
    """Per inner configuration (spatial and PE factors), energy that every mapping using it spends
    outside DRAM and the buffer's fills (which ``outer_energy_batch`` counts exactly):
    :func:`_inner_bound`, plus, per data type, at its innermost level below the array: fills of at
    least the distinct elements each instance touches (for partial sums: drains of at least that many
    over the NoC), the NoC deliveries of those fills, and buffer reads (updates for partial sums) of
    at least every element once; partial sums are read at their innermost level once per MAC but the
    first, exactly.

    Also returns, per inner configuration and data type, the energy each further *visit* of the
    distinct elements adds (see :func:`_revisit_bounds`)."""
    total = np.full(len(space.inner_y), _inner_bound(dims, arch))
    per_visit = np.zeros((len(space.inner_y), 3))
    if len(space.inner_y) == 0:
        return total, per_visit
    spatial = space.inner_y * space.inner_x
    pes = np.prod(spatial, axis=1).astype(float)
    e = {d: space.sizes[i] // spatial[:, i] for i, d in enumerate(DIMS)}  # sizes without spatial loops
    stride = dims.stride

    def rows(p, r):  # distinct input rows of p output rows and r filter rows: at least either
        return np.maximum(p, r)
    touched_per_pe = {
        "weights": e["G"] * e["M"] * e["C"] * e["R"] * e["S"],
        "inputs": e["N"] * e["G"] * e["C"] * rows(e["P"], e["R"]) * rows(e["Q"], e["S"]),
        "outputs": e["N"] * e["G"] * e["M"] * e["P"] * e["Q"],
    }
    hw = lambda p, r: (p - 1) * stride + r if (r >= stride or p == 1) else p * r  # noqa: E731
    whole = {"weights": dims.G * dims.M * dims.C * dims.R * dims.S,
             "inputs": dims.N * dims.G * dims.C * hw(dims.P, dims.R) * hw(dims.Q, dims.S),
             "outputs": dims.N * dims.G * dims.M * dims.P * dims.Q}
    buffer = arch.levels[1]
    noc = arch.levels[fan].noc_energy_per_word.energy_per_access
    for d in DATA_TYPES:
        keepers = arch.levels_keeping(d)
        innermost = keepers[-1]
        if innermost >= fan:
            level = arch.levels[innermost]
            words = touched_per_pe[d] * pes
            di = DATA_TYPES.index(d)
            if d != "outputs":
                total += words / level.block_words * level.energy_fill.energy_per_access
                per_visit[:, di] = words * (level.energy_fill.energy_per_access / level.block_words + noc)
                parent = arch.levels[keepers[keepers.index(innermost) - 1]]
                # the parent reads every element at least once per visit (multicast or not)
                parent_read = whole[d] / parent.block_words * parent.energy_read.energy_per_access
                per_visit[:, di] += parent_read
                if parent is arch.levels[0]:  # DRAM serves the PEs directly: not in the outer part
                    total += parent_read
            else:  # reads = updates - partition: exactly one per MAC but the first of each output
                total += (dims.macs - words) / level.block_words * level.energy_read.energy_per_access
                per_visit[:, di] = words * (level.energy_fill.energy_per_access / level.block_words + 2 * noc)
                if 1 in keepers and keepers[keepers.index(innermost) - 1] == 1:
                    per_visit[:, di] += whole[d] / buffer.block_words * (
                        buffer.energy_update.energy_per_access + buffer.energy_read.energy_per_access)
            total += words * noc
        elif d == "outputs" and innermost == 1:
            total += (dims.macs - whole[d]) / buffer.block_words * buffer.energy_read.energy_per_access
        if 1 in keepers and innermost != 1:
            action = buffer.energy_update if d == "outputs" else buffer.energy_read
            total += whole[d] / buffer.block_words * action.energy_per_access
    return total, per_visit


# Per data type (DATA_TYPES order): dimensions whose loops move a PE's tile off every element it held
# (plain coordinates), and dimensions that do not index the data type.
_MOVES_TILE = [np.array([DIMS.index(d) for d in dims], np.int64) for dims in ("GMCRS", "NGC", "NGMPQ")]
_IRRELEVANT = [np.array([DIMS.index(d) for d in DIMS if d not in RELEVANT_DIMS[t]], np.int64) for t in DATA_TYPES]
_MOVES_MASK = np.array([[d in m for d in range(8)] for m in _MOVES_TILE])
_IRRELEVANT_MASK = np.array([[d in m for d in range(8)] for m in _IRRELEVANT])


def _revisit_bounds(dram_factor: np.ndarray, dram_order: np.ndarray, fg: np.ndarray, per_visit: np.ndarray) -> np.ndarray:
    """Energy that every candidate (inner configuration c with buffer factors ``fg[c]``, buffer order
    o) spends on revisits beyond :func:`_inner_bounds`, shape (configurations, orders). The search
    runs its numba twin, ``sim.mapspace.screen_inner`` (the tests compare the two).

    Above the PE array, take the temporal loops outer to inner (DRAM, then the buffer) and the
    innermost one, j, over a dimension in ``_MOVES_TILE`` of a data type. When a loop outside j over
    a dimension that does not index the data type advances, every loop inside it restarts and j
    moves, so each PE's tile shares no element with the one before. Every element a PE holds is
    needed under every index of those loops, so it visits the PE at least ``v`` = the product of
    their bounds times, each visit after the first costing ``per_visit`` (fills, NoC, parent reads)."""
    n_config, n_orders = len(fg), len(_ORDER_TABLE)
    dram_dims = _ORDER_TABLE[dram_order]
    dims_seq = np.concatenate([np.broadcast_to(dram_dims, (n_orders, 8)), _ORDER_TABLE], axis=1)  # (O, 16)
    bounds = np.empty((n_config, n_orders, 16), np.int64)
    bounds[:, :, :8] = dram_factor[dram_dims]
    bounds[:, :, 8:] = fg[:, _ORDER_TABLE]  # (C, O, 8)
    positions = np.arange(16)
    extra = np.zeros((n_config, n_orders))
    for di in range(3):
        moving = _MOVES_MASK[di][dims_seq][None, :, :] & (bounds > 1)
        last = np.where(moving.any(axis=2), 15 - np.argmax(moving[:, :, ::-1], axis=2), -1)  # (C, O)
        factor = np.where(_IRRELEVANT_MASK[di][dims_seq][None, :, :], bounds, 1)
        outside = positions[None, None, :] < last[:, :, None]
        visits = np.prod(np.where(outside, factor, 1), axis=2)
        extra += (visits - 1) * per_visit[:, di][:, None]
    return extra


def _inner_bound(dims: LoopDims, arch: Architecture) -> float:
    """Energy no mapping avoids outside DRAM and the buffer's fills: the MACs, and one read per MAC
    (for partial sums: one update) at each data type's innermost level below DRAM."""
    macs = dims.macs
    total = macs * arch.mac_energy.energy_per_access
    for d in DATA_TYPES:
        innermost = arch.levels_keeping(d)[-1]
        if innermost == 0:
            continue
        level = arch.levels[innermost]
        if d == "outputs":  # its reads (one per MAC but the first of each output) need the spatial loops
            total += macs / level.block_words * level.energy_update.energy_per_access
        else:
            total += macs / level.block_words * level.energy_read.energy_per_access
    return total


_CACHE: dict[tuple, MapperResult] = {}


def clear_cache() -> None:
    """Forget the results of earlier searches (they are kept per process)."""
    _CACHE.clear()


def map_layer(dims: LoopDims, arch: Architecture, *, dataflow: str | None = None, objective: str = "energy",
              layer_name: str = "layer", budget: int = DEFAULT_BUDGET) -> MapperResult:
    """The best mapping of one layer (see the module docstring). Raises :class:`NoValidMappingError`
    naming the layer and the binding constraint when the space is empty."""
    if objective not in OBJECTIVES:
        raise UsageError(f"objective {objective!r} is not one of {', '.join(OBJECTIVES)}")
    flow = get_dataflow(dataflow or arch.dataflow or DEFAULT_DATAFLOW)
    key = (tuple(dims), repr(arch), flow.name, objective, int(budget))
    start = time.perf_counter()
    if key in _CACHE:  # the same search done before: its result, with this (near-zero) time
        cached = _CACHE[key]
        return MapperResult(**{**cached.__dict__, "layer": layer_name, "cached": True,
                               "search_s": time.perf_counter() - start})
    fan = _check_shape(arch, layer_name)
    space = _build_space(dims, arch, flow, fan, layer_name)
    tables = arch_tables(arch)
    stride = np.int64(dims.stride)
    outer = np.zeros(len(space.dram))
    outer_energy_batch(space.dram, space.dram_order, _ORDER_TABLE, space.sizes, stride, tables.keeps, tables.block,
                       tables.energy, bool(tables.timeloop), outer)
    inner_bounds, per_visit = _inner_bounds(dims, arch, fan, space)
    rest_bound = float(inner_bounds.min())
    inner_prod = space.inner_y * space.inner_x * space.inner_pe
    pes_inner = np.prod(space.inner_y * space.inner_x, axis=1)
    min_cycles = dims.macs / max(1, int(pes_inner.max()))
    bounds = outer + rest_bound
    lb_keys = [_key(objective, float(b), min_cycles) for b in bounds]
    visit = sorted(range(len(space.dram)), key=lambda i: (lb_keys[i], i))
    n_orders = len(_ORDER_TABLE)
    space_size = 0
    ext_all = space.sizes[None, :] // space.dram
    ws = batch_workspace(dims, tables)
    keep_buffer = np.zeros((len(space.inner_y), n_orders), np.bool_)
    bound_buffer = np.zeros((len(space.inner_y), n_orders))
    best = None  # (key, (dram index, inner index, order index), energy, cycles)
    evaluated = 0
    exact = True
    lower_bound = None
    for position, a in enumerate(visit):
        if best is not None and lb_keys[a] > best[0]:
            break
        if evaluated >= budget:
            exact = False
            lower_bound = _primary(objective, float(bounds[a]), min_cycles)
            break
        glb_ext = ext_all[a]
        limit = np.inf if best is None else best[0][0]
        screen_inner(space.dram[a], space.dram_order[a], glb_ext, inner_prod, inner_bounds, per_visit, _ORDER_TABLE,
                     _MOVES_MASK, _IRRELEVANT_MASK, float(outer[a]), float(min_cycles if objective == "edp" else 1.0),
                     float(limit), objective != "cycles", keep_buffer, bound_buffer)
        # Candidates best bound first, in growing chunks, so the incumbent tightens the rest.
        pairs = np.argwhere(keep_buffer)
        if objective != "cycles":
            pairs = pairs[np.argsort(bound_buffer[pairs[:, 0], pairs[:, 1]], kind="stable")]
        first, chunk = 0, 256
        while first < len(pairs):
            part = pairs[first:first + chunk]
            first, chunk = first + chunk, chunk * 2
            if best is not None and objective != "cycles":
                part = part[bound_buffer[part[:, 0], part[:, 1]] <= best[0][0]]
                if len(part) == 0:
                    break
            compatible = np.unique(part[:, 0])
            skip = np.ones((len(compatible), n_orders), np.bool_)
            skip[np.searchsorted(compatible, part[:, 0]), part[:, 1]] = False
            candidate, count = _evaluate_part(space, a, compatible, skip, glb_ext, stride, tables, ws, objective, n_orders)
            evaluated += count
            if candidate is not None and (best is None or (candidate[0], candidate[1]) < (best[0], best[1])):
                best = candidate
    if best is None:
        raise NoValidMappingError(f"layer {layer_name!r} on {arch.name!r} under {flow.name}: no candidate fits",
                                  layer=layer_name, constraint="capacity")
    space_size = len(space.dram) * len(space.inner_y) * n_orders
    (a, i, o) = best[1]
    mapping = _mapping_of(space, a, i, o, arch, flow, dims)
    nest = build_nest(dims, arch, mapping, layer_name=layer_name)
    counts = closed_form_counts(nest, arch)
    energy_value = float(access_energy(counts, arch).energy.sum())
    if not math.isclose(energy_value, best[2], rel_tol=1e-9):
        raise AssertionError(f"mapper kernel energy {best[2]} != model {energy_value} for {layer_name}")
    found = _primary(objective, energy_value, counts.cycles_compute)
    if exact:
        lower_bound, gap = found, 0.0
    else:
        lower_bound = min(lower_bound, found)
        gap = found / lower_bound - 1 if lower_bound > 0 else math.inf
    result = MapperResult(
        layer=layer_name, dataflow=flow.name, objective=objective, mapping=mapping, counts=counts,
        energy=energy_value, cycles=counts.cycles_compute, pes_used=counts.pes_used,
        utilization=counts.pes_used / arch.mac_units, candidates_evaluated=evaluated, space_size=space_size,
        search_s=time.perf_counter() - start, exact=exact, lower_bound=lower_bound, gap=gap)
    _CACHE[key] = result
    return result


def _evaluate_part(space: _Space, a: int, compatible: np.ndarray, skip: np.ndarray, glb_ext: np.ndarray, stride,
                   tables, ws, objective: str, n_orders: int):
    """Evaluate the candidates of DRAM configuration ``a`` on inner configurations ``compatible``
    not ``skip``ped; returns (the best as (key, (a, inner, order), energy, cycles) or None, count)."""
    energy = np.empty((len(compatible), n_orders))
    cycles = np.empty((len(compatible), n_orders), np.int64)
    inner_batch(space.dram[a], space.dram_order[a], glb_ext, space.inner_y[compatible], space.inner_x[compatible],
                space.inner_pe[compatible], _ORDER_TABLE, space.pe_dims, space.pe_levels, space.sizes, stride,
                tables.keeps, tables.capacity, tables.partition, tables.block, tables.fanout, tables.overlap,
                tables.energy, tables.noc_energy, float(tables.mac_energy), bool(tables.timeloop), ws, skip,
                energy, cycles)
    valid = np.isfinite(energy)
    if not valid.any():
        return None, 0
    keys = np.full(energy.shape, np.inf)
    keys[valid] = _keys_array(objective, energy[valid], cycles[valid])
    secondary = np.where(valid, _secondary(objective, energy, cycles), np.inf)
    flat = int(np.lexsort((np.arange(keys.size), secondary.ravel(), keys.ravel()))[0])
    ci, oi = divmod(flat, n_orders)
    key = (float(keys[ci, oi]), float(_secondary(objective, energy[ci, oi], cycles[ci, oi])))
    return (key, (a, int(compatible[ci]), oi), float(energy[ci, oi]), int(cycles[ci, oi])), int(valid.sum())


def _lb_primary(objective: str, energy_bound, cycles_bound):
    return energy_bound if objective == "energy" else np.full_like(energy_bound, cycles_bound) if objective == "cycles" else energy_bound * cycles_bound


def _keys_array(objective: str, energy: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    return energy.copy() if objective == "energy" else cycles.astype(float) if objective == "cycles" else energy * cycles


def _secondary(objective: str, energy, cycles):
    return cycles if objective == "energy" else energy


def _rows(space: _Space, a: int, i: int, o: int) -> np.ndarray:
    """Candidate (DRAM configuration a, inner configuration i, buffer order o) as encoded loops
    (``sim.mapspace.encode`` layout, bound-1 loops included)."""
    rows = []
    fd = space.dram[a]
    for d in _ORDER_TABLE[space.dram_order[a]]:
        rows.append((d, fd[d], 0, 0))
    fg = (space.sizes // fd) // (space.inner_y[i] * space.inner_x[i] * space.inner_pe[i])
    for d in _ORDER_TABLE[o]:
        rows.append((d, fg[d], 0, 1))
    for d in range(8):
        rows.append((d, space.inner_y[i][d], 2, 1))
    for d in range(8):
        rows.append((d, space.inner_x[i][d], 1, 1))
    for d, level in zip(space.pe_dims, space.pe_levels):
        rows.append((d, space.inner_pe[i][d], 0, level))
    return np.array(rows, np.int64)


def _mapping_of(space: _Space, a: int, i: int, o: int, arch: Architecture, flow: Dataflow, dims: LoopDims) -> Mapping:
    orders = list(ORDERS)
    return decode(_rows(space, a, i, o), arch,
                  source=f"mapper({flow.name}; DRAM {orders[space.dram_order[a]]}, {arch.levels[1].name} {orders[o]})")


__all__ = ["DEFAULT_BUDGET", "clear_cache", "MapperResult", "NoValidMappingError", "OBJECTIVES", "ORDERS", "map_layer"]
