"""The counting engine's naive twin: pure Python, sets of elements, straight from the definitions.

For every level, instance and time step it builds the tile as a Python set, takes the delta from the
previous step's tile, groups children by explicit set comparison, and counts. Only for tiny layers.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from sim.arch import DATA_TYPES, Architecture
from sim.counts import AccessCounts
from sim.mapping import DIMS, Nest


def element(data_type: str, index: dict[str, int], stride: int) -> tuple[int, ...]:
    i = index
    if data_type == "weights":
        return (i["G"], i["M"], i["C"], i["R"], i["S"])
    if data_type == "inputs":
        return (i["N"], i["G"], i["C"], i["P"] * stride + i["R"], i["Q"] * stride + i["S"])
    return (i["N"], i["G"], i["M"], i["P"], i["Q"])


def _index(nest: Nest, assignment: dict[int, int]) -> dict[str, int]:
    index = {d: 0 for d in DIMS}
    for position, value in assignment.items():
        loop = nest.loops[position]
        index[loop.dim] += value * loop.step
    return index


def _valid(nest: Nest, index: dict[str, int]) -> bool:
    """An iteration inside the layer (a spatial remainder addresses indices beyond it)."""
    return all(index[d] < getattr(nest.dims, d) for d in DIMS)


def _utilised(nest: Nest, level: int) -> int:
    """Instances of a level with at least one iteration inside the layer."""
    spatial = [p for p in range(nest.level_start[level]) if nest.loops[p].axis is not None]
    return sum(_valid(nest, _index(nest, dict(zip(spatial, inst))))
               for inst in itertools.product(*(range(nest.loops[p].bound) for p in spatial)))


def _history(nest: Nest, level: int, data_type: str, counting: str):
    """{instance: [(time, tile, delta)]} for one level and data type, time in nest order."""
    start = nest.level_start[level]
    above = range(start)
    spatial = [p for p in above if nest.loops[p].axis is not None]
    temporal = [p for p in above if nest.loops[p].axis is None]
    within = list(range(start, len(nest.loops)))
    within_combos = list(itertools.product(*(range(nest.loops[p].bound) for p in within)))
    innermost = max((p for p in temporal if nest.loops[p].bound > 1), default=None)
    history = {}
    for inst in itertools.product(*(range(nest.loops[p].bound) for p in spatial)):
        steps = []
        previous_tile = None
        previous_time = None
        for time in itertools.product(*(range(nest.loops[p].bound) for p in temporal)):
            fixed = dict(zip(spatial, inst)) | dict(zip(temporal, time))
            tile = frozenset(
                element(data_type, index, nest.dims.stride)
                for index in (_index(nest, fixed | dict(zip(within, combo))) for combo in within_combos)
                if _valid(nest, index)
            )
            if previous_tile is None:
                delta = tile
            elif tile == previous_tile:
                delta = frozenset()
            else:
                advanced = next(p for p, a, b in zip(temporal, time, previous_time) if a != b)
                if counting == "timeloop" and advanced != innermost:
                    delta = tile
                else:
                    delta = tile - previous_tile
            steps.append((time, tile, delta))
            previous_tile, previous_time = tile, time
        history[inst] = steps
    return spatial, history


def _shared_groups(nest: Nest, spatial: list[int], between: list[int], deltas: dict[tuple, frozenset]) -> int:
    """Words the parent sends when children with identical deltas along one axis of one fan-out
    share a transfer (Timeloop's rule): a child pays only if no child that differs from it on that
    axis alone, with a smaller coordinate there, got the same delta."""
    groups: dict[tuple, list[int]] = {}
    for p in between:
        groups.setdefault((nest.loops[p].level, nest.loops[p].axis), []).append(spatial.index(p))
    total = 0
    for inst, delta in deltas.items():
        pays = True
        for members in groups.values():
            for other, other_delta in deltas.items():
                same_elsewhere = all(other[k] == inst[k] for k in range(len(inst)) if k not in members)
                smaller_here = tuple(other[k] for k in members) < tuple(inst[k] for k in members)
                if same_elsewhere and smaller_here and other_delta == delta:
                    pays = False
                    break
            if not pays:
                break
        if pays:
            total += len(delta)
    return total


def naive_counts(nest: Nest, arch: Architecture) -> AccessCounts:
    names = tuple(level.name for level in arch.levels)
    counts = AccessCounts.empty(names)
    counts.macs = math.prod(getattr(nest.dims, d) for d in DIMS)
    counts.cycles_compute = math.prod(l.bound for l in nest.loops if l.axis is None)
    for i in range(len(arch.levels)):
        counts.instances[i] = _utilised(nest, i)
    counts.pes_used = int(counts.instances[-1])
    fanouts = [f for f, level in enumerate(arch.levels) if level.fanout > 1]
    for di, d in enumerate(DATA_TYPES):
        holders = arch.levels_keeping(d)
        histories = {i: _history(nest, i, d, arch.counting) for i in holders}
        pas = {i: sum(len(delta) for steps in h.values() for _, _, delta in steps) for i, (_, h) in histories.items()}
        ps = {i: sum(len(frozenset().union(*(tile for _, tile, _ in steps))) for steps in h.values()) for i, (_, h) in histories.items()}
        upward = {}  # words each holder receives from its child holder (reads served or updates)
        for position, i in enumerate(holders[:-1]):
            child = holders[position + 1]
            spatial, history = histories[child]
            between = [p for p in spatial if i <= nest.loops[p].level < child]
            outside = [k for k, p in enumerate(spatial) if p not in between]
            words = 0
            times = [t for t, _, _ in next(iter(history.values()))]
            for step, _ in enumerate(times):
                by_parent: dict[tuple, dict[tuple, frozenset]] = {}
                for inst, steps in history.items():
                    by_parent.setdefault(tuple(inst[k] for k in outside), {})[inst] = steps[step][2]
                for deltas in by_parent.values():
                    if d != "outputs" and arch.levels[child].multicast == "overlap" and between:
                        words += len(frozenset().union(*deltas.values()))
                    else:
                        words += _shared_groups(nest, spatial, between, deltas)
            upward[i] = words
            for f in fanouts:
                if i < f <= child:
                    child_fills = pas[child] - ps[child] if d == "outputs" else pas[child]
                    counts.noc[f, di, 0] += child_fills
                    if d == "outputs":
                        counts.noc[f, di, 1] += pas[child]
        for position, i in enumerate(holders):
            n = int(counts.instances[i])
            innermost = position == len(holders) - 1
            if d == "outputs":
                updates = counts.macs if innermost else upward[i]
                row = (updates - ps[i], pas[i] - ps[i] if position else 0, updates)
            else:
                row = (counts.macs if innermost else upward[i], pas[i] if position else 0, 0)
            counts.storage[i, di] = [v // n for v in row]
    return counts


def naive_layer(weights: np.ndarray, inputs: np.ndarray, nest: Nest) -> tuple[np.ndarray, int]:
    """Outputs (N, G, M, P, Q) and the number of MACs with a zero operand, MAC by MAC."""
    dims = nest.dims
    w = weights.reshape(dims.G, dims.M, dims.C, dims.R, dims.S)
    x = inputs.reshape(dims.N, dims.G, dims.C, dims.H, dims.W)
    out = np.zeros((dims.N, dims.G, dims.M, dims.P, dims.Q), np.float64)
    zeros = 0
    for n, g, m, c, p, q, r, s in itertools.product(*(range(getattr(dims, d)) for d in DIMS)):
        a, b = w[g, m, c, r, s], x[n, g, c, p * dims.stride + r, q * dims.stride + s]
        out[n, g, m, p, q] += float(a) * float(b)
        zeros += a == 0 or b == 0
    return out, zeros


def naive_layer_in_nest_order(weights: np.ndarray, inputs: np.ndarray, nest: Nest) -> np.ndarray:
    """Outputs (N, G, M, P, Q) accumulated in float32, MAC by MAC in the nest's own loop order: the
    additions the engine promises to make, in its order."""
    dims = nest.dims
    w = weights.reshape(dims.G, dims.M, dims.C, dims.R, dims.S)
    x = inputs.reshape(dims.N, dims.G, dims.C, dims.H, dims.W)
    out = np.zeros((dims.N, dims.G, dims.M, dims.P, dims.Q), np.float32)
    loops = nest.loops
    for idx in itertools.product(*(range(loop.bound) for loop in loops)):
        at = dict.fromkeys(DIMS, 0)
        for loop, i in zip(loops, idx):
            at[loop.dim] += i * loop.step
        n, g, m, c, p, q, r, s = (at[d] for d in DIMS)
        a, b = w[g, m, c, r, s], x[n, g, c, p * dims.stride + r, q * dims.stride + s]
        out[n, g, m, p, q] = np.float32(out[n, g, m, p, q] + np.float32(a * b))
    return out
