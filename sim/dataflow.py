"""The dataflows of the Eyeriss dataflow comparison (Chen, Emer, Sze, ISCA 2016) as constraints on
the mapping space, and the equal-area rule that makes their architectures comparable.

A dataflow says which dimensions may be spread over the PE array (per axis), which loops may run
inside a PE (at the per-PE levels, in a fixed order, outer to inner) and which dimensions must sit
entirely in one of those places. The mapper (``sim.mapper``) searches only mappings that obey it:

====  =====================================================================================
RS    row stationary (Eyeriss): filter rows R down the array (all of them: no strip-mining of
      R), a filter row's S taps inside the PE; PEs in a row share a filter row, ifmap rows
      move diagonally, psums add up a column. Y: R and up to two of M, C, P; X: up to two of
      P, M, C, N. In the PE: C, S, M (the chip's q channels, S taps, p filters).
WS    weight stationary: weights spread over the array (Y: C, R; X: M, S); in the PE only
      loops over N, P, Q, which never change the PE's weight: a weight loaded into a PE stays
      until its tile is done; inputs and psums move through the array and the buffer.
OSA   output stationary, one output channel, many pixels: Y: P, X: Q; in the PE C, R, S
      (the psum stays while its inputs stream).
OSB   output stationary, many channels and pixels: Y: M, X: Q and P; in the PE C, R, S.
OSC   output stationary, many channels, one pixel: Y: M, X: M; in the PE C, R, S.
NLR   no local reuse: no register file; Y: C, X: M (psums reduced across the array), nothing
      inside a PE, every operand comes from the global buffer.
IS    input stationary: inputs spread (Y: C, X: Q and P); in the PE only loops over M, which
      never change the PE's input.
====  =====================================================================================

Equal area (ISCA 2016, Sec. VI): every dataflow gets the storage area of RS, #PE x area(512 B RF)
+ area(#PE x 512 B buffer); the non-RS dataflows re-split it between the PE's register file and
the buffer. :func:`equal_area_architecture` builds such an architecture from a base (the
``eyeriss_isca16`` preset's levels and energies). Assumptions, ours, not the paper's figures:
a register-file byte takes ``RF_AREA_PER_SRAM_BYTE`` = 2 times the area of a buffer byte (small
register files are less dense than large SRAMs); the register file of a non-RS dataflow keeps only
the data its name says stays in the PE (WS weights, OS* partial sums, IS inputs) in
``STATIONARY_RF_WORDS`` = 16 words per PE, and NLR has none; the area left goes to the buffer.
The energies per access and the NoC (its multicast) stay those of the base (the paper also keeps
Table IV's costs for every dataflow).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from sim.arch import DATA_TYPES, DATAFLOWS as DATAFLOW_NAMES, Architecture
from sim.errors import UsageError

RF_AREA_PER_SRAM_BYTE = 2.0
RS_RF_BYTES = 512
STATIONARY_RF_WORDS = 16


@dataclass(frozen=True)
class Dataflow:
    name: str
    description: str
    spatial_y: tuple[str, ...]  # dims that may be spatial on Y (the PE array's rows)
    spatial_x: tuple[str, ...]
    max_spatial_dims: int  # per axis, besides the forced ones
    pe_loops: tuple[str, ...]  # temporal loops allowed inside a PE, outer to inner
    forced_spatial_y: tuple[str, ...] = ()  # dims entirely spatial on Y
    forced_pe: tuple[str, ...] = ()  # dims entirely inside a PE
    rf_keeps: tuple[str, ...] = DATA_TYPES  # what the PE's register file keeps (equal-area variant)

    @property
    def inner_only(self) -> frozenset[str]:
        return frozenset(self.forced_spatial_y) | frozenset(self.forced_pe)


DATAFLOWS: dict[str, Dataflow] = {
    "RS": Dataflow("RS", "row stationary (Eyeriss)", spatial_y=("M", "C", "P"), spatial_x=("P", "M", "C", "N"),
                   max_spatial_dims=2, pe_loops=("C", "S", "M"), forced_spatial_y=("R",), forced_pe=("S",)),
    "WS": Dataflow("WS", "weight stationary", spatial_y=("C", "R"), spatial_x=("M", "S"), max_spatial_dims=2,
                   pe_loops=("N", "P", "Q"), rf_keeps=("weights",)),
    "OSA": Dataflow("OSA", "output stationary, single output channel, multiple output pixels",
                    spatial_y=("P",), spatial_x=("Q",), max_spatial_dims=1, pe_loops=("C", "R", "S"),
                    rf_keeps=("outputs",)),
    "OSB": Dataflow("OSB", "output stationary, multiple output channels and pixels", spatial_y=("M",),
                    spatial_x=("Q", "P"), max_spatial_dims=2, pe_loops=("C", "R", "S"), rf_keeps=("outputs",)),
    "OSC": Dataflow("OSC", "output stationary, multiple output channels, single output pixel",
                    spatial_y=("M",), spatial_x=("M",), max_spatial_dims=1, pe_loops=("C", "R", "S"),
                    rf_keeps=("outputs",)),
    "NLR": Dataflow("NLR", "no local reuse (no register file)", spatial_y=("C",), spatial_x=("M",),
                    max_spatial_dims=1, pe_loops=(), rf_keeps=()),
    "IS": Dataflow("IS", "input stationary", spatial_y=("C",), spatial_x=("Q", "P"), max_spatial_dims=2,
                   pe_loops=("M",), rf_keeps=("inputs",)),
}
NAMES = tuple(DATAFLOWS)
assert NAMES == DATAFLOW_NAMES, "sim.arch.DATAFLOWS lists the dataflows defined here"


def get_dataflow(name: str) -> Dataflow:
    try:
        return DATAFLOWS[name]
    except KeyError:
        raise UsageError(f"dataflow {name!r} is not one of {', '.join(NAMES)}") from None


def array_shape(pes: int) -> tuple[int, int]:
    """(X, Y) of a square-ish array of ``pes`` PEs (a power of 4 is square, otherwise X = 2 Y)."""
    y = 2 ** (int(math.log2(pes)) // 2)
    if pes % y:
        raise UsageError(f"{pes} PEs: use a power of two")
    return pes // y, y


def equal_area_architecture(base: Architecture, dataflow: str, *, pes: int) -> Architecture:
    """``base`` (DRAM, a global buffer, one register file per PE: the ``eyeriss_isca16`` levels)
    resized to ``pes`` PEs with the storage area of RS at that size, split as ``dataflow`` needs
    (see the module docstring for the assumptions)."""
    flow = get_dataflow(dataflow)
    if len(base.levels) != 3 or base.levels[2].fanout == 1:
        raise UsageError(f"{base.name}: the equal-area rule needs DRAM, a global buffer and a per-PE "
                         "register file under the PE array (the eyeriss_isca16 preset)")
    dram, buffer, rf = base.levels
    word_bytes = base.word_bits["weights"] // 8
    area = pes * RS_RF_BYTES * RF_AREA_PER_SRAM_BYTE + pes * RS_RF_BYTES  # in buffer-byte units
    if flow.name == "RS":
        rf_words = RS_RF_BYTES // word_bytes
    elif flow.name == "NLR":
        rf_words = 0
    else:
        rf_words = STATIONARY_RF_WORDS
    buffer_bytes = area - pes * rf_words * word_bytes * RF_AREA_PER_SRAM_BYTE
    x, y = array_shape(pes)
    new_rf = replace(rf, name="rf", keeps=tuple(flow.rf_keeps), capacity_words=rf_words, fanout_x=x, fanout_y=y,
                     partition_words={})
    new_buffer = replace(buffer, capacity_words=int(buffer_bytes // word_bytes), partition_words={})
    return replace(base, name=f"{base.name}_{flow.name}_{pes}pe", levels=(dram, new_buffer, new_rf),
                   dataflow=flow.name,
                   description=f"{base.name} at {pes} PEs ({x} x {y}), equal-area storage for {flow.name}: "
                               f"{rf_words} RF words per PE, {int(buffer_bytes // word_bytes)} buffer words")


__all__ = ["DATAFLOWS", "Dataflow", "NAMES", "array_shape", "equal_area_architecture", "get_dataflow"]
