"""Timing (sim.timing): hand-simulated schedules of tiny layers, stall accounting, the closed-form
bound, clock domains, timing keys of hardware configs, and Eyeriss's processing latency."""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from networks.layers import LoopDims
from sim.arch import DATA_TYPES, Architecture, StorageLevel, TimingOptions
from sim.config import ConfigError, load_architecture, parse_architecture
from sim.engine import run_engine
from sim.mapping import build_nest, mapping_from_loops
from sim.timing import bound_cycles, words_per_core_cycle
from tests.sim_cases import UNIT, architectures, layer_dims, mappings

EXAMPLES = int(os.environ.get("EAPSIM_EXAMPLES", 60))


def _level(name, keeps=DATA_TYPES, **kw) -> StorageLevel:
    return StorageLevel(name=name, keeps=keeps, capacity_words=None, energy_read=UNIT,
                        energy_fill=UNIT, energy_update=UNIT, **kw)


def _arch(levels, **timing) -> Architecture:
    return Architecture(name="hand", description="", source_file="<test>", clock_mhz=200.0,
                        energy_unit="pJ", counting="exact", word_bits={d: 16 for d in DATA_TYPES},
                        levels=tuple(levels), mac_energy=UNIT, timing=TimingOptions(**timing))


def _dims(**sizes) -> LoopDims:
    full = {"N": 1, "G": 1, "M": 1, "C": 1, "P": 1, "Q": 1, "R": 1, "S": 1, **sizes}
    return LoopDims(**full, stride=1, H=full["P"] + full["R"] - 1, W=full["Q"] + full["S"] - 1)


def _timing(dims, arch, loops):
    nest = build_nest(dims, arch, mapping_from_loops(arch, loops))
    rng = np.random.default_rng(0)
    w = rng.standard_normal(dims.G * dims.M * dims.C * dims.R * dims.S).astype(np.float32)
    x = rng.standard_normal(dims.N * dims.G * dims.C * dims.H * dims.W).astype(np.float32)
    counts = run_engine(nest, arch, w, x).counts
    return counts.timing, counts, nest


# --- hand-simulated schedules ---------------------------------------------------------------------
# Layer: Q = 4 outputs of a 1x1 filter (4 MACs). DRAM reads 1 word per cycle, writes are free.
# The register file below it holds all three tiles; DRAM's loop walks Q, so each step is one MAC.

def test_serial_fill_then_compute_matches_hand_schedule():
    """Without double buffering each step's fill waits for the previous compute:
    step 0: weight + input = 2 words, cycles 0-2, MAC 2-3; steps 1-3: one input word (1 cycle)
    after the previous MAC, then the MAC: 3-4|4-5, 5-6|6-7, 7-8|8-9. The drains are free.
    Total 9 = 4 compute + 5 DRAM stall."""
    arch = _arch([_level("DRAM", read_bandwidth_words_per_cycle=1.0), _level("rf")])
    timing, counts, _ = _timing(_dims(Q=4), arch, {"DRAM": [("Q", 4)]})
    assert (timing.cycles_total, timing.cycles_compute, timing.cycles_stall_dram) == (9, 4, 5)
    assert timing.cycles_stall_buffer == timing.cycles_stall_noc == 0
    assert timing.cycles_exact == 9.0


def test_double_buffered_fill_overlaps_compute_matches_hand_schedule():
    """Double-buffered: fill k may start once tile k-2 is used. step 0: fill 0-2, MAC 2-3;
    step 1: fill 2-3 (DRAM port free at 2), MAC 3-4; step 2: fill 3-4 (tile 0 used at 3), MAC 4-5;
    step 3: fill 4-5, MAC 5-6. Total 6 = 4 compute + 2 DRAM stall; the bound is 5 words / 1."""
    arch = _arch([_level("DRAM", read_bandwidth_words_per_cycle=1.0), _level("rf", double_buffered=DATA_TYPES)])
    timing, counts, nest = _timing(_dims(Q=4), arch, {"DRAM": [("Q", 4)]})
    assert (timing.cycles_total, timing.cycles_stall_dram) == (6, 2)
    assert bound_cycles(counts, nest, arch) == (5.0, "DRAM read port")


def test_output_drains_share_a_shared_read_write_port():
    """As the serial case, with one shared DRAM port (1 word/cycle) also writing outputs back: each
    step from step 1 on moves its input and the previous output (2 cycles): 0-2|2-3, 3-5|5-6,
    6-8|8-9, 9-11|11-12, then the last output drains 12-13. Total 13 = 4 + 9."""
    arch = _arch([_level("DRAM", read_bandwidth_words_per_cycle=1.0, shared_read_write_port=True),
                  _level("rf")])
    timing, counts, nest = _timing(_dims(Q=4), arch, {"DRAM": [("Q", 4)]})
    assert (timing.cycles_total, timing.cycles_stall_dram) == (13, 9)
    assert bound_cycles(counts, nest, arch) == (9.0, "DRAM read-write port")  # 1 + 4 in, 4 out


def test_multicast_costs_bus_cycles_per_word_not_per_receiver():
    """Four PEs (spatial Q) share one weight. Weight bus 0.25 words/cycle: the multicast weight
    takes 4 bus cycles (16 if each receiver cost a cycle); input bus 1 word/cycle: 4 distinct inputs
    per step take 4 cycles. Serial: step 0: max(4, 4) = 0-4, MAC 4-5; step 1: inputs 5-9, MAC 9-10."""
    pe = _level("pe", fanout_x=4, noc_bandwidth_words_per_cycle={"weights": 0.25, "inputs": 1.0})
    arch = _arch([_level("DRAM"), pe])
    timing, counts, nest = _timing(_dims(P=2, Q=4), arch, {"DRAM": [("P", 2), ("Q", 4, "X")]})
    assert (timing.cycles_total, timing.cycles_compute, timing.cycles_stall_noc) == (10, 2, 8)
    assert counts.noc[1, 0, 0] == 4  # the weight is delivered to 4 PEs over 1 bus word


def test_compute_waits_for_dram_serialises_double_buffered_inputs():
    """Double-buffered as above, but the array stops while inputs load: back to the serial 9,
    except that weights (step 0 only here) may still overlap: the same 9."""
    levels = [_level("DRAM", read_bandwidth_words_per_cycle=1.0), _level("rf", double_buffered=DATA_TYPES)]
    timing, _, _ = _timing(_dims(Q=4), _arch(levels, compute_waits_for_dram=True), {"DRAM": [("Q", 4)]})
    assert timing.cycles_total == 9


def test_pass_ramp_up_makes_the_first_step_of_each_pass_serial():
    """Two PEs hold different filters (spatial M), DRAM walks C (a new weight tile every step, so
    every step starts a pass) and P; weight bus 1 word/cycle (2 words: 2 cycles), double-buffered
    PEs. With ramp-up every step is serial: 4 steps x (2 + 1) = 12. Without: the fills overlap the
    previous MAC; the bus carries 2 words per 1-cycle MAC: 0-2|2-3, 2-4|4-5, 4-6|6-7, 6-8|8-9 = 9."""
    pe = _level("pe", fanout_x=2, noc_bandwidth_words_per_cycle={"weights": 1.0}, double_buffered=DATA_TYPES)
    loops = {"DRAM": [("P", 2), ("C", 2), ("M", 2, "X")]}
    ramp, _, _ = _timing(_dims(M=2, C=2, P=2), _arch([_level("DRAM"), pe], pass_ramp_up=True), loops)
    flow, _, _ = _timing(_dims(M=2, C=2, P=2), _arch([_level("DRAM"), pe]), loops)
    assert (ramp.cycles_total, flow.cycles_total) == (12, 9)


def test_closed_form_bound_follows_each_architectures_bandwidth_for_the_same_nest():
    """The closed form memoises counts per nest and architecture structure; its timing must still
    follow the bandwidth of the architecture asked about: 4 DRAM input words + 1 weight at 1 word
    per cycle bound the layer at 5 cycles, at 0.5 words per cycle at 10 (compute: 4 cycles)."""
    from sim.model import closed_form_counts

    bounds = []
    for bandwidth in (1.0, 0.5, 1.0):
        arch = _arch([_level("DRAM", read_bandwidth_words_per_cycle=bandwidth), _level("rf")])
        nest = build_nest(_dims(Q=4), arch, mapping_from_loops(arch, {"DRAM": [("Q", 4)]}))
        bounds.append(closed_form_counts(nest, arch).timing.cycles_bound)
    assert bounds == [5.0, 10.0, 5.0]


def test_clock_domain_converts_bandwidth_to_core_cycles():
    """A 64-bit DRAM bus (4 words) at 60 MHz under a 200 MHz core: 1.2 words per core cycle; the
    serial hand case with 2.4 words of input... here 1 + 1 words in step 0: 2 / 1.2 cycles."""
    dram = _level("DRAM", read_bandwidth_words_per_cycle=4.0, clock_mhz=60.0)
    arch = _arch([dram, _level("rf")])
    assert words_per_core_cycle(arch, 0, 4.0) == pytest.approx(1.2)
    timing, _, _ = _timing(_dims(Q=1), arch, {"DRAM": []})
    assert timing.cycles_exact == pytest.approx(2 / 1.2 + 1)


# --- stall accounting on random layers, architectures and mappings --------------------------------

@st.composite
def timed_cases(draw, bandwidths: bool):
    dims = draw(layer_dims(max_macs=1500))
    arch = draw(architectures())
    levels = []
    for i, level in enumerate(arch.levels):
        extra = {"double_buffered": tuple(d for d in level.keeps if draw(st.booleans())),
                 "shared_read_write_port": draw(st.booleans())}
        if bandwidths:
            pick = st.one_of(st.none(), st.sampled_from([0.25, 0.5, 1.0, 2.0, 3.0]))
            extra["read_bandwidth_words_per_cycle"] = draw(pick)
            extra["write_bandwidth_words_per_cycle"] = None if extra["shared_read_write_port"] else draw(pick)
            extra["clock_mhz"] = draw(st.sampled_from([None, 50.0, 300.0]))
            if level.fanout > 1:
                extra["noc_bandwidth_words_per_cycle"] = {d: b for d in DATA_TYPES if (b := draw(pick))}
                extra["noc_output_bandwidth_words_per_cycle"] = draw(pick)
                extra["noc_reduction_bandwidth_words_per_cycle"] = draw(pick)
        levels.append(dataclasses.replace(level, **extra))
    compression = {d: draw(st.sampled_from(["none", "rle", "significance_map"])) if bandwidths else "none"
                   for d in DATA_TYPES}
    skipping = {d: draw(st.sampled_from(["none", "gate", "skip"])) for d in ("weights", "inputs")}
    arch = dataclasses.replace(arch, levels=tuple(levels), dram_compression=compression, zero_handling=skipping,
                               timing=TimingOptions(
        compute_waits_for_dram=draw(st.booleans()), pass_ramp_up=draw(st.booleans())))
    mapping = draw(mappings(dims, arch))
    return dims, arch, mapping, draw(st.integers(0, 2**31))


def _run(dims, arch, mapping, seed):
    """The engine on tensors with about 40% zeros; the outputs DRAM receives (for compression) are
    given before the run on odd seeds."""
    nest = build_nest(dims, arch, mapping)
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(dims.G * dims.M * dims.C * dims.R * dims.S).astype(np.float32)
    x = rng.standard_normal(dims.N * dims.G * dims.C * dims.H * dims.W).astype(np.float32)
    w[rng.random(w.size) < 0.4] = 0
    x[rng.random(x.size) < 0.4] = 0
    values = None
    if seed % 2:
        values = np.maximum(rng.standard_normal(dims.N * dims.G * dims.M * dims.P * dims.Q), 0).astype(np.float32)
    return run_engine(nest, arch, w, x, output_values=values).counts, nest


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(timed_cases(bandwidths=False))
def test_unlimited_bandwidth_means_no_stall_and_the_bound(case):
    counts, nest = _run(*case)
    t = counts.timing
    assert (t.cycles_stall_dram, t.cycles_stall_buffer, t.cycles_stall_noc) == (0, 0, 0)
    assert t.cycles_total == t.cycles_compute == counts.cycles_compute  # lockstep steps under skipping
    assert t.cycles_exact == t.cycles_bound == counts.cycles_compute
    assert t.cycles_stall_compute == counts.cycles_compute - -(-(counts.macs - counts.macs_skipped) // counts.pes_used)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(timed_cases(bandwidths=True))
def test_engine_cycles_never_below_the_closed_form_bound(case):
    counts, nest = _run(*case)
    t = counts.timing
    assert t.cycles_exact >= t.cycles_bound * (1 - 1e-9)
    assert t.cycles_exact >= counts.cycles_compute
    assert t.cycles_total == t.cycles_compute + t.cycles_stall
    # on dense data movement and compute the bound from the closed-form model's counts is the engine's
    from sim.model import closed_form_counts
    if not counts.dram_compressed.any() and counts.macs_skipped == 0:
        assert closed_form_counts(nest, case[1]).timing.cycles_bound == pytest.approx(t.cycles_bound)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(timed_cases(bandwidths=True), st.data())
def test_halving_a_bandwidth_never_reduces_cycles(case, data):
    dims, arch, mapping, seed = case
    limited = [(i, key) for i, level in enumerate(arch.levels)
               for key in ("read_bandwidth_words_per_cycle", "write_bandwidth_words_per_cycle",
                           "noc_output_bandwidth_words_per_cycle", "noc_reduction_bandwidth_words_per_cycle")
               if getattr(level, key) is not None]
    limited += [(i, ("noc", d)) for i, level in enumerate(arch.levels) for d in level.noc_bandwidth_words_per_cycle]
    assume(limited)
    i, key = data.draw(st.sampled_from(limited))
    level = arch.levels[i]
    if isinstance(key, tuple):
        buses = dict(level.noc_bandwidth_words_per_cycle)
        buses[key[1]] /= 2
        halved = dataclasses.replace(level, noc_bandwidth_words_per_cycle=buses)
    else:
        halved = dataclasses.replace(level, **{key: getattr(level, key) / 2})
    slower = dataclasses.replace(arch, levels=arch.levels[:i] + (halved,) + arch.levels[i + 1:])
    before, _ = _run(dims, arch, mapping, seed)
    after, _ = _run(dims, slower, mapping, seed)
    assert after.timing.cycles_exact >= before.timing.cycles_exact * (1 - 1e-12)


# --- configs --------------------------------------------------------------------------------------

def _config(**level1) -> dict:
    level = {"name": "rf", "keeps": ["weights", "inputs", "outputs"], "energy_read_per_access": 1.0,
             "energy_fill_per_access": 1.0, "energy_update_per_access": 1.0, "energy_source": "test"}
    return {"format_version": 1, "name": "t", "clock_mhz": 200.0, "energy_unit": "pJ",
            "counting": "exact", "word_bits": {"weights": 16, "inputs": 16, "outputs": 16},
            "mac": {"energy_per_mac": 1.0, "energy_source": "test"},
            "level": [{**level, "name": "DRAM"}, {**level, **level1}]}


@pytest.mark.parametrize("level1, top, expected", [
    ({"double_buffered": ["weigths"]}, {}, ["level[1].double_buffered", "weigths"]),
    ({"noc_bandwidth_words_per_cycle": {"inputs": 1.0}}, {}, ["level[1].noc_bandwidth_words_per_cycle", "no fan-out"]),
    ({"fanout_x": 2, "noc_bandwidth_words_per_cycle": {"input": 1.0}}, {}, ["did you mean 'inputs'"]),
    ({"shared_read_write_port": True, "write_bandwidth_words_per_cycle": 2.0}, {}, ["write_bandwidth_words_per_cycle", "one bandwidth"]),
    ({"clock_mhz": 0}, {}, ["level[1].clock_mhz", "> 0"]),
    ({}, {"timing": {"compute_waits_for_dram": "yes"}}, ["timing.compute_waits_for_dram", "true or false"]),
    ({}, {"timing": {"pass_ramp": True}}, ["timing.pass_ramp", "did you mean 'pass_ramp_up'"]),
])
def test_bad_timing_keys_name_file_field_and_fix(level1, top, expected):
    with pytest.raises(ConfigError) as error:
        parse_architecture({**_config(**level1), **top}, source_file="hw.toml")
    for text in ["hw.toml", *expected]:
        assert text in str(error.value)


def test_double_buffered_true_means_every_kept_data_type():
    arch = parse_architecture(_config(double_buffered=True), source_file="hw.toml")
    assert arch.levels[1].double_buffered == DATA_TYPES and arch.levels[0].double_buffered == ()


# --- Eyeriss ----------------------------------------------------------------------------------------

def test_eyeriss_conv5_processing_latency_within_10_percent_of_the_chip():
    """AlexNet CONV5, batch 4, the chip's mapping, 200 MHz: processing latency (total minus DRAM
    stalls) 10.0 ms measured (Chen, Krishna, Emer, Sze, IEEE JSSC 2017; tests/data/
    eyeriss_alexnet_latency_jssc2017.csv). Bandwidths and options as in eyeriss_v1."""
    import csv
    from pathlib import Path

    import networks
    from sim.rowstationary import row_stationary_mapping

    rows = {r["layer"]: r for r in csv.DictReader(open(Path(__file__).parent / "data" / "eyeriss_alexnet_latency_jssc2017.csv"))}
    published_ms = float(rows["CONV5"]["processing_latency_ms"])
    arch = load_architecture("eyeriss_v1")
    dims = networks.get("alexnet").loop_dims("conv5", batch=4)
    mapping = row_stationary_mapping(dims, arch, m=64, n=4, e=13, p=16, q=3, r=2, t=2, layer_name="conv5")
    nest = build_nest(dims, arch, mapping)
    rng = np.random.default_rng(0)
    w = rng.standard_normal(dims.G * dims.M * dims.C * dims.R * dims.S).astype(np.float32)
    x = rng.standard_normal(dims.N * dims.G * dims.C * dims.H * dims.W).astype(np.float32)
    t = run_engine(nest, arch, w, x).counts.timing
    processing_ms = (t.cycles_total - t.cycles_stall_dram) / (arch.clock_mhz * 1e3)
    # steps (M/m)(C/(q r)) x (m/(p t)) n Q = 4 x 32 x 2 x 4 x 13, each q S p = 144 MACs per PE
    assert t.cycles_compute == 4 * 32 * 2 * 4 * 13 * 144
    assert abs(processing_ms / published_ms - 1) <= 0.10, processing_ms


def test_lockstep_wait_under_zero_skipping_and_pe_utilization():
    """Two PEs (spatial M) each run C = 2 MACs per step; PE 0's weights are zero and skipped, so
    it idles while PE 1 computes: 2 lockstep cycles, 1 if the 2 MACs were balanced, so 1 cycle of
    compute stall; utilisation = 2 active PE-cycles / (2 PEs x 2 cycles) = 0.5."""
    from sim.simulate import simulate_layer

    pe = _level("pe", fanout_x=2, noc_energy_per_word=UNIT)
    arch = dataclasses.replace(_arch([_level("DRAM"), pe]), zero_handling={"weights": "skip", "inputs": "none"})
    dims = _dims(M=2, C=2)
    mapping = mapping_from_loops(arch, {"DRAM": [("M", 2, "X")], "pe": [("C", 2)]})
    w = np.array([0, 0, 1, 1], np.float32)  # (M, C): PE 0 holds filter 0
    x = np.array([1, 1], np.float32)
    result = simulate_layer(dims, arch, mapping=mapping, tensors=(w, x))
    row = result.summary_row(arch)
    assert (row["cycles_total"], row["cycles_compute"], row["cycles_stall_compute"]) == (2, 2, 1)
    assert row["pe_utilization"] == 0.5
    assert row["latency_s"] == 2 / 200e6


def test_layers_csv_columns_add_up():
    from sim.simulate import simulate_layer

    arch = _arch([_level("DRAM", read_bandwidth_words_per_cycle=1.0), _level("rf")])
    row = simulate_layer(_dims(Q=4), arch, mapping=mapping_from_loops(arch, {"DRAM": [("Q", 4)]})).summary_row(arch)
    stalls = ("cycles_stall_dram", "cycles_stall_buffer", "cycles_stall_noc")
    assert row["cycles_total"] == row["cycles_compute"] + sum(row[c] for c in stalls) == 9
    assert row["pe_utilization"] == 4 / 9 and row["cycles_bound"] == 5.0
    model = simulate_layer(_dims(Q=4), arch, mapping=mapping_from_loops(arch, {"DRAM": [("Q", 4)]}), method="model")
    assert model.summary_row(arch)["cycles_total"] == 5  # the closed form reports its bound
