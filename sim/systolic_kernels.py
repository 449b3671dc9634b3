"""Numba kernels: a systolic array executing folds of a GEMM cycle by cycle.

The array has ``rows x cols`` PEs. Operand tokens move one PE per cycle through registers: tokens
entering at the left edge (one port per array row) move right, tokens entering at the top edge (one
port per column) move down. A token carries its step index along the temporal dimension; a PE
performs a MAC when the tokens meeting in it belong to the same step (checked: a mismatch is a
schedule error, returned as a status). Only the injection schedule at the edges is given; what
happens inside the array is executed.

Two kinds of fold (``sim.systolic`` maps OS, WS and IS onto them):

- ``STREAM_BOTH`` (output stationary): both operands stream, port ``i`` skewed by ``i`` cycles; a
  PE accumulates its output over ``temporal`` steps. Outputs are written in SCALE-Sim's slots:
  column ``c`` writes one output per cycle, bottom row first, from cycle ``temporal - 1 + c`` on.
- ``PRELOAD`` (weight or input stationary): first ``rows`` cycles load the stationary tile from the
  top edge, one array row per cycle, the bottom row first; then the streaming operand enters at
  the left edge (row ``r`` skewed by ``r``) while partial-sum tokens enter each column's top
  (column ``c`` skewed by ``c``), gather one MAC per PE on the way down and are written to SRAM
  when they reach the bottom row.

A fold's rows and columns beyond ``rows_used`` / ``cols_used`` carry empty tokens: they cost time
(the control runs the full array's skew, as in SCALE-Sim) but no access and no MAC. A fold ends
in the cycle after its last token leaves the array. Counts are per edge port access: each token
injected with data is one SRAM read, each written output one SRAM write.
"""
from __future__ import annotations

import numpy as np
from numba import njit

STREAM_BOTH = 0
PRELOAD = 1

# Columns of the per-fold results and of a trace row.
FOLD_CYCLES = 0
LEFT_READS = 1       # operand entering at the left edge
TOP_READS = 2        # operand entering at the top edge (streamed or preloaded)
WRITES = 3           # outputs written at the bottom edge
MACS = 4
STATUS = 5           # 0: consistent; otherwise a schedule error code (see _check)
N_FOLD_FIELDS = 6
N_TRACE_FIELDS = 5   # FOLD_CYCLES column holds the cycle number in a trace

ERR_STEP_MISMATCH = 1    # tokens of different steps met in a PE
ERR_WRONG_STATIONARY = 2  # a preloaded element ended in the wrong PE row
ERR_MAC_COUNT = 3        # a used PE did not perform exactly `temporal` MACs
ERR_WRITE_COUNT = 4      # not every output was written exactly once
ERR_TRACE_FULL = 5       # the trace array has fewer rows than the executed cycles


@njit(cache=True)
def _tally_cycle(out, trace, record, row, left_reads, top_reads, writes, macs):
    """Add one cycle's SRAM accesses and MACs to the fold's totals and, when recording, to trace
    row ``row``; False (and ERR_TRACE_FULL in ``out``) when the trace has no room for it."""
    out[LEFT_READS] += left_reads
    out[TOP_READS] += top_reads
    out[WRITES] += writes
    out[MACS] += macs
    if record:
        if row >= trace.shape[0]:
            out[STATUS] = ERR_TRACE_FULL
            return False
        trace[row, FOLD_CYCLES] = row
        trace[row, LEFT_READS] = left_reads
        trace[row, TOP_READS] = top_reads
        trace[row, WRITES] = writes
        trace[row, MACS] = macs
    return True


@njit(cache=True)
def _fold_stream_both(rows, cols, temporal, rows_used, cols_used, out, trace, trace_start):
    left = np.full((rows, cols), -1, np.int64)
    top = np.full((rows, cols), -1, np.int64)
    macs_per_pe = np.zeros((rows, cols), np.int64)
    written = np.zeros((rows, cols), np.int64)
    record = trace.shape[0] > 0
    status = 0
    t = 0
    while True:
        # Tokens advance one PE; new tokens enter at the edges with the skew of their port.
        for r in range(rows):
            for c in range(cols - 1, 0, -1):
                left[r, c] = left[r, c - 1]
            step = t - r
            left[r, 0] = step if 0 <= step < temporal else -1
        for r in range(rows - 1, 0, -1):  # row by row: contiguous in memory
            for c in range(cols):
                top[r, c] = top[r - 1, c]
        for c in range(cols):
            step = t - c
            top[0, c] = step if 0 <= step < temporal else -1
        in_flight = 0
        left_reads = 0
        top_reads = 0
        for r in range(rows_used):
            if left[r, 0] >= 0:
                left_reads += 1
        for c in range(cols_used):
            if top[0, c] >= 0:
                top_reads += 1
        macs = 0
        for r in range(rows):
            for c in range(cols):
                a = left[r, c]
                b = top[r, c]
                if a >= 0 or b >= 0:
                    in_flight += 1
                if a >= 0 and b >= 0:
                    if a != b:
                        status = ERR_STEP_MISMATCH
                    if r < rows_used and c < cols_used:
                        macs_per_pe[r, c] += 1
                        macs += 1
        if in_flight == 0 and t >= temporal:
            break
        # SCALE-Sim's write slots: column c writes row rows-1-j in cycle temporal-1+j+c.
        writes = 0
        for c in range(cols_used):
            j = t - (temporal - 1) - c
            if 0 <= j < rows:
                r = rows - 1 - j
                if r < rows_used:
                    written[r, c] += 1
                    writes += 1
        if not _tally_cycle(out, trace, record, trace_start + t, left_reads, top_reads, writes, macs):
            return
        t += 1
    out[FOLD_CYCLES] = t
    for r in range(rows_used):
        for c in range(cols_used):
            if macs_per_pe[r, c] != temporal and status == 0:
                status = ERR_MAC_COUNT
            if written[r, c] != 1 and status == 0:
                status = ERR_WRITE_COUNT
    out[STATUS] = status


@njit(cache=True)
def _fold_preload(rows, cols, temporal, rows_used, cols_used, out, trace, trace_start):
    stationary = np.full((rows, cols), -1, np.int64)  # preloaded element's array row, -1: none
    left = np.full((rows, cols), -1, np.int64)        # streamed operand: step index
    psum = np.full((rows, cols), -1, np.int64)        # partial-sum token: step index
    macs_per_pe = np.zeros((rows, cols), np.int64)
    writes_per_column = np.zeros(cols, np.int64)
    record = trace.shape[0] > 0
    status = 0
    t = 0
    while True:
        left_reads = 0
        top_reads = 0
        macs = 0
        writes = 0
        in_flight = 0
        if t < rows:
            # Load phase: the tile shifts down one row per cycle, its last row entering first.
            for r in range(rows - 1, 0, -1):
                for c in range(cols):
                    stationary[r, c] = stationary[r - 1, c]
            for c in range(cols):
                element_row = rows - 1 - t
                stationary[0, c] = element_row if (element_row < rows_used and c < cols_used) else -1
                if stationary[0, c] >= 0:
                    top_reads += 1
            in_flight = 1
        else:
            if t == rows:
                for r in range(rows):
                    for c in range(cols):
                        if stationary[r, c] >= 0 and stationary[r, c] != r:
                            status = ERR_WRONG_STATIONARY
            phase_t = t - rows
            for r in range(rows):
                for c in range(cols - 1, 0, -1):
                    left[r, c] = left[r, c - 1]
                step = phase_t - r
                left[r, 0] = step if 0 <= step < temporal else -1
                if r < rows_used and left[r, 0] >= 0:
                    left_reads += 1
            for r in range(rows - 1, 0, -1):
                for c in range(cols):
                    psum[r, c] = psum[r - 1, c]
            for c in range(cols):
                step = phase_t - c
                psum[0, c] = step if 0 <= step < temporal else -1
            for r in range(rows):
                for c in range(cols):
                    a = left[r, c]
                    s = psum[r, c]
                    if a >= 0 or s >= 0:
                        in_flight += 1
                    if a >= 0 and s >= 0:
                        if a != s:
                            status = ERR_STEP_MISMATCH
                        if stationary[r, c] >= 0:
                            macs_per_pe[r, c] += 1
                            macs += 1
            for c in range(cols_used):
                if psum[rows - 1, c] >= 0:
                    writes_per_column[c] += 1
                    writes += 1
            if in_flight == 0 and phase_t >= temporal:
                break
        if not _tally_cycle(out, trace, record, trace_start + t, left_reads, top_reads, writes, macs):
            return
        t += 1
    out[FOLD_CYCLES] = t
    for r in range(rows_used):
        for c in range(cols_used):
            if macs_per_pe[r, c] != temporal and status == 0:
                status = ERR_MAC_COUNT
    for c in range(cols_used):
        if writes_per_column[c] != temporal and status == 0:
            status = ERR_WRITE_COUNT
    out[STATUS] = status


@njit(cache=True)
def simulate_folds(kind, rows, cols, temporal, fold_rows_used, fold_cols_used, fold_repeats,
                   totals, trace):
    """Run each listed fold shape once, cycle by cycle, and add ``repeats`` times its counts.

    ``totals`` (int64[N_FOLD_FIELDS]) receives the sums; its STATUS the first non-zero status.
    ``trace`` is either empty (shape (0, N_TRACE_FIELDS)) or has one row per cycle of all folds
    in list order (then every repeat must be 1); it gets the per-cycle counts.
    """
    out = np.zeros(N_FOLD_FIELDS, np.int64)
    trace_start = 0
    for i in range(fold_rows_used.shape[0]):
        out[:] = 0
        if kind == STREAM_BOTH:
            _fold_stream_both(rows, cols, temporal, fold_rows_used[i], fold_cols_used[i], out,
                              trace, trace_start)
        else:
            _fold_preload(rows, cols, temporal, fold_rows_used[i], fold_cols_used[i], out,
                          trace, trace_start)
        repeats = fold_repeats[i]
        for field in range(STATUS):
            totals[field] += repeats * out[field]
        if totals[STATUS] == 0:
            totals[STATUS] = out[STATUS]
        trace_start += out[FOLD_CYCLES]
