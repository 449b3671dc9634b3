"""The closed-form model (``sim.model``) for many candidate mappings at once: the mapper's fast path.

``sim.model`` works on one validated :class:`sim.mapping.Nest` with NumPy sets; a mapper needs the
same counts for hundreds of thousands of candidates. This module evaluates a batch of mappings,
each encoded as a flat loop nest (arrays of dimension codes, bounds, axes and levels, outer to
inner), in one numba kernel, and returns their energy, compute cycles, PEs used and whether their
tiles fit. The counts are the model's, exactly (``tests/test_mapper.py`` compares every counter with
``sim.model.closed_form_counts`` on random mappings, in both counting modes), through these closed
forms for the sets the model enumerates:

- a tile (the loops at and inside a level) spans a contiguous range of every dimension, so a
  coordinate's value set is a range, except an input row ``h = p * stride + r``: the sumset of two
  ranges, which is a range when ``R_tile >= stride`` and ``P_tile`` blocks of ``R_tile`` rows
  otherwise; the overlap of such a set with its shift has a closed form (``_hw_overlap``);
- the children a fan-out reaches form a product set per coordinate, so the distinct children and
  the union a parent multicasts under ``overlap`` are products of one-dimensional counts: at a step
  the parent sends ``prod |U_c| - prod (|U_c| - |O_c + F_c|)`` words, with ``O_c`` the children's
  origins, ``F_c`` the new elements of one child's tile and ``U_c`` everything the children need
  (``prod |U_c|`` minus the points no child needs anew, a product of per-coordinate sets).

Energy follows ``sim.energy`` for dense counts (vector accesses rounded up per instance, NoC words,
MACs). Encoding of one mapping: ``dim`` (index into ``DIMS``), ``bound``, ``axis`` (0 temporal,
1 X, 2 Y) and ``level`` per loop, in the order :func:`sim.mapping.build_nest` flattens them (level by
level from DRAM inwards; temporal loops, then the spatial loops of the fan-out below). Loops of
bound 1 are no-ops, so batches pad shorter nests with them.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from networks.layers import LoopDims
from sim.arch import DATA_TYPES, Architecture
from sim.counts import AccessCounts
from sim.mapping import DIMS, Loop, Mapping, MappingError

AXIS_CODES = {None: 0, "X": 1, "Y": 2}


class ArchTables(NamedTuple):
    """An architecture as arrays for the kernel (built once by :func:`arch_tables`)."""

    keeps: np.ndarray  # bool (levels, 3)
    capacity: np.ndarray  # int64 (levels,), -1 unbounded
    partition: np.ndarray  # int64 (levels, 3), -1 none
    block: np.ndarray  # int64 (levels,)
    fanout: np.ndarray  # int64 (levels,)
    overlap: np.ndarray  # bool (levels,): multicast "overlap" of the fan-out above the level
    energy: np.ndarray  # float64 (levels, 3): read, fill, update per vector access
    noc_energy: np.ndarray  # float64 (levels,) per word crossing the fan-out above (0 if none)
    mac_energy: float
    timeloop: bool


def arch_tables(arch: Architecture) -> ArchTables:
    n = len(arch.levels)
    keeps = np.zeros((n, 3), np.bool_)
    partition = np.full((n, 3), -1, np.int64)
    energy = np.zeros((n, 3))
    for i, level in enumerate(arch.levels):
        for di, d in enumerate(DATA_TYPES):
            keeps[i, di] = d in level.keeps
            if d in level.partition_words:
                partition[i, di] = level.partition_words[d]
        energy[i] = (level.energy_read.energy_per_access, level.energy_fill.energy_per_access,
                     level.energy_update.energy_per_access)
    return ArchTables(
        keeps=keeps,
        capacity=np.array([-1 if l.capacity_words is None else l.capacity_words for l in arch.levels], np.int64),
        partition=partition,
        block=np.array([l.block_words for l in arch.levels], np.int64),
        fanout=np.array([l.fanout for l in arch.levels], np.int64),
        overlap=np.array([l.multicast == "overlap" for l in arch.levels], np.bool_),
        energy=energy,
        noc_energy=np.array([0.0 if l.noc_energy_per_word is None else l.noc_energy_per_word.energy_per_access
                             for l in arch.levels]),
        mac_energy=float(arch.mac_energy.energy_per_access),
        timeloop=arch.counting == "timeloop",
    )


def dims_array(dims: LoopDims) -> np.ndarray:
    return np.array([getattr(dims, d) for d in DIMS], np.int64)


def encode(mapping: Mapping, arch: Architecture) -> np.ndarray:
    """One mapping as an int64 array (loops, 4): dim code, bound, axis code, level."""
    rows = []
    for index, lm in enumerate(mapping.levels):
        for loop in (*lm.temporal, *lm.spatial):
            rows.append((DIMS.index(loop.dim), loop.bound, AXIS_CODES[loop.axis], index))
    if not rows:
        rows.append((0, 1, 0, 0))
    return np.array(rows, np.int64)


def decode(loops: np.ndarray, arch: Architecture, *, source: str) -> Mapping:
    """The inverse of :func:`encode`, dropping bound-1 loops."""
    from sim.mapping import LevelMapping

    per_level: list[tuple[list, list]] = [([], []) for _ in arch.levels]
    axes = {1: "X", 2: "Y"}
    for dim, bound, axis, level in loops:
        if bound > 1:
            temporal, spatial = per_level[level]
            if axis == 0:
                temporal.append(Loop(DIMS[dim], int(bound)))
            else:
                spatial.append(Loop(DIMS[dim], int(bound), axes[int(axis)]))
    return Mapping(levels=tuple(LevelMapping(level=l.name, temporal=tuple(t), spatial=tuple(s))
                                for l, (t, s) in zip(arch.levels, per_level)), source=source)


# ------------------------------------------------------------------------------------------------
# Kernel helpers (scalars and small arrays only)
# ------------------------------------------------------------------------------------------------
@njit(cache=True)
def _hw_size(p: int, r: int, stride: int) -> int:
    if r >= stride or p == 1:
        return (p - 1) * stride + r
    return p * r


@njit(cache=True)
def _hw_overlap(p: int, r: int, stride: int, shift: int) -> int:
    """|S & (S + shift)| for S = {i * stride + j : i < p, j < r}."""
    if shift < 0:
        shift = -shift
    if r >= stride or p == 1:
        return max(0, (p - 1) * stride + r - shift)
    a = shift // stride
    b = shift - a * stride
    return max(0, p - a) * max(0, r - b) + max(0, p - a - 1) * max(0, r + b - stride)


@njit(cache=True)
def _coord_shift(shift_dims, data_type: int, stride: int, out) -> bool:
    """Coordinate shift (5 values) of a dimension shift; returns whether any is non-zero."""
    if data_type == 0:
        out[0] = shift_dims[1]; out[1] = shift_dims[2]; out[2] = shift_dims[3]
        out[3] = shift_dims[6]; out[4] = shift_dims[7]
    elif data_type == 1:
        out[0] = shift_dims[0]; out[1] = shift_dims[1]; out[2] = shift_dims[3]
        out[3] = shift_dims[4] * stride + shift_dims[6]; out[4] = shift_dims[5] * stride + shift_dims[7]
    else:
        out[0] = shift_dims[0]; out[1] = shift_dims[1]; out[2] = shift_dims[2]
        out[3] = shift_dims[4]; out[4] = shift_dims[5]
    for c in range(5):
        if out[c] != 0:
            return True
    return False


@njit(cache=True)
def _coord_extents(ext, data_type: int, stride: int, out) -> None:
    """Per coordinate: (size, p, r) where p, r describe an input row/column sumset (r = 0 means a
    plain range of ``size``)."""
    for c in range(5):
        out[c, 1] = 0
        out[c, 2] = 0
    if data_type == 0:
        out[0, 0] = ext[1]; out[1, 0] = ext[2]; out[2, 0] = ext[3]; out[3, 0] = ext[6]; out[4, 0] = ext[7]
    elif data_type == 1:
        out[0, 0] = ext[0]; out[1, 0] = ext[1]; out[2, 0] = ext[3]
        out[3, 0] = _hw_size(ext[4], ext[6], stride); out[3, 1] = ext[4]; out[3, 2] = ext[6]
        out[4, 0] = _hw_size(ext[5], ext[7], stride); out[4, 1] = ext[5]; out[4, 2] = ext[7]
    else:
        out[0, 0] = ext[0]; out[1, 0] = ext[1]; out[2, 0] = ext[2]; out[3, 0] = ext[4]; out[4, 0] = ext[5]


@njit(cache=True)
def _overlap(coords, cshift, stride: int) -> int:
    total = 1
    for c in range(5):
        if coords[c, 2] > 0:
            total *= _hw_overlap(coords[c, 1], coords[c, 2], stride, cshift[c])
        else:
            total *= max(0, coords[c, 0] - abs(cshift[c]))
        if total == 0:
            return 0
    return total


@njit(cache=True)
def _extents(dim, bound, start: int, n: int, out) -> None:
    for d in range(8):
        out[d] = 1
    for j in range(start, n):
        out[dim[j]] *= bound[j]


@njit(cache=True)
def _tile_words(ext, data_type: int, stride: int) -> int:
    if data_type == 0:
        return ext[1] * ext[2] * ext[3] * ext[6] * ext[7]
    if data_type == 1:
        return ext[0] * ext[1] * ext[3] * _hw_size(ext[4], ext[6], stride) * _hw_size(ext[5], ext[7], stride)
    return ext[0] * ext[1] * ext[2] * ext[4] * ext[5]


@njit(cache=True)
def _steps_above(dim, bound, axis, step, level_start_i: int, timeloop: bool, idx, adv, shifts, inner):
    """Temporal loops above a level (bound > 1), outer to inner: their index, advances per instance,
    the dimension shift when they advance, and whether they are the innermost. Returns the count."""
    k = 0
    for j in range(level_start_i):
        if axis[j] == 0 and bound[j] > 1:
            idx[k] = j
            k += 1
    outer = 1
    for a in range(k):
        j = idx[a]
        adv[a] = (bound[j] - 1) * outer
        outer *= bound[j]
        for d in range(8):
            shifts[a, d] = 0
        shifts[a, dim[j]] += step[j]
        for b in range(a + 1, k):
            jj = idx[b]
            shifts[a, dim[jj]] -= (bound[jj] - 1) * step[jj]
        inner[a] = a == k - 1
    return k


@njit(cache=True)
def _pas(ext, data_type: int, stride: int, timeloop: bool, k: int, adv, shifts, inner, coords, cshift) -> int:
    """Parent access share of a tile with extents ``ext`` under the ``k`` steps above it."""
    tile = _tile_words(ext, data_type, stride)
    _coord_extents(ext, data_type, stride, coords)
    total = tile
    for a in range(k):
        if not _coord_shift(shifts[a], data_type, stride, cshift):
            continue
        if timeloop and not inner[a]:
            total += adv[a] * tile
        else:
            total += adv[a] * (tile - _overlap(coords, cshift, stride))
    return total


@njit(cache=True)
def _origins(dim, bound, axis, lvl, step, n: int, lo: int, hi: int, group_level: int, group_axis: int,
             data_type: int, coord: int, stride: int, out) -> int:
    """Distinct origin values of one coordinate over the spatial loops with ``lo <= level < hi``
    (and, when ``group_level >= 0``, only those of that level and axis). Writes them sorted into
    ``out``; returns how many."""
    out[0] = 0
    count = 1
    contributing = 0
    for j in range(n):
        if axis[j] == 0 or bound[j] == 1 or lvl[j] < lo or lvl[j] >= hi:
            continue
        if group_level >= 0 and (lvl[j] != group_level or axis[j] != group_axis):
            continue
        d = dim[j]
        mult = 0
        if data_type == 0:
            if (coord == 0 and d == 1) or (coord == 1 and d == 2) or (coord == 2 and d == 3) or (coord == 3 and d == 6) or (coord == 4 and d == 7):
                mult = 1
        elif data_type == 1:
            if (coord == 0 and d == 0) or (coord == 1 and d == 1) or (coord == 2 and d == 3):
                mult = 1
            elif (coord == 3 and d == 4) or (coord == 4 and d == 5):
                mult = stride
            elif (coord == 3 and d == 6) or (coord == 4 and d == 7):
                mult = 1
        else:
            if (coord == 0 and d == 0) or (coord == 1 and d == 1) or (coord == 2 and d == 2) or (coord == 3 and d == 4) or (coord == 4 and d == 5):
                mult = 1
        if mult == 0:
            continue
        delta = step[j] * mult
        contributing += 1
        new = count
        for i in range(1, bound[j]):
            for c in range(count):
                out[new] = out[c] + i * delta
                new += 1
        count = new
    if contributing <= 1:
        return count
    s = np.sort(out[:count])
    m = 0
    for i in range(count):
        if m == 0 or s[i] != out[m - 1]:
            out[m] = s[i]
            m += 1
    return m


@njit(cache=True)
def _distinct_children(dim, bound, axis, lvl, step, n: int, lo: int, hi: int, data_type: int, stride: int, scratch) -> int:
    classes = 1
    for group_level in range(lo, hi):
        present = False
        for j in range(n):
            if axis[j] != 0 and lvl[j] == group_level and bound[j] > 1:
                present = True
                break
        if not present:
            continue
        for group_axis in (1, 2):
            for c in range(5):
                classes *= _origins(dim, bound, axis, lvl, step, n, lo, hi, group_level, group_axis,
                                    data_type, c, stride, scratch)
    return classes


@njit(cache=True)
def _intervals(coords_row, stride: int, shift: int, starts, lengths) -> int:
    """A tile coordinate's value set, shifted, as disjoint sorted intervals."""
    size, p, r = coords_row[0], coords_row[1], coords_row[2]
    if r == 0 or r >= stride or p == 1:
        starts[0] = shift
        lengths[0] = size
        return 1
    for i in range(p):
        starts[i] = i * stride + shift
        lengths[i] = r
    return p


@njit(cache=True)
def _union_size(origins, no: int, starts, lengths, ni: int, buf_s, buf_e) -> int:
    """|{o + x : o in origins, x in the intervals}|."""
    m = 0
    for a in range(no):
        for b in range(ni):
            if lengths[b] > 0:
                buf_s[m] = origins[a] + starts[b]
                buf_e[m] = origins[a] + starts[b] + lengths[b]
                m += 1
    if m == 0:
        return 0
    if not (ni == 1):
        order = np.argsort(buf_s[:m])
        s = buf_s[:m][order]
        e = buf_e[:m][order]
    else:
        s = buf_s[:m]
        e = buf_e[:m]
    total = 0
    cur_s = s[0]
    cur_e = e[0]
    for i in range(1, m):
        if s[i] > cur_e:
            total += cur_e - cur_s
            cur_s = s[i]
            cur_e = e[i]
        elif e[i] > cur_e:
            cur_e = e[i]
    total += cur_e - cur_s
    return total


@njit(cache=True)
def _fresh_intervals(coords_row, stride: int, shift: int, starts, lengths, tmp_s, tmp_l) -> int:
    """(tile + shift) minus tile, as intervals."""
    size, p, r = coords_row[0], coords_row[1], coords_row[2]
    if r == 0 or r >= stride or p == 1:
        if abs(shift) >= size:
            starts[0] = shift
            lengths[0] = size
        elif shift > 0:
            starts[0] = size
            lengths[0] = shift
        else:
            starts[0] = shift
            lengths[0] = -shift
        return 1
    nb = _intervals(coords_row, stride, 0, tmp_s, tmp_l)
    nm = _intervals(coords_row, stride, shift, starts, lengths)
    out_n = 0
    # subtract every base interval from every moved interval (few intervals: direct)
    res_s = np.empty(2 * nm * (nb + 1) + 2, np.int64)
    res_e = np.empty(2 * nm * (nb + 1) + 2, np.int64)
    for a in range(nm):
        cs = np.empty(nb + 2, np.int64)
        ce = np.empty(nb + 2, np.int64)
        cs[0] = starts[a]
        ce[0] = starts[a] + lengths[a]
        cnt = 1
        for b in range(nb):
            bs = tmp_s[b]
            be = tmp_s[b] + tmp_l[b]
            ncs = np.empty(cnt * 2 + 1, np.int64)
            nce = np.empty(cnt * 2 + 1, np.int64)
            nn = 0
            for c in range(cnt):
                if ce[c] <= bs or cs[c] >= be:
                    ncs[nn] = cs[c]; nce[nn] = ce[c]; nn += 1
                else:
                    if cs[c] < bs:
                        ncs[nn] = cs[c]; nce[nn] = bs; nn += 1
                    if ce[c] > be:
                        ncs[nn] = be; nce[nn] = ce[c]; nn += 1
            cs = ncs
            ce = nce
            cnt = nn
        for c in range(cnt):
            res_s[out_n] = cs[c]
            res_e[out_n] = ce[c]
            out_n += 1
    for i in range(out_n):
        starts[i] = res_s[i]
        lengths[i] = res_e[i] - res_s[i]
    return out_n


@njit(cache=True)
def _union_reads(dim, bound, axis, lvl, step, n: int, parent: int, child: int, child_ext, data_type: int,
                 stride: int, timeloop: bool, k: int, adv, shifts, inner, coords, cshift, scratch, origin_sets,
                 counts, starts, lengths, tmp_s, tmp_l, buf_s, buf_e, u) -> int:
    _coord_extents(child_ext, data_type, stride, coords)
    for c in range(5):
        counts[c] = _origins(dim, bound, axis, lvl, step, n, parent, child, -1, 0, data_type, c, stride, scratch)
        origin_sets[c, :counts[c]] = scratch[:counts[c]]
    u_all = 1
    for c in range(5):
        ni = _intervals(coords[c], stride, 0, starts, lengths)
        u[c] = _union_size(origin_sets[c], counts[c], starts, lengths, ni, buf_s, buf_e)
        u_all *= u[c]
    total = u_all
    for a in range(k):
        if not _coord_shift(shifts[a], data_type, stride, cshift):
            continue
        if timeloop and not inner[a]:
            total += adv[a] * u_all
            continue
        bad = 1
        for c in range(5):
            if cshift[c] == 0:
                bad *= u[c]
            else:
                nf = _fresh_intervals(coords[c], stride, cshift[c], starts, lengths, tmp_s, tmp_l)
                bad *= u[c] - _union_size(origin_sets[c], counts[c], starts, lengths, nf, buf_s, buf_e)
        total += adv[a] * (u_all - bad)
    return total


def workspace(max_loops: int, levels: int, max_pes: int, max_pq: int):
    """Scratch arrays for ``_counts_one`` (allocated once per batch)."""
    scratch_size = max(2, max_pes) * 2 + 2
    intervals = 3 * max_pq + 4
    return (np.ones(max_loops, np.int64), np.zeros(levels, np.int64), np.ones(8, np.int64), np.ones(8, np.int64),
            np.zeros(max_loops + 1, np.int64), np.zeros(max_loops + 1, np.int64),
            np.zeros((max_loops + 1, 8), np.int64), np.zeros(max_loops + 1, np.bool_), np.zeros((5, 3), np.int64),
            np.zeros(5, np.int64), np.zeros(scratch_size, np.int64), np.zeros(levels, np.int64),
            np.zeros(levels, np.int64), np.zeros((5, scratch_size), np.int64), np.zeros(5, np.int64),
            np.zeros(intervals, np.int64), np.zeros(intervals, np.int64), np.zeros(intervals, np.int64),
            np.zeros(intervals, np.int64), np.zeros(scratch_size * intervals + 8, np.int64),
            np.zeros(scratch_size * intervals + 8, np.int64), np.zeros(5, np.int64), np.ones(8, np.int64))


@njit(cache=True)
def _counts_one(dim, bound, axis, lvl, n: int, sizes, stride: int, keeps, capacity, partition, fanout,
                overlap, timeloop: bool, storage, noc, instances, ws) -> tuple:
    """Counts of one encoded mapping into ``storage`` (levels, 3, 3), ``noc`` (levels, 3, 2) and
    ``instances`` (levels,). Returns (fits, cycles, pes_used)."""
    (step, level_start, ext, child_ext, idx, adv, shifts, inner, coords, cshift, scratch, pas, keepers,
     origin_sets, ocounts, starts, lengths, tmp_s, tmp_l, buf_s, buf_e, u, running) = ws
    nl = keeps.shape[0]
    for d in range(8):
        running[d] = 1
    for j in range(n - 1, -1, -1):
        step[j] = running[dim[j]]
        running[dim[j]] *= bound[j]
    for i in range(nl):
        level_start[i] = n
        for j in range(n):
            if lvl[j] >= i:
                level_start[i] = j
                break
    cycles = 1
    pes = 1
    for j in range(n):
        if axis[j] == 0:
            cycles *= bound[j]
        else:
            pes *= bound[j]
    for i in range(nl):
        inst = 1
        for j in range(level_start[i]):
            if axis[j] != 0:
                inst *= bound[j]
        instances[i] = inst
    macs = 1
    for d in range(8):
        macs *= sizes[d]
    storage[:] = 0
    noc[:] = 0
    # capacity
    fits = True
    for i in range(nl):
        if capacity[i] < 0:
            continue
        _extents(dim, bound, level_start[i], n, ext)
        shared = 0
        reserved = 0
        for d in range(3):
            if partition[i, d] >= 0:
                reserved += partition[i, d]
        for d in range(3):
            if not keeps[i, d]:
                continue
            w = _tile_words(ext, d, stride)
            if partition[i, d] >= 0:
                if w > partition[i, d]:
                    fits = False
            else:
                shared += w
        if shared > capacity[i] - reserved:
            fits = False
    for d in range(3):
        nk = 0
        for i in range(nl):
            if keeps[i, d]:
                keepers[nk] = i
                nk += 1
        for a in range(nk):
            i = keepers[a]
            _extents(dim, bound, level_start[i], n, ext)
            k = _steps_above(dim, bound, axis, step, level_start[i], timeloop, idx, adv, shifts, inner)
            pas[i] = _pas(ext, d, stride, timeloop, k, adv, shifts, inner, coords, cshift)
        for a in range(nk):
            i = keepers[a]
            per_mac = macs // instances[i]
            ps = 0
            if d == 2:
                ps = 1
                for dd in range(8):
                    if dd != 3 and dd != 6 and dd != 7:
                        v = sizes[dd]
                        for j in range(level_start[i]):
                            if axis[j] != 0 and dim[j] == dd:
                                v //= bound[j]
                        ps *= v
            has_child = a + 1 < nk
            child = keepers[a + 1] if has_child else -1
            if d == 2:
                if not has_child:
                    updates = per_mac
                else:
                    reduced = _distinct_children(dim, bound, axis, lvl, step, n, i, child, d, stride, scratch)
                    updates = pas[child] * reduced
                reads = updates - ps
                fills = 0 if a == 0 else pas[i] - ps
            else:
                updates = 0
                if not has_child:
                    reads = per_mac
                else:
                    any_spatial = False
                    for j in range(n):
                        if axis[j] != 0 and bound[j] > 1 and lvl[j] >= i and lvl[j] < child:
                            any_spatial = True
                    if overlap[child] and any_spatial:
                        _extents(dim, bound, level_start[child], n, child_ext)
                        k = _steps_above(dim, bound, axis, step, level_start[child], timeloop, idx, adv, shifts, inner)
                        reads = _union_reads(dim, bound, axis, lvl, step, n, i, child, child_ext, d, stride,
                                             timeloop, k, adv, shifts, inner, coords, cshift, scratch,
                                             origin_sets, ocounts, starts, lengths, tmp_s, tmp_l, buf_s, buf_e, u)
                    else:
                        reads = pas[child] * _distinct_children(dim, bound, axis, lvl, step, n, i, child, d, stride, scratch)
                fills = 0 if a == 0 else pas[i]
            storage[i, d, 0] = reads
            storage[i, d, 1] = fills
            storage[i, d, 2] = updates
            if has_child:
                child_ps = 0
                if d == 2:
                    child_ps = 1
                    for dd in range(8):
                        if dd != 3 and dd != 6 and dd != 7:
                            v = sizes[dd]
                            for j in range(level_start[child]):
                                if axis[j] != 0 and dim[j] == dd:
                                    v //= bound[j]
                            child_ps *= v
                child_fills = pas[child] - child_ps if d == 2 else pas[child]
                for f in range(i + 1, child + 1):
                    if fanout[f] == 1:
                        continue
                    below_total = 1
                    for j in range(n):
                        if axis[j] != 0 and lvl[j] >= f and lvl[j] < child:
                            below_total *= bound[j]
                    shared_children = 1
                    if below_total > 1:
                        shared_children = below_total // _distinct_children(dim, bound, axis, lvl, step, n, f, child, d, stride, scratch)
                    receivers = instances[child] // shared_children
                    noc[f, d, 0] += child_fills * receivers
                    if d == 2:
                        noc[f, d, 1] += pas[child] * receivers
    return fits, cycles, pes


@njit(cache=True)
def _energy(storage, noc, instances, block, energy, noc_energy, macs: int, mac_energy: float) -> float:
    total = 0.0
    nl = storage.shape[0]
    for i in range(nl):
        for d in range(3):
            for a in range(3):
                per = storage[i, d, a]
                if per:
                    total += ((per + block[i] - 1) // block[i]) * instances[i] * energy[i, a]
            for a in range(2):
                total += noc[i, d, a] * noc_energy[i]
    return total + macs * mac_energy


@njit(cache=True)
def evaluate_batch(loops, n_loops, sizes, stride, keeps, capacity, partition, block, fanout, overlap, energy,
                   noc_energy, mac_energy, timeloop, ws, out_energy, out_cycles, out_pes, out_fits):
    """Energy, compute cycles, PEs used and capacity fit of each mapping ``loops[c, :n_loops[c]]``
    (rows: dim, bound, axis, level)."""
    nl = keeps.shape[0]
    storage = np.zeros((nl, 3, 3), np.int64)
    noc = np.zeros((nl, 3, 2), np.int64)
    instances = np.zeros(nl, np.int64)
    macs = 1
    for d in range(8):
        macs *= sizes[d]
    for c in range(loops.shape[0]):
        n = n_loops[c]
        fits, cycles, pes = _counts_one(loops[c, :n, 0], loops[c, :n, 1], loops[c, :n, 2], loops[c, :n, 3], n,
                                        sizes, stride, keeps, capacity, partition, fanout, overlap, timeloop,
                                        storage, noc, instances, ws)
        out_fits[c] = fits
        out_cycles[c] = cycles
        out_pes[c] = pes
        out_energy[c] = _energy(storage, noc, instances, block, energy, noc_energy, macs, mac_energy)


@njit(cache=True)
def counts_single(loops, sizes, stride, keeps, capacity, partition, fanout, overlap, timeloop, storage, noc, instances,
                  ws):
    n = loops.shape[0]
    return _counts_one(loops[:, 0], loops[:, 1], loops[:, 2], loops[:, 3], n, sizes, stride, keeps, capacity,
                       partition, fanout, overlap, timeloop, storage, noc, instances, ws)


# ------------------------------------------------------------------------------------------------
# Python wrappers
# ------------------------------------------------------------------------------------------------
def fast_counts(dims: LoopDims, arch: Architecture, mapping: Mapping, tables: ArchTables | None = None) -> tuple[AccessCounts, bool]:
    """The model's counts of one mapping through the kernel (and whether its tiles fit). Perfect
    factorisations only (the mapper's space); remainders: ``sim.model.closed_form_counts``."""
    for d in DIMS:
        product = math.prod(l.bound for lm in mapping.levels for l in (*lm.temporal, *lm.spatial) if l.dim == d)
        if product != getattr(dims, d):
            raise MappingError(f"the batched model takes perfect factorisations only: the loops over {d} multiply "
                               f"to {product}, the layer has {d}={getattr(dims, d)}; use sim.model.closed_form_counts")
    tables = tables or arch_tables(arch)
    counts = AccessCounts.empty(tuple(l.name for l in arch.levels))
    loops = encode(mapping, arch)
    fits, cycles, pes = counts_single(loops, dims_array(dims), int(dims.stride), tables.keeps,
                                      tables.capacity, tables.partition, tables.fanout, tables.overlap,
                                      bool(tables.timeloop), counts.storage, counts.noc, counts.instances,
                                      batch_workspace(dims, tables, len(loops)))
    counts.macs = dims.macs
    counts.cycles_compute = int(cycles)
    counts.pes_used = int(pes)
    return counts, bool(fits)


def batch_workspace(dims: LoopDims, tables: ArchTables, max_loops: int = 48) -> tuple:
    return workspace(max(max_loops, 48), len(tables.keeps), int(np.prod(tables.fanout)), max(dims.P, dims.Q))


class BatchResult(NamedTuple):
    energy: np.ndarray
    cycles: np.ndarray
    pes_used: np.ndarray
    fits: np.ndarray


def evaluate(dims: LoopDims, tables: ArchTables, loops: np.ndarray, n_loops: np.ndarray | None = None) -> BatchResult:
    """Evaluate a batch ``loops`` (candidates, max loops, 4) of encoded mappings."""
    loops = np.ascontiguousarray(loops, np.int64)
    count = loops.shape[0]
    if n_loops is None:
        n_loops = np.full(count, loops.shape[1], np.int64)
    out = BatchResult(np.zeros(count), np.zeros(count, np.int64), np.zeros(count, np.int64), np.zeros(count, np.bool_))
    evaluate_batch(loops, np.asarray(n_loops, np.int64), dims_array(dims), np.int64(dims.stride), tables.keeps,
                   tables.capacity, tables.partition, tables.block, tables.fanout, tables.overlap, tables.energy,
                   tables.noc_energy, float(tables.mac_energy), bool(tables.timeloop),
                   batch_workspace(dims, tables, loops.shape[1]), *out)
    return out


__all__ = ["ArchTables", "BatchResult", "arch_tables", "decode", "encode", "evaluate", "fast_counts"]


# ------------------------------------------------------------------------------------------------
# Kernels of the mapper's search (sim.mapper): candidates built from factor vectors and orders
# ------------------------------------------------------------------------------------------------
@njit(cache=True)
def outer_energy_batch(dram_factors, dram_orders, orders, sizes, stride, keeps, block, energy, timeloop, out):
    """Per DRAM configuration (a factor per dimension and an order index): the exact energy of DRAM
    (all actions) and of the fills of level 1, for the data types level 1 keeps. Both depend only on
    the DRAM loops and level 1's tile (``sizes / dram_factors``), not on how the tile is split
    further inside."""
    n = 16
    dim = np.zeros(n, np.int64)
    bound = np.ones(n, np.int64)
    axis = np.zeros(n, np.int64)
    step = np.ones(n, np.int64)
    idx = np.zeros(n + 1, np.int64)
    adv = np.zeros(n + 1, np.int64)
    shifts = np.zeros((n + 1, 8), np.int64)
    inner = np.zeros(n + 1, np.bool_)
    coords = np.zeros((5, 3), np.int64)
    cshift = np.zeros(5, np.int64)
    ext = np.ones(8, np.int64)
    out_size = sizes[0] * sizes[1] * sizes[2] * sizes[4] * sizes[5]
    for c in range(dram_factors.shape[0]):
        m = 0
        for a in range(8):
            d = orders[dram_orders[c], a]
            if dram_factors[c, d] > 1:
                dim[m] = d
                bound[m] = dram_factors[c, d]
                m += 1
        start = m
        for d in range(8):
            ext[d] = sizes[d] // dram_factors[c, d]
        for j in range(start):
            step[j] = ext[dim[j]]
            for jj in range(j + 1, start):
                if dim[jj] == dim[j]:
                    step[j] *= bound[jj]
        k = _steps_above(dim, bound, axis, step, start, timeloop, idx, adv, shifts, inner)
        total = 0.0
        for d in range(3):
            if not keeps[1, d]:
                continue
            pas = _pas(ext, d, stride, timeloop, k, adv, shifts, inner, coords, cshift)
            if d == 2:
                dram = ((pas - out_size + block[0] - 1) // block[0]) * energy[0, 0] + ((pas + block[0] - 1) // block[0]) * energy[0, 2]
                fill = ((pas - out_size + block[1] - 1) // block[1]) * energy[1, 1]
            else:
                dram = ((pas + block[0] - 1) // block[0]) * energy[0, 0]
                fill = ((pas + block[1] - 1) // block[1]) * energy[1, 1]
            total += dram + fill
        out[c] = total


@njit(cache=True)
def inner_batch(dram_factor, dram_order, glb_ext, inner_y, inner_x, inner_pe, orders, pe_dims, pe_levels,
                sizes, stride, keeps, capacity, partition, block, fanout, overlap, energy, noc_energy, mac_energy,
                timeloop, ws, skip, out_energy, out_cycles):
    """Every (inner configuration, level-1 order) under one DRAM configuration: energy and cycles
    (``inf`` energy marks an order that repeats an earlier one once bound-1 loops are dropped, or
    a candidate ``skip`` excludes)."""
    nl = keeps.shape[0]
    storage = np.zeros((nl, 3, 3), np.int64)
    noc = np.zeros((nl, 3, 2), np.int64)
    instances = np.zeros(nl, np.int64)
    loops = np.zeros((48, 4), np.int64)
    macs = 1
    for d in range(8):
        macs *= sizes[d]
    k_orders = orders.shape[0]
    seq = np.zeros((k_orders, 8), np.int64)
    fg = np.ones(8, np.int64)
    for c in range(inner_y.shape[0]):
        for d in range(8):
            fg[d] = glb_ext[d] // (inner_y[c, d] * inner_x[c, d] * inner_pe[c, d])
        for o in range(k_orders):
            length = 0
            for a in range(8):
                d = orders[o, a]
                if fg[d] > 1:
                    seq[o, length] = d
                    length += 1
            for a in range(length, 8):
                seq[o, a] = -1
            duplicate = False
            for p in range(o):
                same = True
                for a in range(8):
                    if seq[p, a] != seq[o, a]:
                        same = False
                        break
                if same:
                    duplicate = True
                    break
            if duplicate or skip[c, o]:
                out_energy[c, o] = np.inf
                out_cycles[c, o] = 0
                continue
            m = 0
            for a in range(8):
                d = orders[dram_order, a]
                if dram_factor[d] > 1:
                    loops[m, 0] = d; loops[m, 1] = dram_factor[d]; loops[m, 2] = 0; loops[m, 3] = 0
                    m += 1
            for a in range(length):
                d = seq[o, a]
                loops[m, 0] = d; loops[m, 1] = fg[d]; loops[m, 2] = 0; loops[m, 3] = 1
                m += 1
            for d in range(8):
                if inner_y[c, d] > 1:
                    loops[m, 0] = d; loops[m, 1] = inner_y[c, d]; loops[m, 2] = 2; loops[m, 3] = 1
                    m += 1
            for d in range(8):
                if inner_x[c, d] > 1:
                    loops[m, 0] = d; loops[m, 1] = inner_x[c, d]; loops[m, 2] = 1; loops[m, 3] = 1
                    m += 1
            for a in range(pe_dims.shape[0]):
                d = pe_dims[a]
                if inner_pe[c, d] > 1:
                    loops[m, 0] = d; loops[m, 1] = inner_pe[c, d]; loops[m, 2] = 0; loops[m, 3] = pe_levels[a]
                    m += 1
            if m == 0:
                loops[0, 0] = 0; loops[0, 1] = 1; loops[0, 2] = 0; loops[0, 3] = 0
                m = 1
            fits, cycles, pes = _counts_one(loops[:m, 0], loops[:m, 1], loops[:m, 2], loops[:m, 3], m, sizes, stride,
                                            keeps, capacity, partition, fanout, overlap, timeloop, storage, noc,
                                            instances, ws)
            out_cycles[c, o] = cycles
            if fits:
                out_energy[c, o] = _energy(storage, noc, instances, block, energy, noc_energy, macs, mac_energy)
            else:
                out_energy[c, o] = np.nan


@njit(cache=True)
def screen_inner(dram_factor, dram_order, glb_ext, inner_prod, inner_bounds, per_visit, orders, moves, irrelevant,
                 outer_energy, scale, limit, use_bound, out_keep, out_bound):
    """For one DRAM configuration: which (inner configuration, level-1 order) candidates divide the
    level-1 tile and, when ``use_bound``, have a bound ``(outer + inner + revisits) * scale`` not
    above ``limit`` (see ``sim.mapper._revisit_bounds`` for the revisit argument). Writes
    ``out_keep`` and the bounds ``out_bound`` (configurations, orders); returns whether each
    configuration keeps any."""
    n_config = inner_prod.shape[0]
    n_orders = orders.shape[0]
    any_kept = np.zeros(n_config, np.bool_)
    fg = np.ones(8, np.int64)
    seq_dim = np.zeros(16, np.int64)
    seq_bound = np.ones(16, np.int64)
    for a in range(8):
        d = orders[dram_order, a]
        seq_dim[a] = d
        seq_bound[a] = dram_factor[d]
    for c in range(n_config):
        ok = True
        for d in range(8):
            if glb_ext[d] % inner_prod[c, d] != 0:
                ok = False
                break
            fg[d] = glb_ext[d] // inner_prod[c, d]
        for o in range(n_orders):
            out_keep[c, o] = False
        if not ok:
            continue
        for o in range(n_orders):
            for a in range(8):
                d = orders[o, a]
                seq_dim[8 + a] = d
                seq_bound[8 + a] = fg[d]
            bound = outer_energy + inner_bounds[c]
            for t in range(3):
                last = -1
                for j in range(16):
                    if seq_bound[j] > 1 and moves[t, seq_dim[j]]:
                        last = j
                visits = 1
                for j in range(last):
                    if irrelevant[t, seq_dim[j]]:
                        visits *= seq_bound[j]
                bound += (visits - 1) * per_visit[c, t]
            keep = (not use_bound) or bound * scale <= limit
            out_keep[c, o] = keep
            out_bound[c, o] = bound * scale
            if keep:
                any_kept[c] = True
    return any_kept
