"""A sound default mapping for any layer on any architecture (not an optimiser: a separate mapper
searches for the best mapping).

1. Spatial: at the (first) fan-out, spread output channels and input channels over the rows (Y) and
   output pixels, batch and channels over the columns (X), choosing the exact divisors that use the
   most PEs (at most two dimensions per axis).
2. Temporal: from the innermost level outwards, grow each level's tile one prime factor at a time,
   in an order that favours reuse inside the PE (filter taps and channels first), keeping every tile
   of every level within capacity.
3. Whatever is left iterates at the outermost level (DRAM), which is unbounded.
4. Loop order at the shared levels (DRAM and buffers above the PE array): of three classic orders
   (output-, weight-, input-stationary), the pair with the lowest closed-form energy.
All factors divide their dimension exactly; an all-DRAM mapping always fits, so a valid mapping
always exists unless the spatial choice alone overflows a buffer, in which case it backs off.
"""
from __future__ import annotations

import itertools
import math

from networks.layers import LoopDims
from sim.arch import Architecture
from sim.mapping import DIMS, LevelMapping, Loop, Mapping, MappingError, build_nest, capacity_violation, dim_sizes

SPATIAL_PREFERENCE = {"Y": ("M", "C", "R", "G"), "X": ("Q", "P", "N", "M", "C", "S")}
TEMPORAL_PREFERENCE = ("S", "R", "C", "M", "Q", "P", "N", "G")
# Loop orders inside a level, outer to inner; the inner loops are those whose data stays put.
LOOP_ORDERS = {
    "output_stationary": ("N", "G", "M", "P", "Q", "C", "R", "S"),
    "weight_stationary": ("G", "M", "C", "R", "S", "N", "P", "Q"),
    "input_stationary": ("N", "G", "C", "P", "Q", "R", "S", "M"),
}
LOOP_ORDER = LOOP_ORDERS["output_stationary"]


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _prime_factors(n: int) -> list[int]:
    factors, f = [], 2
    while f * f <= n:
        while n % f == 0:
            factors.append(f)
            n //= f
        f += 1
    if n > 1:
        factors.append(n)
    return factors


def _best_spatial(remaining: dict[str, int], axis: str, width: int) -> dict[str, int]:
    """Factors (dim -> divisor) for one axis using as many of ``width`` instances as possible."""
    best: dict[str, int] = {}
    best_used = 1
    dims = [d for d in SPATIAL_PREFERENCE[axis] if remaining[d] > 1]
    for count in (1, 2):
        for chosen in itertools.combinations(dims, count):
            for factors in itertools.product(*(_divisors(remaining[d]) for d in chosen)):
                used = math.prod(factors)
                if used <= width and used > best_used:
                    best, best_used = dict(zip(chosen, factors)), used
    return best


def _mapping(arch: Architecture, temporal: list[dict[str, int]], spatial: dict[str, tuple[int, str]], fan: int | None,
             orders: dict[int, tuple[str, ...]] | None = None) -> Mapping:
    levels = []
    for index, level in enumerate(arch.levels):
        order = (orders or {}).get(index, LOOP_ORDER)
        loops = tuple(Loop(d, temporal[index][d]) for d in order if temporal[index].get(d, 1) > 1)
        spat = ()
        if fan is not None and index == fan - 1:
            spat = tuple(Loop(d, b, axis) for (d, axis), b in spatial.items() if b > 1)
        levels.append(LevelMapping(level=level.name, temporal=loops, spatial=spat))
    return Mapping(levels=tuple(levels), source="default")


def _best_order(dims: LoopDims, arch: Architecture, temporal, spatial, fan: int | None, layer_name: str) -> Mapping:
    from sim.energy import total_energy
    from sim.model import closed_form_counts

    shared = [i for i in range(len(arch.levels)) if arch.instances(i) == 1 and len([d for d in temporal[i] if temporal[i][d] > 1]) > 1]
    best, best_energy = None, None
    for choice in itertools.product(LOOP_ORDERS.values(), repeat=len(shared)):
        mapping = _mapping(arch, temporal, spatial, fan, dict(zip(shared, choice)))
        nest = build_nest(dims, arch, mapping, layer_name=layer_name, check_capacity_fit=False)
        energy = total_energy(closed_form_counts(nest, arch), arch)
        if best_energy is None or energy < best_energy:
            best, best_energy = mapping, energy
    return best


def default_mapping(dims: LoopDims, arch: Architecture, *, layer_name: str = "layer") -> Mapping:
    sizes = dim_sizes(dims)
    fan = next((i for i, level in enumerate(arch.levels) if level.fanout > 1), None)
    temporal: list[dict[str, int]] = [dict() for _ in arch.levels]
    spatial: dict[tuple[str, str], int] = {}
    remaining = dict(sizes)

    def fits() -> bool:
        trial = dict(temporal[0])
        for d in DIMS:
            trial[d] = trial.get(d, 1) * remaining[d]
        levels = [trial] + temporal[1:]
        nest = build_nest(dims, arch, _mapping(arch, levels, spatial, fan), layer_name=layer_name, check_capacity_fit=False)
        return capacity_violation(nest, arch) is None

    if fan is not None:
        child = arch.levels[fan]
        for axis, width in (("Y", child.fanout_y), ("X", child.fanout_x)):
            for d, factor in _best_spatial(remaining, axis, width).items():
                spatial[(d, axis)] = factor
                remaining[d] //= factor
        # Back off (largest factor first) while the spatial tiles alone overflow a buffer.
        while spatial and not fits():
            key = max(spatial, key=lambda k: spatial[k])
            smaller = max(f for f in _divisors(spatial[key]) if f < spatial[key])
            remaining[key[0]] *= spatial[key] // smaller
            spatial[key] = smaller
            if smaller == 1:
                del spatial[key]

    for index in range(len(arch.levels) - 1, 0, -1):
        for d in TEMPORAL_PREFERENCE:
            for factor in _prime_factors(remaining[d]):
                temporal[index][d] = temporal[index].get(d, 1) * factor
                remaining[d] //= factor
                if not fits():
                    temporal[index][d] //= factor
                    remaining[d] *= factor
                    break
    for d in DIMS:
        temporal[0][d] = temporal[0].get(d, 1) * remaining[d]
    mapping = _best_order(dims, arch, temporal, spatial, fan, layer_name)
    try:
        build_nest(dims, arch, mapping, layer_name=layer_name)
    except MappingError as exc:  # a bug in this module, never the user's input
        raise AssertionError(f"default mapping is invalid: {exc}") from None
    return mapping
