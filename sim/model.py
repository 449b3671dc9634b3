"""Closed-form access counts: the same counts as the engine, from tile sizes and loop bounds alone.

Definitions (per data type d, storage level i that keeps d, per instance of i):

- tile: the d-elements indexed by every loop at and inside level i. Its size is the product, over
  d's coordinates, of the number of distinct values each coordinate takes; an input row index is
  ``h = p * stride + r``, so its value set is counted exactly (a sumset), not as a bounding box.
- temporal loops above i, outer to inner, with bound > 1, drive the tile through time. When loop k
  advances, the loops inside it (still above i) wrap to 0, which shifts the tile by a fixed vector.
  The new elements at that step (the *delta*) are the tile minus its overlap with the previous tile.
  * ``exact`` counting: every step fetches exactly its delta (sliding windows reuse overlaps on any
    loop; a step that does not move the tile fetches nothing).
  * ``timeloop`` counting (Timeloop v3 defaults, see the README): only the innermost loop above i
    keeps the overlap; any other step that moves the tile refetches the whole tile.
- parent access share (PAS): the tile once plus the sum of deltas over all steps.
- partition size (PS): distinct d-elements an instance ever touches.
- read-only data (weights, inputs): fills = PAS (0 at the outermost level); reads = one per MAC at
  the innermost level holding d, else what the next inner holder's fills cost this level.
  Multicast ``identical``: children (along each axis X, Y of a fan-out, separately) that hold the same
  tile share one parent read. ``overlap``: the parent reads the union of what its children need at
  each step (Eyeriss's diagonal reuse of ifmap rows).
- outputs (partial sums), first-read elision: updates = one per MAC innermost, else the drains of the
  next inner holder after spatial reduction (children with the same output tile are reduced);
  reads = updates - PS; fills = PAS - PS (0 at the outermost level).
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import math

import numpy as np

from sim.arch import DATA_TYPES, Architecture
from sim.counts import AccessCounts
from sim.mapping import DIMS, Nest, NestLoop
from sim.timing import model_timing, sequential_timing

COORDINATES = {
    "weights": ("G", "M", "C", "R", "S"),
    "inputs": ("N", "G", "C", "H", "W"),
    "outputs": ("N", "G", "M", "P", "Q"),
}


def _dim_offsets(loops: tuple[NestLoop, ...], dim: str) -> np.ndarray:
    values = np.zeros(1, np.int64)
    for loop in loops:
        if loop.dim == dim and loop.bound > 1:
            values = (values[:, None] + np.arange(loop.bound, dtype=np.int64) * loop.step).ravel()
    return np.unique(values)


def coordinate_sets(nest: Nest, loops: tuple[NestLoop, ...], data_type: str) -> list[np.ndarray]:
    """Distinct values of each coordinate of ``data_type`` indexed by ``loops`` (relative offsets;
    read-only arrays, memoised: searches ask for the same loops many times). Offsets of a dimension
    with a spatial remainder stop at its size: a set holding its spatial loops starts at index 0
    (no loop over it lies above them), and a set without them stays below the size anyway."""
    return list(_coordinate_sets(loops, data_type, nest.dims.stride, nest.guarded))


@functools.lru_cache(maxsize=1 << 16)
def _coordinate_sets(loops: tuple[NestLoop, ...], data_type: str, stride: int,
                     guarded: tuple[tuple[str, int], ...] = ()) -> tuple[np.ndarray, ...]:
    sets = _coordinate_sets_uncached(loops, data_type, stride, guarded)
    for values in sets:
        values.flags.writeable = False
    return tuple(sets)


def _coordinate_sets_uncached(loops: tuple[NestLoop, ...], data_type: str, stride: int,
                              guarded: tuple[tuple[str, int], ...] = ()) -> list[np.ndarray]:
    offsets = {d: _dim_offsets(loops, d) for d in DIMS}
    for d, size in guarded:
        offsets[d] = offsets[d][offsets[d] < size]
    if data_type == "inputs":
        h = np.unique((offsets["P"][:, None] * stride + offsets["R"][None, :]).ravel())
        w = np.unique((offsets["Q"][:, None] * stride + offsets["S"][None, :]).ravel())
        return [offsets["N"], offsets["G"], offsets["C"], h, w]
    return [offsets[d] for d in COORDINATES[data_type]]


def coordinate_shift(dim_shift: dict[str, int], data_type: str, stride: int) -> tuple[int, ...]:
    s = {d: dim_shift.get(d, 0) for d in DIMS}
    if data_type == "inputs":
        return (s["N"], s["G"], s["C"], s["P"] * stride + s["R"], s["Q"] * stride + s["S"])
    return tuple(s[d] for d in COORDINATES[data_type])


def _size(sets: list[np.ndarray]) -> int:
    return math.prod(len(s) for s in sets)


def _overlap(sets: list[np.ndarray], shift: tuple[int, ...]) -> int:
    return math.prod(len(np.intersect1d(s, s + delta, assume_unique=True)) for s, delta in zip(sets, shift))


def tile_words(nest: Nest, level: int, data_type: str) -> int:
    return _size(coordinate_sets(nest, nest.loops_within(level), data_type))


def _temporal_above(nest: Nest, level: int) -> list[NestLoop]:
    return [l for l in nest.loops_above(level) if l.axis is None and l.bound > 1]


def _steps(nest: Nest, level: int):
    """For each temporal loop k above ``level``: (k, number of times it advances per instance,
    the dimension shift of the tile when it does, whether k is the innermost such loop)."""
    above = _temporal_above(nest, level)
    for index, loop in enumerate(above):
        advances = (loop.bound - 1) * math.prod(l.bound for l in above[:index])
        shift = {loop.dim: loop.step}
        for inner in above[index + 1:]:
            shift[inner.dim] = shift.get(inner.dim, 0) - (inner.bound - 1) * inner.step
        yield loop, advances, shift, index == len(above) - 1


def parent_access_share(nest: Nest, level: int, data_type: str, counting: str) -> int:
    sets = coordinate_sets(nest, nest.loops_within(level), data_type)
    tile = _size(sets)
    total = tile
    for _, advances, shift, innermost in _steps(nest, level):
        coord_shift = coordinate_shift(shift, data_type, nest.dims.stride)
        if not any(coord_shift):
            continue
        if counting == "timeloop" and not innermost:
            delta = tile
        else:
            delta = tile - _overlap(sets, coord_shift)
        total += advances * delta
    return total


def partition_size(nest: Nest, level: int, data_type: str) -> int:
    spatial_above = set(id(l) for l in nest.loops_above(level) if l.axis is not None)
    loops = tuple(l for l in nest.loops if id(l) not in spatial_above)
    return _size(coordinate_sets(nest, loops, data_type))


def _child_origins(nest: Nest, loops: tuple[NestLoop, ...], data_type: str) -> np.ndarray:
    """Coordinate offsets of every child reached through ``loops`` (spatial), one row per child."""
    if not loops:
        return np.zeros((1, 5), np.int64)
    rows = []
    for indices in itertools.product(*(range(l.bound) for l in loops)):
        shift: dict[str, int] = {}
        for loop, i in zip(loops, indices):
            shift[loop.dim] = shift.get(loop.dim, 0) + i * loop.step
        rows.append(coordinate_shift(shift, data_type, nest.dims.stride))
    return np.array(rows, np.int64)


def representatives(nest: Nest, child: int, spatial: tuple[NestLoop, ...], data_type: str) -> int:
    """Utilised instances of level ``child`` (all of them) that are, along every axis of every
    fan-out in ``spatial`` (spatial loops above the child), the first among the utilised instances
    with the same coordinates on every other spatial loop to hold their tile: the instances a parent
    sends to (multicast) or receives from (after spatial reduction)."""
    above = tuple(l for l in nest.loops_above(child) if l.axis is not None)
    active = nest.active_mask(child)
    groups: dict[tuple[int, str], list[int]] = {}
    for position, loop in enumerate(above):
        if any(loop is s for s in spatial):
            groups.setdefault((loop.level, loop.axis), []).append(position)
    combos = list(itertools.product(*(range(l.bound) for l in above)))  # slot order
    flags = active.copy()
    for positions in groups.values():
        others = [p for p in range(len(above)) if p not in positions]
        first: dict[tuple, tuple[int, ...]] = {}
        for slot, combo in enumerate(combos):
            if not active[slot]:
                continue
            shift: dict[str, int] = {}
            for p in positions:
                shift[above[p].dim] = shift.get(above[p].dim, 0) + combo[p] * above[p].step
            key = (tuple(combo[p] for p in others), coordinate_shift(shift, data_type, nest.dims.stride))
            if first.setdefault(key, tuple(combo[p] for p in positions)) != tuple(combo[p] for p in positions):
                flags[slot] = False
    return int(flags.sum())


def classes_per_parent(nest: Nest, parent: int, child: int, data_type: str) -> int:
    """Children of one parent instance with distinct tiles (:func:`distinct_children`), counting
    only utilised children when a spatial remainder leaves some idle."""
    spatial = nest.spatial_between(parent, child)
    if not nest.guarded:
        return distinct_children(nest, spatial, data_type)
    return representatives(nest, child, spatial, data_type) // nest.instances(parent)


def distinct_children(nest: Nest, spatial: tuple[NestLoop, ...], data_type: str) -> int:
    """Children with distinct tiles, counted per fan-out and axis separately (Timeloop's multicast
    and spatial-reduction rule: only identical tiles along one axis are shared)."""
    classes = 1
    groups: dict[tuple[int, str], list[NestLoop]] = {}
    for loop in spatial:
        groups.setdefault((loop.level, loop.axis), []).append(loop)
    for loops in groups.values():
        classes *= len(np.unique(_child_origins(nest, tuple(loops), data_type), axis=0))
    return classes


def _tile_points(sets: list[np.ndarray]) -> np.ndarray:
    grids = np.meshgrid(*sets, indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=1)


class _Keys:
    """Mixed-radix keys for coordinate rows within known bounds, for fast set operations."""

    def __init__(self, low: np.ndarray, high: np.ndarray) -> None:
        self.low = low
        self.radix = (high - low + 1).astype(np.int64)
        if math.prod(int(r) for r in self.radix) >= 2**62:
            raise OverflowError("tile coordinates too large to key")

    def __call__(self, points: np.ndarray) -> np.ndarray:
        key = np.zeros(points.shape[:-1], np.int64)
        for column in range(points.shape[-1]):
            key = key * self.radix[column] + (points[..., column] - self.low[column])
        return key


def union_reads(nest: Nest, parent: int, child: int, data_type: str, counting: str) -> int:
    """Parent reads per parent instance under ``overlap`` multicast: at each step the parent sends
    the union of what its children (through the spatial loops between ``parent`` and ``child``)
    need at that step. Each parent instance drives its children through every temporal step above
    the child, so the child's steps are the parent's."""
    between = nest.spatial_between(parent, child)
    origins = _child_origins(nest, between, data_type)
    if nest.guarded and between:
        origins = origins[nest.utilised_combinations(between)]
    base = _tile_points(coordinate_sets(nest, nest.loops_within(child), data_type))
    old = origins[:, None, :] + base[None, :, :]  # children x tile x coordinates
    steps = [
        (advances, np.array(coordinate_shift(shift, data_type, nest.dims.stride), np.int64), innermost)
        for _, advances, shift, innermost in _steps(nest, child)
    ]
    shifts = np.array([s for _, s, _ in steps] + [np.zeros(old.shape[-1], np.int64)])
    keys = _Keys(old.min(axis=(0, 1)) + shifts.min(axis=0), old.max(axis=(0, 1)) + shifts.max(axis=0))
    total = len(np.unique(keys(old)))
    base_keys = keys(base)
    for advances, shift, innermost in steps:
        if not shift.any():
            continue
        moved = base + shift
        if counting == "timeloop" and not innermost:
            fresh = moved  # the whole tile is fetched again
        else:
            # Every child's new elements are its origin plus the same relative set: the moved tile
            # minus the old one.
            fresh = moved[~np.isin(keys(moved), base_keys)]
        needed = keys(origins[:, None, :] + fresh[None, :, :]).ravel()
        total += advances * len(np.unique(needed))
    return total


# Counts depend on the nest and on the architecture's structure only (what each level keeps, its
# fan-out and multicast, the counting rules), not on capacities, bandwidths or energies: searches
# and sweeps that vary those meet the same nests again.
_COUNTS_CACHE: dict[tuple, AccessCounts] = {}
_COUNTS_CACHE_LIMIT = 20_000


def clear_caches() -> None:
    """Forget memoised counts and coordinate sets (for timing the model cold)."""
    _COUNTS_CACHE.clear()
    _coordinate_sets.cache_clear()


def _structure(arch: Architecture) -> tuple:
    return (arch.counting, tuple((l.name, l.keeps, l.fanout_x, l.fanout_y, l.multicast) for l in arch.levels))


def closed_form_counts(nest: Nest, arch: Architecture, *, cache: bool = True) -> AccessCounts:
    """The closed-form counts of a nest on an architecture (memoised unless ``cache`` is false;
    each call gets its own copy). The access counts depend only on the nest and the architecture's
    structure (the memo key); the timing also depends on bandwidths, clocks and compression, so it
    is computed for each call's architecture."""
    if nest.parts:  # a temporal remainder: the parts one after the other
        parts = [closed_form_counts(part, arch, cache=cache) for part, _, _ in nest.parts]
        return AccessCounts.combine(parts, timing=sequential_timing([p.timing for p in parts]))
    if not cache:
        counts = _closed_form_counts(nest, arch)
    else:
        key = (nest.dims, nest.loops, nest.level_start, _structure(arch))
        cached = _COUNTS_CACHE.get(key)
        if cached is None:
            if len(_COUNTS_CACHE) >= _COUNTS_CACHE_LIMIT:
                _COUNTS_CACHE.clear()
            cached = _COUNTS_CACHE[key] = _closed_form_counts(nest, arch)
        counts = _copy_counts(cached)
    counts.timing = model_timing(counts, nest, arch)
    return counts


def _copy_counts(counts: AccessCounts) -> AccessCounts:
    arrays = {f.name: getattr(counts, f.name).copy() for f in dataclasses.fields(counts)
              if isinstance(getattr(counts, f.name), np.ndarray)}
    return dataclasses.replace(counts, **arrays)


def _closed_form_counts(nest: Nest, arch: Architecture) -> AccessCounts:
    names = tuple(level.name for level in arch.levels)
    counts = AccessCounts.empty(names)
    macs = nest.dims.macs
    counts.macs = macs
    counts.cycles_compute = nest.temporal_steps
    counts.pes_used = nest.total_spatial
    for index in range(len(arch.levels)):
        counts.instances[index] = nest.instances(index)
    for di, d in enumerate(DATA_TYPES):
        keepers = arch.levels_keeping(d)
        pas = {i: parent_access_share(nest, i, d, arch.counting) for i in keepers}
        ps = {i: partition_size(nest, i, d) for i in keepers}
        for position, i in enumerate(keepers):
            child = keepers[position + 1] if position + 1 < len(keepers) else None
            per_mac = macs // counts.instances[i]
            if d == "outputs":
                if child is None:
                    updates = per_mac
                else:
                    reduced = classes_per_parent(nest, i, child, d)
                    updates = pas[child] * reduced
                reads = updates - ps[i]
                fills = 0 if position == 0 else pas[i] - ps[i]
            else:
                if child is None:
                    reads = per_mac
                elif arch.levels[child].multicast == "overlap" and nest.spatial_between(i, child):
                    reads = union_reads(nest, i, child, d, arch.counting)
                else:
                    reads = pas[child] * classes_per_parent(nest, i, child, d)
                fills = 0 if position == 0 else pas[i]
                updates = 0
            counts.storage[i, di] = (reads, fills, updates)
            if child is not None:
                _count_noc(counts, nest, arch, i, child, di, d, pas[child], ps[child])
    return counts


def _count_noc(counts: AccessCounts, nest: Nest, arch: Architecture, parent: int, child: int,
               di: int, d: str, child_pas: int, child_ps: int) -> None:
    """Words crossing each fan-out between a parent holder and its child holder, per receiver
    (deliveries) and per sender before reduction (drains)."""
    child_fills = child_pas - child_ps if d == "outputs" else child_pas
    for f in range(parent + 1, child + 1):
        if arch.levels[f].fanout == 1:
            continue
        # Spatial loops below fan-out f (still above the child) share deliveries inside f.
        below = tuple(l for l in nest.spatial_between(f, child))
        if nest.guarded:
            receivers = representatives(nest, child, below, d)
        else:
            shared = math.prod(l.bound for l in below) // distinct_children(nest, below, d) if below else 1
            receivers = nest.instances(child) // shared
        counts.noc[f, di, 0] += child_fills * receivers
        if d == "outputs":
            counts.noc[f, di, 1] += child_pas * receivers
