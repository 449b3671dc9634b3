"""Numba kernels of the counting engine. They take only arrays and plain numbers and write into
preallocated outputs; ``sim.engine`` validates inputs, builds the arrays and reads the results.

Data-type codes: 0 weights, 1 inputs, 2 outputs. Counting codes: 0 timeloop, 1 exact.
Compression codes (``sim.compression.COMPRESSION_CODE``): 0 none, 1 rle, 2 significance_map.
Skip codes: bit 0 set: MACs with a zero weight are skipped; bit 1: MACs with a zero input.
"""
from __future__ import annotations

import numpy as np
from numba import njit

WEIGHTS, INPUTS, OUTPUTS = 0, 1, 2


@njit(cache=True, inline="always")
def _bit_test_and_set(bits, base, flat):
    # unsigned indices (never negative here) skip numba's wraparound check of a signed index
    word = base + (flat >> 6)
    mask = np.uint64(1) << np.uint64(flat & 63)
    if bits[np.uint64(word)] & mask:
        return True
    bits[np.uint64(word)] |= mask
    return False


@njit(cache=True, inline="always")
def _chunk_bits(mode, n, nonzero, trailing_run, pairs, value_bits, pairs_per_word):
    """Bits of one chunk of n values (sim.compression): ``pairs`` RLE pairs up to the last non-zero
    value, then ``trailing_run`` zeros."""
    if mode == 1:
        pairs += (trailing_run + 31) // 32
        return 64 * ((pairs + pairs_per_word - 1) // pairs_per_word)
    if mode == 2:
        return n + nonzero * value_bits
    return n * value_bits


@njit(cache=True)
def encode_output_chunks(events, n_events, rel_all, rel_start, rel_len, mem_all, mem_start, mem_len,
                         values, seen, mode, value_bits, pairs_per_word, access_bits, dram_bits,
                         dram_vec):
    """Replay the output tile events between DRAM and its child (rows of ``events``: level, origin,
    previous origin, whole tile) and encode their chunks with the outputs' final ``values``: each
    event's delta is written back to DRAM once (one chunk), and its elements DRAM has met before
    are read from DRAM (psum reloads, one chunk). ``seen``: zeroed bitmap of the output tensor.
    Adds to ``dram_bits[2, read/write, compressed/uncompressed]`` and ``dram_vec[2, read/write]``."""
    for k in range(n_events):
        i = events[k, 0]
        origin = events[k, 1]
        old = events[k, 2]
        full = events[k, 3] != 0
        r0 = rel_start[i, 2]
        m0 = mem_start[i, 2]
        nmem = mem_len[i, 2]
        w_n = w_nz = w_run = w_pairs = 0
        r_n = r_nz = r_run = r_pairs = 0
        for e in range(rel_len[i, 2]):
            flat = origin + rel_all[r0 + e]
            if not full:
                diff = flat - old
                if diff >= 0 and diff < nmem and mem_all[m0 + diff]:
                    continue
            zero = values[flat] == 0.0
            w_n += 1
            if zero:
                w_run += 1
            else:
                w_pairs += w_run // 32 + 1
                w_run = 0
                w_nz += 1
            if _bit_test_and_set(seen, 0, flat):
                r_n += 1
                if zero:
                    r_run += 1
                else:
                    r_pairs += r_run // 32 + 1
                    r_run = 0
                    r_nz += 1
        if r_n > 0:
            bits = _chunk_bits(mode, r_n, r_nz, r_run, r_pairs, value_bits, pairs_per_word)
            dram_bits[0, 0] += bits
            dram_bits[0, 1] += r_n * value_bits
            dram_vec[0] += (bits + access_bits - 1) // access_bits
        if w_n > 0:
            bits = _chunk_bits(mode, w_n, w_nz, w_run, w_pairs, value_bits, pairs_per_word)
            dram_bits[1, 0] += bits
            dram_bits[1, 1] += w_n * value_bits
            dram_vec[1] += (bits + access_bits - 1) // access_bits


@njit(cache=True)
def _has_zero(values):
    for k in range(values.shape[0]):
        if values[k] == 0.0:
            return True
    return False


MAC_BLOCK_MAX_MACS = 1 << 14


@njit(cache=True)
def _nest_macs(bound, dw, dx, dy, weights, inputs, outputs, zero_code, zeros, pe_active, pe_weight, min_start):
    """All MACs of the nest into ``outputs``, in blocks of the innermost loops (spatial or not; at
    most MAC_BLOCK_MAX_MACS MACs). Within a block each output's MACs accumulate in a register, in
    execution order (the same float32 additions as one update of ``outputs`` per MAC); four outputs
    with equally many MACs step side by side, so that their additions do not wait on each other.
    ``zero_code`` (bit 0: the weights hold a zero; bit 1: the inputs): add the MACs with a zero
    weight, a zero input and both to ``zeros[0:3]``; 0: count nothing.
    Idle PEs (a spatial remainder): ``pe_active[inst]`` for the PE reached with instance weights
    ``pe_weight`` (per loop; 0 for temporal loops); the blocks then start at ``min_start`` or later
    (after the spatial loops), and the walk steps over idle PEs as the tile-event walk does."""
    n_loops = bound.shape[0]
    start = n_loops
    size = 1
    while start > min_start and size * bound[start - 1] <= MAC_BLOCK_MAX_MACS:
        start -= 1
        size *= bound[start]
    mac_w = np.zeros(size, np.int64)  # block offsets in execution order, outer to inner loop
    mac_x = np.zeros(size, np.int64)
    mac_y = np.zeros(size, np.int64)
    span = 1
    for position in range(n_loops - 1, start - 1, -1):
        for i in range(1, bound[position]):
            for j in range(span):
                mac_w[i * span + j] = mac_w[j] + i * dw[position]
                mac_x[i * span + j] = mac_x[j] + i * dx[position]
                mac_y[i * span + j] = mac_y[j] + i * dy[position]
        span *= bound[position]
    # group the block's MACs by output, keeping their execution order within each output
    order = np.argsort(mac_y, kind="mergesort")
    # unsigned offsets and origins (the tensor indices are never negative): numba then indexes
    # without the wraparound check of a signed index
    group_w = mac_w[order].astype(np.uint64)
    group_x = mac_x[order].astype(np.uint64)
    step_w = dw.astype(np.uint64)
    step_x = dx.astype(np.uint64)
    sorted_y = mac_y[order]
    group_start = np.zeros(size + 1, np.int64)
    n_groups = 0
    for j in range(size):
        if j == 0 or sorted_y[j] != sorted_y[j - 1]:
            group_start[n_groups] = j
            n_groups += 1
    group_start[n_groups] = size
    # groups stepped four at a time (equal lengths), then one at a time
    quads = np.zeros(n_groups, np.int64)
    singles = np.zeros(n_groups, np.int64)
    n_quads = 0
    n_singles = 0
    g = 0
    while g < n_groups:
        length = group_start[g + 1] - group_start[g]
        if g + 4 <= n_groups and group_start[g + 4] - group_start[g] == 4 * length \
                and group_start[g + 2] - group_start[g + 1] == length \
                and group_start[g + 3] - group_start[g + 2] == length:
            quads[n_quads] = g
            n_quads += 1
            g += 4
        else:
            singles[n_singles] = g
            n_singles += 1
            g += 1
    idx = np.zeros(n_loops, np.int64)
    ow = np.uint64(0)
    ox = np.uint64(0)
    oy = 0
    inst = 0
    zero_w = 0
    zero_x = 0
    zero_both = 0
    while True:
        for q in range(n_quads):
            g = quads[q]
            s0 = group_start[g]
            length = group_start[g + 1] - s0
            s1 = s0 + length
            s2 = s1 + length
            s3 = s2 + length
            y0 = oy + sorted_y[s0]
            y1 = oy + sorted_y[s1]
            y2 = oy + sorted_y[s2]
            y3 = oy + sorted_y[s3]
            a0 = outputs[y0]
            a1 = outputs[y1]
            a2 = outputs[y2]
            a3 = outputs[y3]
            for k in range(length):
                a0 += weights[ow + group_w[s0 + k]] * inputs[ox + group_x[s0 + k]]
                a1 += weights[ow + group_w[s1 + k]] * inputs[ox + group_x[s1 + k]]
                a2 += weights[ow + group_w[s2 + k]] * inputs[ox + group_x[s2 + k]]
                a3 += weights[ow + group_w[s3 + k]] * inputs[ox + group_x[s3 + k]]
            outputs[y0] = a0
            outputs[y1] = a1
            outputs[y2] = a2
            outputs[y3] = a3
        for r in range(n_singles):
            g = singles[r]
            y = oy + sorted_y[group_start[g]]
            acc = outputs[y]
            for j in range(group_start[g], group_start[g + 1]):
                acc += weights[ow + group_w[j]] * inputs[ox + group_x[j]]
            outputs[y] = acc
        if zero_code == 1:  # only the weights hold zeros
            for j in range(size):
                zero_w += weights[ow + group_w[j]] == 0.0
        elif zero_code == 2:
            for j in range(size):
                zero_x += inputs[ox + group_x[j]] == 0.0
        elif zero_code == 3:
            for j in range(size):
                wz = weights[ow + group_w[j]] == 0.0
                xz = inputs[ox + group_x[j]] == 0.0
                zero_w += wz
                zero_x += xz
                zero_both += wz & xz
        l = start - 1
        while l >= 0:
            idx[l] += 1
            if idx[l] < bound[l]:
                ow += step_w[l]
                ox += step_x[l]
                oy += dy[l]
                inst += pe_weight[l]
                if not pe_active[inst]:
                    continue  # an idle PE: advance this loop again (or carry)
                break
            idx[l] = 0
            ow -= np.uint64(bound[l] - 1) * step_w[l]
            ox -= np.uint64(bound[l] - 1) * step_x[l]
            oy -= (bound[l] - 1) * dy[l]
            inst -= (bound[l] - 1) * pe_weight[l]
            l -= 1
        if l < 0:
            break
    zeros[0] += zero_w
    zeros[1] += zero_x
    zeros[2] += zero_both


DELTA_CACHE_SLOTS = 64  # a power of two


@njit(cache=True)
def _new_elements(rel_all, r0, nrel, mem_all, m0, nmem, shift):
    """Elements of a tile (offsets ``rel_all[r0:r0 + nrel]``) not in the same tile ``shift`` elements
    earlier (membership ``mem_all[m0:m0 + nmem]``)."""
    delta = 0
    for e in range(nrel):
        diff = rel_all[r0 + e] + shift
        if not (diff >= 0 and diff < nmem and mem_all[m0 + diff]):
            delta += 1
    return delta


@njit(cache=True)
def _stamp_new_elements(rel_all, r0, nrel, mem_all, m0, nmem, origin, old, full, stamp_all, stamp_base, step):
    """A new tile at ``origin`` (previous tile at ``old``; ``full``: nothing resident) of a level
    whose instances share their parent's reads within a step: (elements loaded, elements not yet
    stamped with ``step``, which are stamped now)."""
    delta = 0
    fresh = 0
    for e in range(nrel):
        flat = origin + rel_all[r0 + e]
        if not full:
            diff = flat - old
            if diff >= 0 and diff < nmem and mem_all[m0 + diff]:
                continue
        delta += 1
        s = stamp_base + flat
        if stamp_all[s] != step:
            stamp_all[s] = step
            fresh += 1
    return delta, fresh


@njit(cache=True)
def _charge_step(nlev, parent, kind_of, shared, fanout, cost, words, ev, acc, used, lb, to, last, evented,
                 pas, parent_reads, dram_bits, comp, value_bits, snap):
    """Turn the step's transfer words per (level, data type) into cycles on each resource, grouped
    by (parent level, transfer kind). ``words[i, d]``: fills, parent reads (bus words; at the
    parent's port, compressed where DRAM compresses), drains of all instances, drains after
    reduction (bus words; at the parent's port), drains reduced away over local links."""
    for i in range(1, nlev):
        for d in range(3):
            if not ev[i, d]:
                continue
            ev[i, d] = False
            p = parent[i, d]
            kind = kind_of[i, d]
            used[p, kind] = True
            to[p, kind, i] = True
            evented[i] = True
            if last[i] > lb[p, kind]:
                lb[p, kind] = last[i]
            w = words[i, d]
            if d != OUTPUTS:  # the step's share of the running counters
                w[0] = pas[i, d] - snap[i, d, 0]
                w[1] = parent_reads[p, d] - snap[i, d, 1]
                w[2] = w[1]
                if p == 0 and comp[d] > 0:  # DRAM moves compressed chunks
                    w[2] = (dram_bits[d, 0, 0] - snap[i, d, 2]) / value_bits[d]
                snap[i, d, 0] = pas[i, d]
                snap[i, d, 1] = parent_reads[p, d]
                snap[i, d, 2] = dram_bits[d, 0, 0]
            wi = i if shared[i] else nlev + i
            acc[p, kind, wi] += w[0] * cost[wi]
            acc[p, kind, p] += w[2] * cost[p]
            wp = p if shared[p] else nlev + p
            acc[p, kind, i] += w[3] * cost[i]
            acc[p, kind, wp] += w[5] * cost[wp]
            for f in range(p + 1, i + 1):
                if fanout[f]:
                    b = 2 * nlev + 3 * f + d
                    acc[p, kind, b] += w[1] * cost[b]
                    acc[p, kind, 5 * nlev + f] += w[4] * cost[5 * nlev + f]
                    acc[p, kind, 6 * nlev + f] += w[6] * cost[6 * nlev + f]
            for k in range(7):
                w[k] = 0.0


@njit(cache=True)
def _close_step(nlev, compute_cycles, pass_start, acc, used, lb, to, busy, ready, ready_cause, last,
                evented, cause_of, out):
    """Schedule one step (``sim.timing``): its transfers, parent levels outermost first, then its
    compute. ``out[0]`` is the end of the previous compute on entry and of this step's on return;
    a wait of the compute is added to ``out[1 + cause]``."""
    n_res = acc.shape[2]
    prev = out[0]
    start = prev
    bind_t0 = prev
    bind_origin = -1
    bind_cause = -1
    for p in range(nlev):
        for kind in range(3):
            if not used[p, kind]:
                continue
            t0 = ready[p]
            origin = ready_cause[p]
            if kind == 1 or (kind == 2 and pass_start[0]):
                if prev >= t0:
                    t0 = prev
                    origin = -1
            elif lb[p, kind] >= t0:
                t0 = lb[p, kind]
                origin = -1
            x = 0.0
            arg = -1
            for r in range(n_res):
                w = acc[p, kind, r]
                if w > 0.0:
                    if busy[r] > t0:
                        t0 = busy[r]
                        origin = cause_of[r]
                    if w > x:
                        x = w
                        arg = r
            end = t0 + x
            c = origin if arg < 0 else cause_of[arg]
            for r in range(n_res):
                if acc[p, kind, r] > 0.0:
                    busy[r] = end
                    acc[p, kind, r] = 0.0
            for i in range(nlev):
                if to[p, kind, i]:
                    to[p, kind, i] = False
                    if end >= ready[i]:
                        ready[i] = end
                        ready_cause[i] = c
            if end > start:
                start = end
                bind_t0 = t0
                bind_origin = origin
                bind_cause = c
            used[p, kind] = False
            lb[p, kind] = 0.0
    if start > prev:
        waited = bind_t0 - prev if bind_t0 > prev else 0.0
        if waited > 0.0:
            out[1 + (bind_origin if bind_origin >= 0 else max(bind_cause, 0))] += waited
        out[1 + max(bind_cause, 0)] += start - prev - waited
    for i in range(nlev):
        if evented[i]:
            last[i] = prev
            evented[i] = False
    out[0] = start + compute_cycles
    out[4] += compute_cycles
    out[5] += 1


@njit(cache=True)
def run_nest(
    bound, dw, dx, dy, is_spatial, level_of_loop, level_start, nlev, keeps, parent, counting,
    innermost_above, temporal_above, inst_weight, overlap, step_inc, event_needed,
    rel_all, rel_start, rel_len, mem_all, mem_start, mem_len,
    initialized, prev_origin, last_visit, adv_serial, seen_bits, seen_base, seen_words,
    rep, noc_rep, stamp_all, stamp_start, step_id,
    block_start, block_w, block_x, block_y,
    weights, inputs, outputs,
    pas, ps, reloads, parent_reads, arrivals, noc, scalars,
    skip_code, sync_start, step_weight, step_max,
    comp, value_bits, pairs_per_word, access_bits, dram_bits, dram_vec, out_events,
    t_cost, t_kind, t_pass, t_shared, t_fanout, t_step_start, t_acc, t_used, t_lb, t_to, t_busy,
    t_ready, t_ready_cause, t_last, t_evented, t_cause_of, t_out, t_has_values, t_values, t_words, t_ev,
    t_pending, t_snap, pe_active, pe_weight, mac_min_start,
):
    """Execute the loop nest MAC by MAC on real tensors, and count tile traffic at every level.

    ``pe_active[inst]``: whether the innermost level's instance ``inst`` is utilised; the odometer
    steps over idle ones (a spatial remainder: ``sim.mapping``), which hold nothing and do no work.
    ``pe_weight``: that instance's weight of each loop (0 for temporal loops); ``mac_min_start``:
    the first loop the MAC pass may fold into a block (after the spatial loops when a PE is idle).

    scalars (out): [macs, macs_with_a_zero_operand, temporal_steps, macs_zero_weight,
    macs_zero_input, macs_zero_both, cycles_with_skipping, output_events_recorded].

    Skipping (``skip_code`` > 0): the PEs advance in lockstep. A step is one iteration of the
    temporal loops above loop ``sync_start`` (the first loop inside the PE array); within it each PE
    runs the MACs of its tile that are not skipped, and the step lasts as long as the busiest PE:
    ``step_max[step]`` is that maximum (``step_weight``: mixed-radix weight of each temporal loop
    above ``sync_start`` in the step index, 0 for the others).

    Compression (``comp[d]`` > 0): every chunk moved from DRAM (level 0) to its child is encoded as
    the elements stream in (memory order); ``dram_bits[d, 0, :]`` gets its compressed and
    uncompressed bits, ``dram_vec[d, 0]`` its vector accesses of ``access_bits[d]`` bits. Output
    chunks need the final values, so their events are recorded in ``out_events`` for
    ``encode_output_chunks``.

    Timing (``sim.timing``): every tile event charges its transfer words (times ``t_cost``, core
    cycles per word of each resource) to the current step, grouped by parent level and transfer
    kind (``t_kind``); at the end of each step (loops above ``t_step_start``) ``_close_step``
    schedules the step's transfers and compute. ``t_out``: [end of the last compute, stall cycles
    by cause (DRAM, buffer, NoC), compute cycles, steps].
    """
    n_loops = bound.shape[0]
    idx = np.zeros(n_loops, np.int64)
    # typed int64 from the start: a literal 0 would give the helpers called with them a second,
    # literal-typed compiled signature
    ow = np.int64(0)
    ox = np.int64(0)
    oy = np.int64(0)
    macs = 0
    steps = 0
    step_idx = 0
    pe_run = 0  # MACs not skipped of the current (step, PE) pair; its MACs are contiguous
    prev_skipped = 0
    n_out_events = 0
    spatial_nonzero = 0  # spatial loops not at index 0; a temporal step is counted at PE 0
    # new elements of a tile moved by a shift, per (level, data type) and shift slot
    delta_known = np.zeros((nlev, 3, DELTA_CACHE_SLOTS), np.bool_)
    delta_shift = np.zeros((nlev, 3, DELTA_CACHE_SLOTS), np.int64)
    delta_value = np.zeros((nlev, 3, DELTA_CACHE_SLOTS), np.int64)
    inst_of_level = np.zeros(nlev, np.int64)  # current instance of each level, kept incrementally
    serial = 1
    advanced = -1  # loop that advanced last; -1: the start, where every level loads
    # The innermost loops (from block_start on: inside every level's tile, no spatial loop) run as
    # one flat block over precomputed offsets; the odometer walks only the loops above them.
    block = block_w.shape[0]
    # The MACs' values depend on nothing the tile events do: they run apart. Their zero operands are
    # counted there too, unless skipping needs them per step: then in the walk below.
    w_zero = _has_zero(weights)
    x_zero = _has_zero(inputs)
    zeros_in_walk = (w_zero or x_zero) and skip_code > 0
    zeros = np.zeros(3, np.int64)
    _nest_macs(bound, dw, dx, dy, weights, inputs, outputs, 0 if zeros_in_walk else w_zero + 2 * x_zero, zeros,
               pe_active, pe_weight, mac_min_start)
    zero_w = zeros[0]
    zero_x = zeros[1]
    zero_both = zeros[2]
    t_run = 0  # MACs taking a cycle in the current (step, PE) pair
    t_pair_max = 0  # the step's busiest PE so far
    # a one-element array, not a bool variable: numba types a constant argument as a literal on the
    # first compile, which would give _close_step a second signature
    pass_start = np.zeros(1, np.bool_)
    outputs_only_outermost = True
    for i in range(1, nlev):
        if keeps[i, OUTPUTS]:
            outputs_only_outermost = False
    while True:
        # --- tile events for every level inside the loop that advanced ---------------------------
        for i in range(nlev - 1, 0, -1):
            if level_start[i] <= advanced:
                break
            if not event_needed[i, advanced + 1]:
                continue
            inst = inst_of_level[i]
            # the loop that moved this instance's tile: the outermost temporal loop above the level
            # that advanced since the instance's previous event (only Timeloop's rule needs it)
            k_adv = -1
            if counting == 0:
                since = last_visit[i, inst]
                for l in range(level_start[i]):
                    if temporal_above[i, l] and adv_serial[l] > since:
                        k_adv = l
                        break
                last_visit[i, inst] = serial
            for d in range(3):
                if not keeps[i, d]:
                    continue
                if advanced >= 0 and overlap[i] and step_inc[i, d, advanced]:
                    step_id[i, d] += 1
                origin = ow if d == WEIGHTS else (ox if d == INPUTS else oy)
                # A new tile of data type d at this instance of level i: count what must come in.
                first = not initialized[i, d, inst]
                full = first
                if not first:
                    if prev_origin[i, d, inst] == origin:
                        continue  # the tile did not move: nothing to fetch
                    if counting == 0 and k_adv != innermost_above[i]:
                        full = True
                initialized[i, d, inst] = True
                old = prev_origin[i, d, inst]
                prev_origin[i, d, inst] = origin
                r0 = rel_start[i, d]
                nrel = rel_len[i, d]
                m0 = mem_start[i, d]
                nmem = mem_len[i, d]
                p = parent[i, d]
                delta = 0
                reload = 0
                fresh_for_parent = 0
                encode = p == 0 and comp[d] > 0 and d != OUTPUTS and (overlap[i] or rep[i, d, inst])
                ch_n = 0
                ch_nz = 0
                ch_run = 0
                ch_pairs = 0
                t_encode_out = t_has_values and p == 0 and d == OUTPUTS and comp[d] > 0 and rep[i, d, inst]
                tw_n = tw_nz = tw_run = tw_pairs = 0
                tr_n = tr_nz = tr_run = tr_pairs = 0
                if p == 0 and d == OUTPUTS and comp[d] > 0 and rep[i, d, inst]:
                    out_events[n_out_events, 0] = i
                    out_events[n_out_events, 1] = origin
                    out_events[n_out_events, 2] = old
                    out_events[n_out_events, 3] = 1 if full else 0
                    n_out_events += 1
                # The outermost level never loads outputs; it meets each element when a drain first brings it.
                to_outermost = d == OUTPUTS and p == 0 and rep[i, d, inst]
                fast = d != OUTPUTS and not encode and not (overlap[i] and p >= 0)
                if fast:
                    # only the count of new elements, a function of the tile's shift alone: cached
                    if full:
                        delta = nrel
                    else:
                        shift = origin - old
                        slot = shift & (DELTA_CACHE_SLOTS - 1)
                        if delta_known[i, d, slot] and delta_shift[i, d, slot] == shift:
                            delta = delta_value[i, d, slot]
                        else:
                            delta = _new_elements(rel_all, r0, nrel, mem_all, m0, nmem, shift)
                            delta_known[i, d, slot] = True
                            delta_shift[i, d, slot] = shift
                            delta_value[i, d, slot] = delta
                stamped = d != OUTPUTS and not encode and overlap[i] and p >= 0
                if stamped:  # the loads, and the elements no other instance loaded in this step
                    sid = step_id[i, d]
                    s0 = stamp_start[i, d] + origin
                    for e in range(nrel):
                        rel = rel_all[np.uint64(r0 + e)]
                        if not full:
                            diff = rel + origin - old
                            if diff >= 0 and diff < nmem and mem_all[np.uint64(m0 + diff)]:
                                continue  # already resident from the previous tile
                        delta += 1
                        if stamp_all[np.uint64(s0 + rel)] != sid:
                            stamp_all[np.uint64(s0 + rel)] = sid
                            fresh_for_parent += 1
                plain_out = d == OUTPUTS and not t_encode_out and not to_outermost
                if plain_out:  # the loads, and the elements this instance held before (reloads)
                    b0 = seen_base[i] + inst * seen_words
                    for e in range(nrel):
                        flat = origin + rel_all[np.uint64(r0 + e)]
                        if not full:
                            diff = flat - old
                            if diff >= 0 and diff < nmem and mem_all[np.uint64(m0 + diff)]:
                                continue  # already resident from the previous tile
                        delta += 1
                        reload += _bit_test_and_set(seen_bits, b0, flat)
                for e in range(0 if fast or stamped or plain_out else nrel):
                    flat = origin + rel_all[r0 + e]
                    if not full:
                        diff = flat - old
                        if diff >= 0 and diff < nmem and mem_all[m0 + diff]:
                            continue  # already resident from the previous tile
                    delta += 1
                    if d == OUTPUTS:
                        again = _bit_test_and_set(seen_bits, seen_base[i] + inst * seen_words, flat)
                        if again:
                            reload += 1
                        if t_encode_out:  # the chunk's compressed size, for the DRAM bus time
                            zero = t_values[flat] == 0.0
                            tw_n += 1
                            if zero:
                                tw_run += 1
                            else:
                                tw_pairs += tw_run // 32 + 1
                                tw_run = 0
                                tw_nz += 1
                            if again:
                                tr_n += 1
                                if zero:
                                    tr_run += 1
                                else:
                                    tr_pairs += tr_run // 32 + 1
                                    tr_run = 0
                                    tr_nz += 1
                        if to_outermost and not _bit_test_and_set(seen_bits, seen_base[0], flat):
                            ps[0, d] += 1
                    else:
                        fresh = True
                        if overlap[i] and p >= 0:
                            s = stamp_start[i, d] + flat
                            fresh = stamp_all[s] != step_id[i, d]
                            if fresh:
                                stamp_all[s] = step_id[i, d]
                                fresh_for_parent += 1
                        if encode and fresh:
                            ch_n += 1
                            if (weights[flat] if d == WEIGHTS else inputs[flat]) == 0.0:
                                ch_run += 1
                            else:
                                ch_pairs += ch_run // 32 + 1
                                ch_run = 0
                                ch_nz += 1
                if ch_n > 0:
                    bits = _chunk_bits(comp[d], ch_n, ch_nz, ch_run, ch_pairs, value_bits[d], pairs_per_word[d])
                    dram_bits[d, 0, 0] += bits
                    dram_bits[d, 0, 1] += ch_n * value_bits[d]
                    dram_vec[d, 0] += (bits + access_bits[d] - 1) // access_bits[d]
                if t_kind[i, d] >= 0:  # timing: the words of this transfer, scheduled at the step's end
                    if t_pass[i, d]:
                        pass_start[0] = True
                    t_ev[i, d] = True
                    if d == OUTPUTS:
                        is_rep = rep[i, d, inst]
                        t_words[i, d, 0] += reload
                        if is_rep:
                            t_words[i, d, 1] += reload
                            if t_encode_out:  # DRAM moves compressed chunks
                                if tr_n > 0:
                                    t_words[i, d, 2] += _chunk_bits(comp[d], tr_n, tr_nz, tr_run, tr_pairs,
                                                                    value_bits[d], pairs_per_word[d]) / value_bits[d]
                            else:
                                t_words[i, d, 2] += reload
                        if not first:  # the old tile's partial sums go back
                            t_words[i, d, 3] += delta
                            if is_rep:
                                t_words[i, d, 4] += delta
                                if t_encode_out:  # the old tile's compressed chunk
                                    t_words[i, d, 5] += t_pending[i, inst]
                                else:
                                    t_words[i, d, 5] += delta
                            else:
                                t_words[i, d, 6] += delta
                        if t_encode_out:  # output tiles are disjoint boxes: the new tile is one chunk
                            t_pending[i, inst] = _chunk_bits(comp[d], tw_n, tw_nz, tw_run, tw_pairs, value_bits[d],
                                                             pairs_per_word[d]) / value_bits[d] if tw_n > 0 else 0.0
                    # weights and inputs: _charge_step reads the step's words off pas, parent_reads
                    # and dram_bits
                pas[i, d] += delta
                if d == OUTPUTS:
                    ps[i, d] += delta - reload
                    reloads[i, d] += reload
                    if p >= 0 and rep[i, d, inst]:
                        arrivals[p, d] += delta
                    for f in range(p + 1, i + 1):
                        if noc_rep[f, i, d, inst]:
                            noc[f, d, 0] += reload
                            noc[f, d, 1] += delta
                else:
                    if p >= 0:
                        if overlap[i]:
                            parent_reads[p, d] += fresh_for_parent
                        elif rep[i, d, inst]:
                            parent_reads[p, d] += delta
                    for f in range(p + 1, i + 1):
                        if noc_rep[f, i, d, inst]:
                            noc[f, d, 0] += delta

        # --- the innermost block's MACs with a zero operand (their values: _nest_macs) ------------
        if zeros_in_walk:
            for j in range(block):
                wz = weights[ow + block_w[j]] == 0.0
                xz = inputs[ox + block_x[j]] == 0.0
                zero_w += wz
                zero_x += xz
                zero_both += wz & xz
        if outputs_only_outermost:  # no inner level holds outputs: MACs update the outermost directly
            for j in range(block):
                if not _bit_test_and_set(seen_bits, seen_base[0], oy + block_y[j]):
                    ps[0, OUTPUTS] += 1
        macs += block
        if spatial_nonzero == 0:
            steps += block
        if skip_code > 0:
            skipped = 0
            if skip_code & 1:
                skipped += zero_w
            if skip_code & 2:
                skipped += zero_x
            if skip_code == 3:
                skipped -= zero_both
            run_inc = block - (skipped - prev_skipped)
            pe_run += run_inc
            t_run += run_inc
            prev_skipped = skipped
        else:
            t_run += block
        step_before = step_idx
        # --- odometer -----------------------------------------------------------------------------
        l = block_start - 1
        while l >= 0:
            idx[l] += 1
            if idx[l] < bound[l]:
                ow += dw[l]
                ox += dx[l]
                oy += dy[l]
                step_idx += step_weight[l]
                if is_spatial[l]:
                    if idx[l] == 1:
                        spatial_nonzero += 1
                    for i in range(nlev):
                        inst_of_level[i] += inst_weight[i, l]
                    if not pe_active[inst_of_level[nlev - 1]]:
                        continue  # an idle PE: advance this loop again (or carry)
                break
            idx[l] = 0
            ow -= (bound[l] - 1) * dw[l]
            ox -= (bound[l] - 1) * dx[l]
            oy -= (bound[l] - 1) * dy[l]
            step_idx -= (bound[l] - 1) * step_weight[l]
            if is_spatial[l] and bound[l] > 1:
                spatial_nonzero -= 1
                for i in range(nlev):
                    inst_of_level[i] -= (bound[l] - 1) * inst_weight[i, l]
            l -= 1
        if skip_code > 0 and l < sync_start:  # a new (step, PE) pair starts, or the nest ends
            if pe_run > step_max[step_before]:
                step_max[step_before] = pe_run
            pe_run = 0
        if l < t_step_start:  # the (step, PE) pair ends; a temporal loop above: the step ends
            if t_run > t_pair_max:
                t_pair_max = t_run
            t_run = 0
            if l < 0 or not is_spatial[l]:
                _charge_step(nlev, parent, t_kind, t_shared, t_fanout, t_cost, t_words, t_ev, t_acc, t_used,
                             t_lb, t_to, t_last, t_evented, pas, parent_reads, dram_bits, comp, value_bits, t_snap)
                _close_step(nlev, t_pair_max, pass_start, t_acc, t_used, t_lb, t_to, t_busy, t_ready,
                            t_ready_cause, t_last, t_evented, t_cause_of, t_out)
                t_pair_max = 0
                pass_start[0] = False
        if l < 0:
            break
        serial += 1
        adv_serial[l] = serial
        advanced = l
    scalars[0] = macs
    scalars[1] = zero_w + zero_x - zero_both
    scalars[2] = steps
    scalars[3] = zero_w
    scalars[4] = zero_x
    scalars[5] = zero_both
    cycles = 0
    for k in range(step_max.shape[0]):
        cycles += step_max[k]
    scalars[6] = cycles
    scalars[7] = n_out_events
