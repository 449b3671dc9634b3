"""The counting engine: executes a mapping's loop nest on a layer's real tensors (``sim.kernels``)
and returns its access counts and the layer output it computed.

Tensors in loop-nest layout: weights (G, M, C, R, S), inputs (N, G, C, H, W) already padded and
cropped to H = (P - 1) * stride + R, outputs (N, G, M, P, Q).

Sparsity (the architecture's ``zero_handling`` and ``dram_compression``), counted on the real data:

- MAC classes: ``macs_zero_weight``, ``macs_zero_input``, ``macs_zero_both`` (MACs whose weight,
  input, or both are zero). Every rule below is a union of these classes.
- ``macs_gated``: MACs that spend no MAC energy: a zero operand whose handling is ``gate`` or
  ``skip``. ``macs_skipped``: MACs that take no cycle: a zero operand whose handling is ``skip``.
- ``reads_saved[d]``: reads of operand d at its innermost level (one per MAC when dense) that do
  not happen: the *other* operand is zero and gated or skipped, or d itself is zero and skipped
  (a skipped zero is never read). Partial-sum reads and updates are not reduced.
- Cycles under ``skip`` (lockstep PEs): the PEs advance together through the *steps*, the
  iterations of the temporal loops above the innermost fan-out (the loops inside it are each PE's
  own work). ``cycles_compute = sum over steps of max over PEs of the MACs not skipped in that
  step``; always >= (MACs not skipped) / PEs used, and equal to the dense count when nothing is
  skipped. Without ``skip`` it is the dense count (gating saves no cycle).
- DRAM compression, per chunk (``sim.compression``): each tile delta of inputs or weights moved
  from DRAM to its child level is one chunk, encoded from the tensor values. Outputs: each tile
  delta of the child is written back to DRAM once (one chunk), and its elements DRAM has met
  before are read back first (psum reloads, one chunk); both are encoded with the values DRAM
  finally receives (``output_values``: the layer's outputs after a fused activation such as ReLU;
  default the engine's computed outputs), also for partial sums drained before they are complete
  (an approximation: their intermediate values are not tracked). ``raw_network_input`` leaves the
  inputs uncompressed (the network's input image, which Eyeriss does not compress).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from networks.layers import LoopDims
from sim import kernels, timing
from sim.arch import DATA_TYPES, Architecture
from sim.compression import COMPRESSION_CODE, rle_pairs_per_word
from sim.counts import AccessCounts
from sim.mapping import DIMS, Nest

COUNTING_CODE = {"timeloop": 0, "exact": 1}


@dataclass
class EngineResult:
    counts: AccessCounts
    outputs: np.ndarray  # (N, G, M, P, Q) float32


def tensor_strides(dims: LoopDims) -> dict[str, dict[str, int]]:
    """Flat-index stride of each loop dimension in each tensor (inputs: P and Q move by ``stride``)."""
    N, G, M, C, P, Q, R, S = (getattr(dims, d) for d in DIMS)
    H, W, st = dims.H, dims.W, dims.stride
    return {
        "weights": {"G": M * C * R * S, "M": C * R * S, "C": R * S, "R": S, "S": 1},
        "inputs": {"N": G * C * H * W, "G": C * H * W, "C": H * W, "P": st * W, "R": W, "Q": st, "S": 1},
        "outputs": {"N": G * M * P * Q, "G": M * P * Q, "M": P * Q, "P": Q, "Q": 1},
    }


def layer_tensors(dims: LoopDims, weight: np.ndarray, x: np.ndarray, padding: int) -> tuple[np.ndarray, np.ndarray]:
    """A conv/FC layer's weight (M, C/G, R, S) or (M, C*H*W) and input batch (N, C, H, W) in
    loop-nest layout, flattened."""
    g, m, c, r, s = dims.G, dims.M, dims.C, dims.R, dims.S
    w = np.ascontiguousarray(weight.reshape(g, m, c, r, s), dtype=np.float32)
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding))) if padding else x
    xp = xp[:, :, : dims.H, : dims.W]
    if xp.shape != (dims.N, g * c, dims.H, dims.W):
        raise ValueError(f"input of shape {x.shape} does not match the layer's loop dims {dims}")
    return w.ravel(), np.ascontiguousarray(xp, dtype=np.float32).reshape(-1)


def _tile_offsets(nest: Nest, level: int, strides: dict[str, int]) -> np.ndarray:
    """Flat offsets (relative to the tile origin) of every element of a level's tile. Indices of a
    dimension with a spatial remainder stop at its size (a tile holding its spatial loops starts at
    index 0 along it; the PEs' tiles stay below the size)."""
    sizes = dict(nest.guarded)
    offsets = np.zeros(1, np.int64)
    for d in DIMS:
        stride = strides.get(d, 0)
        if not stride:
            continue
        values = np.zeros(1, np.int64)
        for loop in nest.loops_within(level):
            if loop.dim == d and loop.bound > 1:
                values = (values[:, None] + np.arange(loop.bound, dtype=np.int64) * loop.step).ravel()
        if d in sizes:
            values = values[values < sizes[d]]
        offsets = (offsets[:, None] + values * stride).ravel()
    offsets.sort()  # np.unique's hashing costs ms on a big tile; sorted neighbours are as exact
    return offsets[np.concatenate(([True], offsets[1:] != offsets[:-1]))]


def _representatives(nest: Nest, spatial_loops, level: int, strides: dict[str, int], instances: int, inst_weight: np.ndarray) -> np.ndarray:
    """For each slot of ``level``: whether it is a utilised instance and the first, along every axis
    of every fan-out in ``spatial_loops``, among the utilised instances holding the same tile with
    the same coordinates on every other spatial loop (Timeloop shares only identical tiles and
    checks each axis separately; idle instances of a spatial remainder share nothing)."""
    above = nest.loops_above(level)
    active = nest.active_mask(level)
    flags = active.copy()
    groups: dict[tuple[int, str], list[int]] = {}
    for position, loop in enumerate(above):
        if any(loop is s for s in spatial_loops):
            groups.setdefault((loop.level, loop.axis), []).append(position)
    spatial_positions = [p for p, loop in enumerate(above) if loop.axis is not None]
    for positions in groups.values():
        others = [p for p in spatial_positions if p not in positions]
        first: dict[tuple, tuple[int, ...]] = {}
        # slots in increasing order: among the slots with the same other coordinates, the first
        # holding a tile has the lexicographically smallest coordinates on this axis
        for inst in range(instances):
            if not active[inst]:
                continue
            combo = tuple((inst // inst_weight[p]) % above[p].bound for p in positions)
            offset = sum(i * above[p].step * strides.get(above[p].dim, 0) for p, i in zip(positions, combo))
            key = (tuple((inst // inst_weight[p]) % above[p].bound for p in others), offset)
            if first.setdefault(key, combo) != combo:
                flags[inst] = False
    return flags


def run_engine(nest: Nest, arch: Architecture, weights_flat: np.ndarray, inputs_flat: np.ndarray, *,
               raw_network_input: bool = False, output_values: np.ndarray | None = None) -> EngineResult:
    """Execute the nest on the tensors and count (sparsity options: see the module docstring)."""
    if nest.parts:
        return _run_parts(nest, arch, weights_flat, inputs_flat, raw_network_input=raw_network_input,
                          output_values=output_values)
    dims = nest.dims
    strides = tensor_strides(dims)
    loops = nest.loops
    n_loops = len(loops)
    nlev = len(arch.levels)
    level_start = np.array(nest.level_start, np.int64)
    sizes = {
        "weights": dims.G * dims.M * dims.C * dims.R * dims.S,
        "inputs": dims.N * dims.G * dims.C * dims.H * dims.W,
        "outputs": dims.N * dims.G * dims.M * dims.P * dims.Q,
    }
    if weights_flat.size != sizes["weights"] or inputs_flat.size != sizes["inputs"]:
        raise ValueError(f"tensor sizes {weights_flat.size}, {inputs_flat.size} do not match loop dims {dims}")

    bound = np.array([l.bound for l in loops], np.int64)
    dw = np.array([l.step * strides["weights"].get(l.dim, 0) for l in loops], np.int64)
    dx = np.array([l.step * strides["inputs"].get(l.dim, 0) for l in loops], np.int64)
    dy = np.array([l.step * strides["outputs"].get(l.dim, 0) for l in loops], np.int64)
    is_spatial = np.array([l.axis is not None for l in loops], np.bool_)
    level_of_loop = np.array([l.level for l in loops], np.int64)

    keeps = np.zeros((nlev, 3), np.bool_)
    parent = np.full((nlev, 3), -1, np.int64)
    for di, d in enumerate(DATA_TYPES):
        holders = arch.levels_keeping(d)
        for position, i in enumerate(holders):
            keeps[i, di] = True
            parent[i, di] = holders[position - 1] if position else -1

    instances = np.array([nest.instances(i) for i in range(nlev)], np.int64)  # utilised
    slots = np.array([nest.slots(i) for i in range(nlev)], np.int64)  # utilised and idle
    max_inst = int(slots.max())
    # the PEs' instances (the innermost level's) a spatial remainder leaves idle are never visited
    pe_active = np.ascontiguousarray(nest.active_mask(nlev - 1))
    # with idle PEs the MAC pass's blocks must not span a spatial loop (it checks PEs between blocks)
    mac_min_start = max((p + 1 for p, l in enumerate(loops) if l.axis is not None), default=0) if nest.guarded else 0
    inst_weight = np.zeros((nlev, n_loops), np.int64)
    temporal_above = np.zeros((nlev, n_loops), np.bool_)
    innermost_above = np.full(nlev, -1, np.int64)
    for i in range(nlev):
        weight = 1
        for position in range(nest.level_start[i] - 1, -1, -1):
            loop = loops[position]
            if loop.axis is not None:
                inst_weight[i, position] = weight
                weight *= loop.bound
            else:
                temporal_above[i, position] = True
                if loop.bound > 1 and innermost_above[i] < 0:
                    innermost_above[i] = position

    overlap = np.array([level.multicast == "overlap" for level in arch.levels], np.bool_)
    step_inc = np.zeros((nlev, 3, n_loops), np.bool_)
    rep = np.ones((nlev, 3, max_inst), np.bool_)
    noc_rep = np.zeros((nlev, nlev, 3, max_inst), np.bool_)
    rel_parts, mem_parts = [], []
    rel_start = np.zeros((nlev, 3), np.int64)
    rel_len = np.zeros((nlev, 3), np.int64)
    mem_start = np.zeros((nlev, 3), np.int64)
    mem_len = np.zeros((nlev, 3), np.int64)
    rel_cursor = mem_cursor = 0
    stamp_start = np.zeros((nlev, 3), np.int64)
    stamp_size = 0
    for i in range(1, nlev):
        for di, d in enumerate(DATA_TYPES):
            if not keeps[i, di]:
                continue
            rel = _tile_offsets(nest, i, strides[d])
            member = np.zeros(int(rel.max()) + 1, np.bool_)
            member[rel] = True
            rel_start[i, di], rel_len[i, di] = rel_cursor, len(rel)
            mem_start[i, di], mem_len[i, di] = mem_cursor, len(member)
            rel_parts.append(rel)
            mem_parts.append(member)
            rel_cursor += len(rel)
            mem_cursor += len(member)
            p = int(parent[i, di])
            between = tuple(l for l in nest.loops if l.axis is not None and p <= l.level < i)
            rep[i, di, : slots[i]] = _representatives(nest, between, i, strides[d], int(slots[i]), inst_weight[i])
            for f in range(p + 1, i + 1):
                if arch.levels[f].fanout > 1:
                    below = tuple(l for l in between if l.level >= f)
                    noc_rep[f, i, di, : slots[i]] = _representatives(nest, below, i, strides[d], int(slots[i]), inst_weight[i])
            if overlap[i]:
                stamp_start[i, di] = stamp_size
                stamp_size += sizes[d]
                for position in range(nest.level_start[i]):
                    loop = loops[position]
                    step_inc[i, di, position] = not (loop.axis is not None and loop.level >= p)
    rel_all = np.concatenate(rel_parts) if rel_parts else np.zeros(1, np.int64)
    mem_all = np.concatenate(mem_parts) if mem_parts else np.zeros(1, np.bool_)
    stamp_all = np.full(max(stamp_size, 1), -1, np.int64)
    step_id = np.zeros((nlev, 3), np.int64)

    seen_words = -(-sizes["outputs"] // 64)
    seen_base = np.zeros(nlev, np.int64)
    cursor = 0
    for i in range(nlev):
        if keeps[i, 2]:
            seen_base[i] = cursor
            cursor += int(slots[i]) * seen_words
    seen_bits = np.zeros(max(cursor, 1), np.uint64)

    initialized = np.zeros((nlev, 3, max_inst), np.bool_)
    prev_origin = np.zeros((nlev, 3, max_inst), np.int64)
    last_visit = np.zeros((nlev, max_inst), np.int64)
    adv_serial = np.zeros(n_loops, np.int64)
    event_needed = _events_needed(nest, arch, keeps, dw, dx, dy)
    block_start, block_offsets = _inner_block(nest, dw, dx, dy)
    outputs = np.zeros(sizes["outputs"], np.float32)
    pas = np.zeros((nlev, 3), np.int64)
    ps = np.zeros((nlev, 3), np.int64)
    reloads = np.zeros((nlev, 3), np.int64)
    parent_reads = np.zeros((nlev, 3), np.int64)
    arrivals = np.zeros((nlev, 3), np.int64)
    noc = np.zeros((nlev, 3, 2), np.int64)
    scalars = np.zeros(8, np.int64)
    sparse = _SparseArrays(nest, arch, raw_network_input, keeps, parent)
    if output_values is not None and np.size(output_values) != sizes["outputs"]:
        raise ValueError(f"output_values has {np.size(output_values)} elements, the layer's outputs {sizes['outputs']}")
    clock = _TimingArrays(nest, arch, parent, output_values, bool(sparse.comp[2]))

    kernels.run_nest(
        bound, dw, dx, dy, is_spatial, level_of_loop, level_start, nlev, keeps, parent,
        COUNTING_CODE[arch.counting], innermost_above, temporal_above, inst_weight, overlap, step_inc, event_needed,
        rel_all, rel_start, rel_len, mem_all, mem_start, mem_len,
        initialized, prev_origin, last_visit, adv_serial, seen_bits, seen_base, seen_words,
        rep, noc_rep, stamp_all, stamp_start, step_id,
        block_start, *block_offsets,
        np.ascontiguousarray(weights_flat, np.float32), np.ascontiguousarray(inputs_flat, np.float32), outputs,
        pas, ps, reloads, parent_reads, arrivals, noc, scalars,
        sparse.skip_code, sparse.sync_start, sparse.step_weight, sparse.step_max,
        sparse.comp, sparse.value_bits, sparse.pairs_per_word, sparse.access_bits, sparse.dram_bits,
        sparse.dram_vec, sparse.out_events, *clock.kernel_args(), pe_active,
        np.ascontiguousarray(inst_weight[nlev - 1]), mac_min_start,
    )
    values = outputs if output_values is None else np.asarray(output_values, np.float32).reshape(-1)
    if values.size != outputs.size:
        raise ValueError(f"output_values has {values.size} elements, the layer's outputs {outputs.size}")
    # always called (without output compression no events were recorded): one compiled signature
    kernels.encode_output_chunks(
        sparse.out_events, int(scalars[7]), rel_all, rel_start, rel_len, mem_all, mem_start, mem_len,
        np.ascontiguousarray(values), np.zeros(seen_words, np.uint64), int(sparse.comp[2]),
        int(sparse.value_bits[2]), int(sparse.pairs_per_word[2]), int(sparse.access_bits[2]),
        sparse.dram_bits[2], sparse.dram_vec[2],
    )

    counts = AccessCounts.empty(tuple(level.name for level in arch.levels))
    counts.instances[:] = instances
    counts.macs, counts.macs_zero_operand, counts.cycles_compute = (int(v) for v in scalars[:3])
    counts.pes_used = nest.total_spatial
    macs = counts.macs
    for di, d in enumerate(DATA_TYPES):
        holders = arch.levels_keeping(d)
        for position, i in enumerate(holders):
            innermost = position == len(holders) - 1
            n = int(instances[i])
            if d == "outputs":
                updates = macs if innermost else int(arrivals[i, di])
                reads = updates - int(ps[i, di])
                fills = int(reloads[i, di]) if position else 0
                row = (reads, fills, updates)
            else:
                reads = macs if innermost else int(parent_reads[i, di])
                row = (reads, int(pas[i, di]) if position else 0, 0)
            counts.storage[i, di] = [_per_instance(v, n) for v in row]
    counts.noc[:] = noc
    _sparse_counts(counts, arch, scalars, sparse)
    counts.timing = clock.finish(counts, rel_len, rep & _active_slots(nest, nlev, max_inst)[:, None, :])
    return EngineResult(counts=counts, outputs=outputs.reshape(dims.N, dims.G, dims.M, dims.P, dims.Q))


class _SparseArrays:
    """The kernel's sparsity inputs and outputs, with their dense defaults (one signature for all)."""

    def __init__(self, nest: Nest, arch: Architecture, raw_network_input: bool, keeps: np.ndarray,
                 parent: np.ndarray) -> None:
        loops = nest.loops
        modes = arch.zero_handling
        self.skip_code = (1 if modes["weights"] == "skip" else 0) + (2 if modes["inputs"] == "skip" else 0)
        fanouts = [i for i, level in enumerate(arch.levels) if level.fanout > 1]
        self.sync_start = nest.level_start[fanouts[-1]] if fanouts else 0
        self.step_weight = np.zeros(len(loops), np.int64)
        steps = 1
        if self.skip_code:
            for position in range(self.sync_start - 1, -1, -1):
                if loops[position].axis is None:
                    self.step_weight[position] = steps
                    steps *= loops[position].bound
        self.step_max = np.zeros(steps if self.skip_code else 1, np.int64)
        dram = arch.levels[0]
        self.comp = np.zeros(3, np.int64)
        for di, d in enumerate(DATA_TYPES):
            has_child = bool((parent[:, di] == 0).any())
            if has_child and not (d == "inputs" and raw_network_input):
                self.comp[di] = COMPRESSION_CODE[arch.dram_compression[d]]
        self.value_bits = np.array([arch.word_bits[d] for d in DATA_TYPES], np.int64)
        self.pairs_per_word = np.array([max(1, rle_pairs_per_word(b)) for b in self.value_bits], np.int64)
        self.access_bits = self.value_bits * dram.block_words
        self.dram_bits = np.zeros((3, 2, 2), np.int64)  # data type, read/write, compressed/uncompressed
        self.dram_vec = np.zeros((3, 2), np.int64)
        events = 1
        if self.comp[2]:
            child = int(np.flatnonzero(parent[:, 2] == 0)[0])
            events = max(1, int(np.prod([l.bound for l in loops[: nest.level_start[child]]], dtype=np.int64)))
        self.out_events = np.zeros((events, 4), np.int64)


class _TimingArrays:
    """The kernel's timing inputs, state and outputs (``sim.timing``), and the last drains."""

    def __init__(self, nest: Nest, arch: Architecture, parent: np.ndarray,
                 output_values: np.ndarray | None, outputs_compressed: bool) -> None:
        nlev = len(arch.levels)
        # Outputs written to DRAM are timed as compressed chunks when their final values are known
        # before the run (a fused activation's output); otherwise at their uncompressed size.
        self.has_values = output_values is not None
        self.outputs_compressed = self.has_values and outputs_compressed
        self.values = (np.zeros(1, np.float32) if output_values is None
                       else np.ascontiguousarray(output_values, np.float32).reshape(-1))
        self.nest, self.arch, self.parent = nest, arch, parent
        self.res = timing.resources(nest, arch)
        self.kind, self.starts_pass = timing.transfer_kinds(arch, parent)
        n_res = self.res.cost.size
        self.fanout = np.array([level.fanout > 1 for level in arch.levels], np.bool_)
        self.step_start = timing.step_start(nest, arch)
        self.acc = np.zeros((nlev, 3, n_res), np.float64)
        self.used = np.zeros((nlev, 3), np.bool_)
        self.lb = np.zeros((nlev, 3), np.float64)
        self.to = np.zeros((nlev, 3, nlev), np.bool_)
        self.busy = np.zeros(n_res, np.float64)
        self.ready = np.zeros(nlev, np.float64)
        self.ready_cause = np.full(nlev, -1, np.int64)
        self.last = np.zeros(nlev, np.float64)
        self.evented = np.zeros(nlev, np.bool_)
        self.out = np.zeros(8, np.float64)
        self.words = np.zeros((nlev, 3, 7), np.float64)
        self.ev = np.zeros((nlev, 3), np.bool_)
        self.snap = np.zeros((nlev, 3, 3), np.float64)  # counters at the last charged step
        self.pending = np.zeros((nlev, max(1, max(nest.slots(i) for i in range(nlev)))), np.float64)

    def kernel_args(self) -> tuple:
        return (self.res.cost, self.kind, self.starts_pass, self.res.shared_port, self.fanout,
                self.step_start, self.acc, self.used, self.lb, self.to, self.busy, self.ready,
                self.ready_cause, self.last, self.evented, self.res.cause, self.out, self.has_values,
                self.values, self.words, self.ev, self.pending, self.snap)

    def finish(self, counts: AccessCounts, rel_len: np.ndarray, rep: np.ndarray) -> timing.Timing:
        """Drain the last output tiles (innermost level first), then assemble the layer's timing."""
        nlev = len(self.arch.levels)
        cost, cause_of, busy = self.res.cost, self.res.cause, self.busy
        stalls = self.out[1:4].copy()
        end = self.out[0]
        holders = self.arch.levels_keeping("outputs")
        for position in range(len(holders) - 1, 0, -1):
            p, i = holders[position - 1], holders[position]
            n = int(counts.instances[i])
            slots = self.nest.slots(i)
            tile = int(rel_len[i, 2])
            reps = int(rep[i, 2, :slots].sum())
            written = tile * reps
            if p == 0 and self.outputs_compressed:  # each instance's last chunk, compressed
                written = float(self.pending[i, :slots][rep[i, 2, :slots]].sum())
            words = {timing.read_port(i, nlev): tile * n,
                     timing.write_port(p, nlev, bool(self.res.shared_port[p])): written}
            for f in range(p + 1, i + 1):
                if self.fanout[f]:
                    words[timing.output_bus(f, nlev)] = tile * reps
                    words[timing.reduction_link(f, nlev)] = tile * (n - reps)
            times = {r: w * cost[r] for r, w in words.items() if w * cost[r] > 0}
            if not times:
                continue
            start = end
            origin = -1
            for r in times:
                if busy[r] > start:
                    start, origin = busy[r], int(cause_of[r])
            binding = max(times, key=times.get)
            if origin >= 0:
                stalls[origin] += start - end
            finish = start + times[binding]
            stalls[int(cause_of[binding])] += times[binding]
            for r in times:
                busy[r] = finish
            end = finish
        rounded = [int(round(v)) for v in stalls]
        compressed = (bool(counts.dram_compressed[0]), bool(counts.dram_compressed[1]), self.outputs_compressed)
        bound, what = timing.bound_cycles(counts, self.nest, self.arch, compressed=compressed)
        return timing.Timing(
            cycles_total=counts.cycles_compute + sum(rounded), cycles_compute=counts.cycles_compute,
            cycles_stall_dram=rounded[0], cycles_stall_buffer=rounded[1], cycles_stall_noc=rounded[2],
            cycles_stall_compute=timing.lockstep_wait_cycles(counts), cycles_exact=float(end),
            cycles_bound=bound, bound_resource=what,
        )


def _run_parts(nest: Nest, arch: Architecture, weights_flat: np.ndarray, inputs_flat: np.ndarray, *,
               raw_network_input: bool, output_values: np.ndarray | None) -> EngineResult:
    """A temporal remainder (``sim.mapping``): run each part on its slice of the tensors, one after
    the other; the counts add up (``AccessCounts.combine``), the outputs are the parts' side by side."""
    dims = nest.dims
    weights = weights_flat.reshape(dims.G, dims.M, dims.C, dims.R, dims.S)
    inputs = inputs_flat.reshape(dims.N, dims.G, dims.C, dims.H, dims.W)
    values = None if output_values is None else np.asarray(output_values).reshape(dims.N, dims.G, dims.M, dims.P, dims.Q)
    outputs = np.zeros((dims.N, dims.G, dims.M, dims.P, dims.Q), np.float32)
    results = []
    for part, d, first in nest.parts:
        size = getattr(part.dims, d)
        out_axis = "NGMPQ".index(d)
        out_slice = [slice(None)] * 5
        out_slice[out_axis] = slice(first, first + size)
        w_slice = [slice(None)] * 5
        x_slice = [slice(None)] * 5
        if d in "GM":
            w_slice["GM".index(d)] = slice(first, first + size)
        if d in "NG":
            x_slice["NG".index(d)] = slice(first, first + size)
        if d == "P":
            x_slice[3] = slice(first * dims.stride, first * dims.stride + part.dims.H)
        if d == "Q":
            x_slice[4] = slice(first * dims.stride, first * dims.stride + part.dims.W)
        result = run_engine(
            part, arch, np.ascontiguousarray(weights[tuple(w_slice)]).reshape(-1),
            np.ascontiguousarray(inputs[tuple(x_slice)]).reshape(-1), raw_network_input=raw_network_input,
            output_values=None if values is None else np.ascontiguousarray(values[tuple(out_slice)]).reshape(-1))
        outputs[tuple(out_slice)] = result.outputs
        results.append(result.counts)
    counts = AccessCounts.combine(results, timing=timing.sequential_timing([c.timing for c in results]))
    return EngineResult(counts=counts, outputs=outputs)


def _active_slots(nest: Nest, nlev: int, max_inst: int) -> np.ndarray:
    """``[i, slot]``: whether slot ``slot`` of level i is a utilised instance."""
    active = np.zeros((nlev, max_inst), np.bool_)
    for i in range(nlev):
        mask = nest.active_mask(i)
        active[i, : mask.size] = mask
    return active


def _union(w_on: bool, x_on: bool, zero_w: int, zero_x: int, zero_both: int) -> int:
    """MACs in (zero weight, if ``w_on``) or (zero input, if ``x_on``)."""
    return w_on * zero_w + x_on * zero_x - (w_on and x_on) * zero_both


def _sparse_counts(counts: AccessCounts, arch: Architecture, scalars: np.ndarray, sparse: _SparseArrays) -> None:
    zero_w, zero_x, zero_both = (int(v) for v in scalars[3:6])
    counts.macs_zero_weight, counts.macs_zero_input, counts.macs_zero_both = zero_w, zero_x, zero_both
    hw, hx = arch.zero_handling["weights"], arch.zero_handling["inputs"]
    counts.macs_gated = _union(hw != "none", hx != "none", zero_w, zero_x, zero_both)
    counts.macs_skipped = _union(hw == "skip", hx == "skip", zero_w, zero_x, zero_both)
    counts.reads_saved[0] = _union(hw == "skip", hx != "none", zero_w, zero_x, zero_both)
    counts.reads_saved[1] = _union(hw != "none", hx == "skip", zero_w, zero_x, zero_both)
    if sparse.skip_code:
        counts.cycles_compute = int(scalars[6])
    for di, d in enumerate(DATA_TYPES):
        if not sparse.comp[di]:
            continue
        counts.dram_compressed[di] = True
        counts.dram_bits[di] = sparse.dram_bits[di, :, 0]
        counts.dram_vectors[di] = sparse.dram_vec[di]
        # self-check: the chunks cover exactly the DRAM traffic the counts report
        words = counts.storage[0, di, 0], counts.storage[0, di, 2]
        if tuple(int(b) for b in sparse.dram_bits[di, :, 1]) != tuple(int(w) * arch.word_bits[d] for w in words):
            raise AssertionError(f"{d}: compressed chunks cover {sparse.dram_bits[di, :, 1]} bits, the DRAM "
                                 f"counts {words} words")


def _events_needed(nest: Nest, arch: Architecture, keeps: np.ndarray, dw, dx, dy) -> np.ndarray:
    """``[i, l + 1]``: whether an advance of loop l can change anything at level i (a different
    instance, or a moved tile of a data type the level keeps). Skipping the others is only a speed-up:
    such a step leaves every tile of the level where it was."""
    n_loops = len(nest.loops)
    needed = np.zeros((len(arch.levels), n_loops + 1), np.bool_)
    needed[:, 0] = True
    for i in range(1, len(arch.levels)):
        above = nest.level_start[i]
        for l in range(above):
            inner = range(l + 1, above)
            moves_instance = any(nest.loops[m].axis is not None and nest.loops[m].bound > 1 for m in range(l, above))
            moves_tile = False
            for d, delta in ((0, dw), (1, dx), (2, dy)):
                shift = delta[l] - sum((nest.loops[m].bound - 1) * delta[m] for m in inner)
                moves_tile |= bool(keeps[i, d]) and shift != 0
            needed[i, l + 1] = moves_instance or moves_tile
    return needed


INNER_BLOCK_MAX_MACS = 1 << 15


def _inner_block(nest: Nest, dw, dx, dy) -> tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The innermost loops the kernel runs as one flat block: inside every level's tile (no tile
    event can happen within them), temporal, and at most INNER_BLOCK_MAX_MACS iterations. Returns
    the first loop of the block and the (weights, inputs, outputs) offsets of its iterations."""
    start = len(nest.loops)
    floor = max(nest.level_start)
    size = 1
    while start > floor and nest.loops[start - 1].axis is None and size * nest.loops[start - 1].bound <= INNER_BLOCK_MAX_MACS:
        start -= 1
        size *= nest.loops[start].bound
    offsets = []
    for delta in (dw, dx, dy):
        flat = np.zeros(1, np.int64)
        for position in range(start, len(nest.loops)):  # outer to inner: execution order
            flat = (flat[:, None] + np.arange(nest.loops[position].bound, dtype=np.int64) * delta[position]).ravel()
        offsets.append(flat)
    return start, tuple(offsets)


def _per_instance(total: int, instances: int) -> int:
    if total % instances:
        raise AssertionError(f"engine total {total} is not shared evenly by {instances} instances")
    return total // instances
