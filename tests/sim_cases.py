"""Random small layers, architectures and valid mappings for property tests (hypothesis)."""
from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from networks.layers import LoopDims
from sim.arch import DATA_TYPES, Architecture, EnergyEntry, StorageLevel
from sim.mapping import DIMS, Loop, LevelMapping, Mapping

UNIT = EnergyEntry(energy_per_access=1.0, source="test")


def _factorizations(n: int) -> list[list[int]]:
    """All ordered ways to write n as a product of factors > 1."""
    if n == 1:
        return [[]]
    out = []
    for f in range(2, n + 1):
        if n % f == 0:
            out += [[f] + rest for rest in _factorizations(n // f)]
    return out


@st.composite
def layer_dims(draw, max_macs: int = 3000) -> LoopDims:
    while True:
        sizes = {
            "N": draw(st.integers(1, 2)), "G": draw(st.integers(1, 2)), "M": draw(st.integers(1, 4)),
            "C": draw(st.integers(1, 4)), "P": draw(st.integers(1, 4)), "Q": draw(st.integers(1, 4)),
            "R": draw(st.integers(1, 3)), "S": draw(st.integers(1, 3)),
        }
        stride = draw(st.integers(1, 3))
        macs = 1
        for v in sizes.values():
            macs *= v
        if macs <= max_macs:
            break
    return LoopDims(**sizes, stride=stride, H=(sizes["P"] - 1) * stride + sizes["R"], W=(sizes["Q"] - 1) * stride + sizes["S"])


@st.composite
def architectures(draw, counting: str | None = None, min_fanout: int = 1) -> Architecture:
    """DRAM, then 1-3 inner levels keeping random data types, one fan-out above a random level
    (at least ``min_fanout`` instances along each axis)."""
    inner = draw(st.integers(1, 3))
    fanout_level = draw(st.integers(1, inner))
    multicast = draw(st.sampled_from(["identical", "overlap"]))
    levels = [StorageLevel(name="DRAM", keeps=DATA_TYPES, capacity_words=None, block_words=draw(st.integers(1, 4)),
                           energy_read=UNIT, energy_fill=UNIT, energy_update=UNIT)]
    for index in range(1, inner + 1):
        keeps = tuple(d for d in DATA_TYPES if draw(st.booleans()))
        fan = index == fanout_level
        levels.append(StorageLevel(
            name=f"L{index}", keeps=keeps, capacity_words=None, block_words=draw(st.integers(1, 3)),
            fanout_x=draw(st.integers(min_fanout, 4)) if fan else 1,
            fanout_y=draw(st.integers(min_fanout, 4)) if fan else 1,
            multicast=multicast if fan else "identical",
            energy_read=UNIT, energy_fill=UNIT, energy_update=UNIT,
            noc_energy_per_word=UNIT if fan else None,
        ))
    return Architecture(
        name="random", description="", source_file="<test>", clock_mhz=100.0, energy_unit="pJ",
        counting=counting or draw(st.sampled_from(["timeloop", "exact"])),
        word_bits={d: 16 for d in DATA_TYPES}, levels=tuple(levels), mac_energy=UNIT,
    )


@st.composite
def mappings(draw, dims: LoopDims, arch: Architecture) -> Mapping:
    """Split each dimension into random factors placed at random levels, or spatially at the fan-out."""
    fan = next((i for i, level in enumerate(arch.levels) if level.fanout > 1), None)
    temporal: list[list[Loop]] = [[] for _ in arch.levels]
    spatial: list[Loop] = []
    room = {"X": arch.levels[fan].fanout_x, "Y": arch.levels[fan].fanout_y} if fan is not None else {}
    for d in DIMS:
        for factor in draw(st.sampled_from(_factorizations(getattr(dims, d)))):
            axis = draw(st.sampled_from([None, "X", "Y"])) if fan is not None else None
            if axis is not None and room[axis] % factor == 0:
                room[axis] //= factor
                spatial.append(Loop(d, factor, axis))
            else:
                temporal[draw(st.integers(0, len(arch.levels) - 1))].append(Loop(d, factor))
    levels = []
    for i, level in enumerate(arch.levels):
        loops = draw(st.permutations(temporal[i]))
        spat = tuple(draw(st.permutations(spatial))) if fan is not None and i == fan - 1 else ()
        levels.append(LevelMapping(level=level.name, temporal=tuple(loops), spatial=spat))
    return Mapping(levels=tuple(levels), source="random")


@st.composite
def remainder_mappings(draw, dims: LoopDims, arch: Architecture) -> Mapping:
    """A random valid mapping (``mappings``) in which one dimension, when it can, gets a spatial
    remainder instead: its outermost loops spatial at the fan-out and covering more than the
    dimension (idle PEs), the loops inside them (at the levels below the fan-out) multiplying to a
    divisor of it."""
    fan = next((i for i, level in enumerate(arch.levels) if level.fanout > 1), None)
    base = draw(mappings(dims, arch))
    if fan is None:
        return base
    choices = []
    for d in DIMS:
        size = getattr(dims, d)
        for inner in (v for v in range(1, size + 1) if size % v == 0):
            count = size // inner  # instance shares along d
            for second in range(1, count):
                outer = -(-count // second)
                if outer * second > count and outer > 1:
                    choices.append((d, inner, outer, second))
    if not choices:
        return base
    d, inner, outer, second = draw(st.sampled_from(choices))
    limit = {"X": arch.levels[fan].fanout_x, "Y": arch.levels[fan].fanout_y}
    used = {"X": 1, "Y": 1}
    guarded = []
    for bound in (outer, second):
        if bound == 1:
            continue
        fits = [a for a in ("X", "Y") if used[a] * bound <= limit[a]]
        if not fits:
            return base
        axis = draw(st.sampled_from(fits))
        used[axis] *= bound
        guarded.append(Loop(d, bound, axis))
    others, displaced = [], []
    for loop in base.levels[fan - 1].spatial:  # the other dimensions' spatial loops that still fit
        if loop.dim == d:
            continue
        if used[loop.axis] * loop.bound > limit[loop.axis]:
            displaced.append(Loop(loop.dim, loop.bound))  # becomes temporal above the fan-out
            continue
        used[loop.axis] *= loop.bound
        others.append(loop)
    order = draw(st.permutations(range(len(guarded) + len(others))))
    slots = iter(guarded)  # the remainder's loops keep their order (the outer one first)
    spatial = tuple(next(slots) if k < len(guarded) else others[k - len(guarded)] for k in order)
    temporal: list[list[Loop]] = [[l for l in lm.temporal if l.dim != d] for lm in base.levels]
    temporal[fan - 1] += displaced
    for factor in draw(st.sampled_from(_factorizations(inner))):
        temporal[draw(st.integers(fan, len(arch.levels) - 1))].append(Loop(d, factor))
    levels = []
    for i, level in enumerate(arch.levels):
        loops = draw(st.permutations(temporal[i]))
        levels.append(LevelMapping(level=level.name, temporal=tuple(loops), spatial=spatial if i == fan - 1 else ()))
    return Mapping(levels=tuple(levels), source="random remainder")


@st.composite
def temporal_remainder_mappings(draw, dims: LoopDims, arch: Architecture) -> Mapping:
    """A random valid mapping (``mappings``) in which one output dimension, when it can, gets a
    temporal remainder instead: the nest's outermost loop, ceil(D / k) passes over D, and one inner
    loop of k (k not dividing D) at a random level or spatially at the fan-out."""
    base = draw(mappings(dims, arch))
    fan = next((i for i, level in enumerate(arch.levels) if level.fanout > 1), None)
    choices = [(d, k) for d in ("N", "G", "M", "P", "Q") for k in range(2, getattr(dims, d))
               if getattr(dims, d) % k]
    if not choices:
        return base
    d, k = draw(st.sampled_from(choices))
    passes = -(-getattr(dims, d) // k)
    temporal: list[list[Loop]] = [[l for l in lm.temporal if l.dim != d] for lm in base.levels]
    spatial = [l for l in (base.levels[fan - 1].spatial if fan is not None else ()) if l.dim != d]
    room = ({a: (arch.levels[fan].fanout_x if a == "X" else arch.levels[fan].fanout_y)
             // math.prod(l.bound for l in spatial if l.axis == a) for a in ("X", "Y")} if fan is not None else {})
    axes = [a for a in room if room[a] >= k]
    where = draw(st.sampled_from(["temporal"] + (["spatial"] if axes else [])))
    if where == "spatial":
        spatial.append(Loop(d, k, draw(st.sampled_from(axes))))
        spatial = list(draw(st.permutations(spatial)))
    else:
        temporal[draw(st.integers(0, len(arch.levels) - 1))].append(Loop(d, k))
    levels = []
    for i, level in enumerate(arch.levels):
        loops = list(draw(st.permutations(temporal[i])))
        if i == 0:
            loops = [Loop(d, passes)] + loops  # the nest's outermost loop
        levels.append(LevelMapping(level=level.name, temporal=tuple(loops),
                                   spatial=tuple(spatial) if fan is not None and i == fan - 1 else ()))
    return Mapping(levels=tuple(levels), source="random temporal remainder")


def reference_conv(dims: LoopDims, w_flat: np.ndarray, x_flat: np.ndarray) -> np.ndarray:
    """out[n,g,m,p,q] = sum_{c,r,s} w[g,m,c,r,s] * x[n,g,c,p*st+r,q*st+s], in float64 (NumPy, independent
    of the engine's loop nest)."""
    N, G, M, C, P, Q, R, S, st = (getattr(dims, d) for d in ("N", "G", "M", "C", "P", "Q", "R", "S", "stride"))
    w = w_flat.astype(np.float64).reshape(G, M, C, R, S)
    x = x_flat.astype(np.float64).reshape(N, G, C, dims.H, dims.W)
    out = np.zeros((N, G, M, P, Q))
    for r in range(R):
        for s in range(S):
            patch = x[:, :, :, r: r + (P - 1) * st + 1: st, s: s + (Q - 1) * st + 1: st]
            out += np.einsum("gmc,ngcpq->ngmpq", w[:, :, :, r, s], patch)
    return out
