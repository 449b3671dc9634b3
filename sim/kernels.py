"""Numba kernels of the counting engine. They take only arrays and plain numbers and write into
preallocated outputs; ``sim.engine`` validates inputs, builds the arrays and reads the results.

Data-type codes: 0 weights, 1 inputs, 2 outputs. Counting codes: 0 timeloop, 1 exact.
"""
from __future__ import annotations

import numpy as np
from numba import njit

WEIGHTS, INPUTS, OUTPUTS = 0, 1, 2


@njit(cache=True, inline="always")
def _bit_test_and_set(bits, base, flat):
    word = base + (flat >> 6)
    mask = np.uint64(1) << np.uint64(flat & 63)
    if bits[word] & mask:
        return True
    bits[word] |= mask
    return False


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
):
    """Execute the loop nest MAC by MAC on real tensors, and count tile traffic at every level.

    scalars (out): [macs, macs_with_a_zero_operand, temporal_steps].
    """
    n_loops = bound.shape[0]
    idx = np.zeros(n_loops, np.int64)
    ow = 0
    ox = 0
    oy = 0
    macs = 0
    zero_macs = 0
    steps = 0
    spatial_nonzero = 0  # spatial loops not at index 0; a temporal step is counted at PE 0
    inst_of_level = np.zeros(nlev, np.int64)  # current instance of each level, kept incrementally
    serial = 1
    advanced = -1  # loop that advanced last; -1: the start, where every level loads
    # The innermost loops (from block_start on: inside every level's tile, no spatial loop) run as
    # one flat block over precomputed offsets; the odometer walks only the loops above them.
    block = block_w.shape[0]
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
                # The outermost level never loads outputs; it meets each element when a drain first brings it.
                to_outermost = d == OUTPUTS and p == 0 and rep[i, d, inst]
                for e in range(nrel):
                    flat = origin + rel_all[r0 + e]
                    if not full:
                        diff = flat - old
                        if diff >= 0 and diff < nmem and mem_all[m0 + diff]:
                            continue  # already resident from the previous tile
                    delta += 1
                    if d == OUTPUTS:
                        if _bit_test_and_set(seen_bits, seen_base[i] + inst * seen_words, flat):
                            reload += 1
                        if to_outermost and not _bit_test_and_set(seen_bits, seen_base[0], flat):
                            ps[0, d] += 1
                    elif overlap[i] and p >= 0:
                        s = stamp_start[i, d] + flat
                        if stamp_all[s] != step_id[i, d]:
                            stamp_all[s] = step_id[i, d]
                            fresh_for_parent += 1
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

        # --- the MACs of the innermost block (the hot path) ---------------------------------------
        for j in range(block):
            wv = weights[ow + block_w[j]]
            xv = inputs[ox + block_x[j]]
            outputs[oy + block_y[j]] += wv * xv
            zero_macs += (wv == 0.0) | (xv == 0.0)
            if outputs_only_outermost and not _bit_test_and_set(seen_bits, seen_base[0], oy + block_y[j]):
                ps[0, OUTPUTS] += 1  # no inner level holds outputs: MACs update the outermost directly
        macs += block
        if spatial_nonzero == 0:
            steps += block
        # --- odometer -----------------------------------------------------------------------------
        l = block_start - 1
        while l >= 0:
            idx[l] += 1
            if idx[l] < bound[l]:
                ow += dw[l]
                ox += dx[l]
                oy += dy[l]
                if is_spatial[l]:
                    if idx[l] == 1:
                        spatial_nonzero += 1
                    for i in range(nlev):
                        inst_of_level[i] += inst_weight[i, l]
                break
            idx[l] = 0
            ow -= (bound[l] - 1) * dw[l]
            ox -= (bound[l] - 1) * dx[l]
            oy -= (bound[l] - 1) * dy[l]
            if is_spatial[l] and bound[l] > 1:
                spatial_nonzero -= 1
                for i in range(nlev):
                    inst_of_level[i] -= (bound[l] - 1) * inst_weight[i, l]
            l -= 1
        if l < 0:
            break
        serial += 1
        adv_serial[l] = serial
        advanced = l
    scalars[0] = macs
    scalars[1] = zero_macs
    scalars[2] = steps
