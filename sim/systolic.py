"""Systolic-array mode: convolutions as GEMMs on a rows x cols array, SCALE-Sim's timing model.

A convolution becomes a GEMM (SCALE-Sim v3's view): output pixels ``Np = E_h * E_w``, window
``Nw = R * S * C`` and filters ``M``. The dataflow places two of them on the array and runs the
third in time:

=========  =================  ================  ==============  ===========================
dataflow   array rows         array columns     time (T)        stationary in the PEs
=========  =================  ================  ==============  ===========================
``os``     Np (ifmap, left)   M (filter, top)   Nw              outputs
``ws``     Nw (ifmap, left)   M (outputs)       Np              filter (preloaded from top)
``is``     Nw (filter, left)  Np (outputs)      M               ifmap (preloaded from top)
=========  =================  ================  ==============  ===========================

The work splits into folds of at most rows x cols; SCALE-Sim runs them column fold by column fold,
row folds inside, each fold filling and draining the pipeline. :func:`simulate_gemm` executes every
distinct fold shape cycle by cycle in ``sim.systolic_kernels`` (a layer has at most four: full or
partial in rows and in columns) and multiplies by how often it occurs; ``trace=True`` executes
every fold in order and returns per-cycle counts. :func:`fold_arithmetic` is the closed form of the
same schedule (cycles per fold ``T + rows + cols - 2`` for OS, ``2 rows + cols + T - 2`` for WS
and IS), kept apart as the oracle the tests hold the kernel to.

Reporting follows SCALE-Sim: ``cycles_total`` is the number of the cycle of the last demand when the
first is cycle 0 (the schedule length minus one, SCALE-Sim's "Total Cycles" without DRAM stalls).
SRAM counts are accesses at the array edges (one word each). SCALE-Sim's reported OS ofmap writes
add ``rows + cols`` per fold to the outputs actually written (it adds the padded fold's shape to its
count); ``scalesim_ofmap_sram_writes`` reproduces that figure beside the true count.
"""
from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np

from sim import systolic_kernels as kernels
from sim.errors import ConfigError
from sim.topology import TopologyLayer

DATAFLOWS = ("os", "ws", "is")


@dataclass(frozen=True, kw_only=True)
class Gemm:
    """A layer as SCALE-Sim's GEMM: ``pixels`` x ``window`` ifmap times ``window`` x ``filters``."""

    pixels: int    # Np: output pixels per filter (E_h * E_w, times the batch)
    window: int    # Nw: MACs per output (R * S * C)
    filters: int   # M
    groups: int = 1  # independent GEMMs run one after another (grouped convolutions)

    @property
    def macs(self) -> int:
        return self.groups * self.pixels * self.window * self.filters


@dataclass(frozen=True, kw_only=True)
class Placement:
    """Which GEMM dimension goes where for one dataflow."""

    spatial_rows: int   # Sr
    spatial_cols: int   # Sc
    temporal: int       # T
    kind: int           # kernels.STREAM_BOTH or kernels.PRELOAD


def placement(gemm: Gemm, dataflow: str) -> Placement:
    if dataflow == "os":
        return Placement(spatial_rows=gemm.pixels, spatial_cols=gemm.filters, temporal=gemm.window,
                         kind=kernels.STREAM_BOTH)
    if dataflow == "ws":
        return Placement(spatial_rows=gemm.window, spatial_cols=gemm.filters, temporal=gemm.pixels,
                         kind=kernels.PRELOAD)
    if dataflow == "is":
        return Placement(spatial_rows=gemm.window, spatial_cols=gemm.pixels, temporal=gemm.filters,
                         kind=kernels.PRELOAD)
    raise ConfigError(f"dataflow {dataflow!r}: must be one of {', '.join(DATAFLOWS)}",
                      field="array.dataflow", value=dataflow)


def gemm_of_topology_layer(layer: TopologyLayer) -> Gemm:
    return Gemm(pixels=layer.ofmap_height * layer.ofmap_width,
                window=layer.filter_height * layer.filter_width * layer.channels,
                filters=layer.filters)


def gemm_of_loop_dims(dims) -> Gemm:
    """A zoo layer's loop nest (``networks.LoopDims``) as a GEMM; the batch joins the pixels."""
    return Gemm(pixels=dims.N * dims.P * dims.Q, window=dims.R * dims.S * dims.C, filters=dims.M,
                groups=dims.G)


@dataclass(frozen=True, kw_only=True)
class FoldArithmetic:
    """Closed form of SCALE-Sim's schedule for one GEMM (all groups)."""

    row_folds: int
    col_folds: int
    folds: int
    cycles_per_fold: int
    schedule_cycles: int          # folds * cycles_per_fold (all groups)
    cycles_total: int             # SCALE-Sim's report: schedule_cycles - 1
    ifmap_sram_reads: int
    filter_sram_reads: int
    ofmap_sram_writes: int
    scalesim_ofmap_sram_writes: int
    macs: int
    mapping_efficiency: float     # mean over folds of used PEs / all PEs


def fold_arithmetic(gemm: Gemm, rows: int, cols: int, dataflow: str) -> FoldArithmetic:
    """SCALE-Sim v3's fold arithmetic in closed form (the oracle of the cycle-level kernel)."""
    place = placement(gemm, dataflow)
    row_folds = math.ceil(place.spatial_rows / rows)
    col_folds = math.ceil(place.spatial_cols / cols)
    folds = row_folds * col_folds
    if dataflow == "os":
        per_fold = place.temporal + rows + cols - 2
    else:
        per_fold = 2 * rows + cols + place.temporal - 2
    np_, nw, m = gemm.pixels, gemm.window, gemm.filters
    if dataflow == "os":
        ifmap, filters, ofmap = col_folds * np_ * nw, row_folds * nw * m, np_ * m
        scalesim_ofmap = ofmap + folds * (rows + cols)
    elif dataflow == "ws":
        ifmap, filters, ofmap = col_folds * np_ * nw, nw * m, row_folds * np_ * m
        scalesim_ofmap = ofmap
    else:
        ifmap, filters, ofmap = nw * np_, col_folds * nw * m, row_folds * np_ * m
        scalesim_ofmap = ofmap
    used = place.spatial_rows * place.spatial_cols  # summed over folds, used PEs = the whole GEMM
    g = gemm.groups
    return FoldArithmetic(
        row_folds=row_folds, col_folds=col_folds, folds=g * folds, cycles_per_fold=per_fold,
        schedule_cycles=g * folds * per_fold, cycles_total=g * folds * per_fold - 1,
        ifmap_sram_reads=g * ifmap, filter_sram_reads=g * filters, ofmap_sram_writes=g * ofmap,
        scalesim_ofmap_sram_writes=g * scalesim_ofmap, macs=gemm.macs,
        mapping_efficiency=used / (folds * rows * cols),
    )


def fold_shapes(spatial_rows: int, spatial_cols: int, rows: int, cols: int) -> list[tuple[int, int]]:
    """(rows used, columns used) of every fold in SCALE-Sim's order: column folds outside."""
    shapes = []
    for fc in range(math.ceil(spatial_cols / cols)):
        cols_used = min(cols, spatial_cols - fc * cols)
        for fr in range(math.ceil(spatial_rows / rows)):
            shapes.append((min(rows, spatial_rows - fr * rows), cols_used))
    return shapes


@dataclass(frozen=True, kw_only=True)
class SystolicResult:
    """Counts of one GEMM (all groups) executed on the array."""

    dataflow: str
    rows: int
    cols: int
    gemm: Gemm
    folds: int
    schedule_cycles: int
    ifmap_sram_reads: int
    filter_sram_reads: int
    ofmap_sram_writes: int
    scalesim_ofmap_sram_writes: int
    macs: int
    mapping_efficiency: float
    simulation_s: float
    trace: np.ndarray | None = None  # per cycle: cycle, ifmap reads, filter reads, ofmap writes, MACs

    @property
    def cycles_total(self) -> int:
        return self.schedule_cycles - 1

    @property
    def pe_utilization(self) -> float:
        return self.macs / (self.rows * self.cols * self.schedule_cycles)


TRACE_COLUMNS = ("cycle", "ifmap_sram_reads", "filter_sram_reads", "ofmap_sram_writes", "macs")


def simulate_gemm(gemm: Gemm, rows: int, cols: int, dataflow: str, *, trace: bool = False) -> SystolicResult:
    """Execute ``gemm`` on a ``rows x cols`` array with ``dataflow``, cycle by cycle.

    Without ``trace`` each distinct fold shape runs once and counts are multiplied by its
    occurrences (every fold of a shape has the same schedule). With ``trace`` every fold of one
    group runs in SCALE-Sim's order and the result carries per-cycle counts.
    """
    for name, value in (("rows", rows), ("cols", cols), ("pixels", gemm.pixels),
                        ("window", gemm.window), ("filters", gemm.filters), ("groups", gemm.groups)):
        if int(value) < 1:
            raise ValueError(f"{name} = {value}: must be >= 1")
    start = time.perf_counter()
    place = placement(gemm, dataflow)
    shapes = fold_shapes(place.spatial_rows, place.spatial_cols, rows, cols)
    if trace:
        listed = [(shape, 1) for shape in shapes]
    else:
        listed = sorted(Counter(shapes).items())
    rows_used = np.array([shape[0] for shape, _ in listed], np.int64)
    cols_used = np.array([shape[1] for shape, _ in listed], np.int64)
    repeats = np.array([count for _, count in listed], np.int64)
    totals = np.zeros(kernels.N_FOLD_FIELDS, np.int64)
    if trace:
        bound = place.temporal + 2 * rows + 2 * cols  # more than any fold's cycles; trimmed below
        trace_rows = np.zeros((len(shapes) * bound, kernels.N_TRACE_FIELDS), np.int64)
    else:
        trace_rows = np.zeros((0, kernels.N_TRACE_FIELDS), np.int64)
    kernels.simulate_folds(int(place.kind), int(rows), int(cols), int(place.temporal),
                           rows_used, cols_used, repeats, totals, trace_rows)
    if totals[kernels.STATUS] != 0:
        raise RuntimeError(f"systolic schedule error {int(totals[kernels.STATUS])} for {gemm} on "
                           f"{rows}x{cols} {dataflow} (see sim.systolic_kernels ERR_*)")
    left, top = int(totals[kernels.LEFT_READS]), int(totals[kernels.TOP_READS])
    # Which operand enters where: OS ifmap left / filter top; WS ifmap left / filter preloaded
    # from the top; IS filter left / ifmap preloaded from the top.
    ifmap, filters = (top, left) if dataflow == "is" else (left, top)
    writes = int(totals[kernels.WRITES])
    g = gemm.groups
    folds = len(shapes)
    if trace:
        trace_rows = trace_rows[: int(totals[kernels.FOLD_CYCLES])].copy()
        if dataflow == "is":
            trace_rows[:, [kernels.LEFT_READS, kernels.TOP_READS]] = \
                trace_rows[:, [kernels.TOP_READS, kernels.LEFT_READS]]
    used_pes = sum(r * c * n for (r, c), n in Counter(shapes).items())
    return SystolicResult(
        dataflow=dataflow, rows=rows, cols=cols, gemm=gemm, folds=g * folds,
        schedule_cycles=g * int(totals[kernels.FOLD_CYCLES]),
        ifmap_sram_reads=g * ifmap, filter_sram_reads=g * filters, ofmap_sram_writes=g * writes,
        scalesim_ofmap_sram_writes=g * (writes + (folds * (rows + cols) if dataflow == "os" else 0)),
        macs=g * int(totals[kernels.MACS]), mapping_efficiency=used_pes / (folds * rows * cols),
        simulation_s=time.perf_counter() - start, trace=trace_rows if trace else None,
    )


@dataclass(frozen=True, kw_only=True)
class SystolicLayer:
    """A layer to run on the array: its name, what it was, and its GEMM."""

    name: str
    kind: str   # "Conv2D" / "FullyConnected" (zoo, ONNX) or "topology_conv" (a SCALE-Sim row)
    gemm: Gemm


def topology_layers(layers) -> list[SystolicLayer]:
    return [SystolicLayer(name=layer.name, kind="topology_conv", gemm=gemm_of_topology_layer(layer))
            for layer in layers]


def network_layers(network, *, batch: int = 1) -> list[SystolicLayer]:
    """The MAC layers (conv and fully connected) of a ``networks.Network`` as GEMMs."""
    out = []
    for name in network.layer_names:
        dims = network.loop_dims(name, batch)
        if dims is not None:
            out.append(SystolicLayer(name=name, kind=network.layer(name).kind, gemm=gemm_of_loop_dims(dims)))
    return out


def layer_counts(layer: SystolicLayer, rows: int, cols: int, dataflow: str, *, method: str = "engine"):
    """``method="engine"``: :func:`simulate_gemm` (cycle by cycle); ``"model"``: the closed form."""
    if method == "engine":
        return simulate_gemm(layer.gemm, rows, cols, dataflow)
    if method == "model":
        start = time.perf_counter()
        closed = fold_arithmetic(layer.gemm, rows, cols, dataflow)
        return SystolicResult(
            dataflow=dataflow, rows=rows, cols=cols, gemm=layer.gemm, folds=closed.folds,
            schedule_cycles=closed.schedule_cycles, ifmap_sram_reads=closed.ifmap_sram_reads,
            filter_sram_reads=closed.filter_sram_reads, ofmap_sram_writes=closed.ofmap_sram_writes,
            scalesim_ofmap_sram_writes=closed.scalesim_ofmap_sram_writes, macs=closed.macs,
            mapping_efficiency=closed.mapping_efficiency, simulation_s=time.perf_counter() - start,
        )
    raise ValueError(f"method {method!r}: must be 'engine' or 'model'")
