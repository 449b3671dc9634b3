"""Sparsity on real tensors (issue 6): zero gating and skipping, and DRAM compression per chunk.

Oracles, independent of the kernel: MAC classes by correlating the non-zero masks (NumPy), per-MAC
predicates over the enumerated iteration space (lockstep cycles), a tiny encoder written here (with
a decoder that checks it), and the DRAM chunks read off the naive twin's tile histories.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import networks
from networks.layers import LoopDims
from sim.arch import DATA_TYPES, Architecture, EnergyEntry, StorageLevel
from sim.compression import chunk_bits
from sim.config import load_architecture
from sim.default_mapping import default_mapping
from sim.energy import access_energy, energy_breakdown
from sim.engine import run_engine
from sim.mapping import build_nest
from sim.simulate import simulate_layer, simulate_network
from tests.naive_engine import _history
from tests.sim_cases import architectures, layer_dims, mappings, reference_conv
from tests.test_invariants import element_keys

EXAMPLES = int(os.environ.get("EAPSIM_EXAMPLES", 60))
DENSE_HANDLING = {"weights": "none", "inputs": "none"}
DENSE_COMPRESSION = {d: "none" for d in DATA_TYPES}
CONV = LoopDims(N=2, G=1, M=8, C=6, P=6, Q=6, R=3, S=3, stride=1, H=8, W=8)


def with_options(arch: Architecture, zero_handling=None, compression=None) -> Architecture:
    return dataclasses.replace(arch, zero_handling={**DENSE_HANDLING, **(zero_handling or {})},
                               dram_compression={**DENSE_COMPRESSION, **(compression or {})})


def sparse_tensors(dims: LoopDims, rng: np.random.Generator, density_w: float, density_x: float,
                   clustered: bool = False) -> tuple[np.ndarray, np.ndarray]:
    w = rng.standard_normal(dims.G * dims.M * dims.C * dims.R * dims.S).astype(np.float32)
    x = rng.standard_normal(dims.N * dims.G * dims.C * dims.H * dims.W).astype(np.float32)
    w[rng.random(w.size) >= density_w] = 0
    if clustered:  # long zero runs (over 31) and dense stretches
        keep = np.repeat(rng.random(-(-x.size // 40)) < density_x, 40)[: x.size]
        x[~keep] = 0
    else:
        x[rng.random(x.size) >= density_x] = 0
    return w, x


# ------------------------------------------------------------------------------------------------
# A tiny independent encoder (with a decoder that checks it)
# ------------------------------------------------------------------------------------------------
def rle_encode(values) -> list[tuple[int, float]]:
    """Eyeriss RLE pairs (run of zeros, value); a pair (r, 0) stands for r + 1 zeros."""
    pairs, run = [], 0
    for v in values:
        if v != 0:
            pairs.append((run, v))
            run = 0
        elif run == 31:
            pairs.append((31, 0))  # 31 zeros and a literal zero
            run = 0
        else:
            run += 1
    if run:
        pairs.append((run - 1, 0))
    return pairs


def rle_decode(pairs) -> list[float]:
    out = []
    for run, value in pairs:
        assert 0 <= run <= 31
        out += [0] * run + [value]
    return out


def encoded_bits(values, mode: str, value_bits: int = 16) -> int:
    values = list(values)
    if mode == "none":
        return len(values) * value_bits
    if mode == "significance_map":
        return len(values) + value_bits * sum(v != 0 for v in values)
    pairs = rle_encode(values)
    assert rle_decode(pairs) == values
    per_word = 63 // (5 + value_bits)  # 3 pairs of 21 bits + the final-word bit for 16-bit values
    words = [pairs[k: k + per_word] for k in range(0, len(pairs), per_word)]
    return 64 * len(words)


ADVERSARIAL = {
    "empty": [],
    "all_zeros": [0] * 100,
    "no_zeros": [1.5] * 10,
    "run_31": [0] * 31 + [2],
    "run_32": [0] * 32 + [2],
    "run_33": [0] * 33 + [2],
    "run_64_then_trailing_32": [0] * 64 + [3] + [0] * 32,
    "trailing_33": [1] + [0] * 33,
    "single_zero": [0],
    "alternating": [0, 1] * 20,
}


@pytest.mark.parametrize("name", ADVERSARIAL)
@pytest.mark.parametrize("mode", ["none", "rle", "significance_map"])
def test_chunk_bits_match_the_independent_encoder(name, mode):
    values = ADVERSARIAL[name]
    assert chunk_bits(values, mode, 16) == encoded_bits(values, mode)


def test_chunk_bits_on_random_chunks(rng):
    for _ in range(300):
        n = int(rng.integers(0, 200))
        values = np.where(rng.random(n) < rng.random(), 0.0, 1.0).tolist()
        for mode in ("rle", "significance_map"):
            for bits in (8, 16):
                assert chunk_bits(values, mode, bits) == encoded_bits(values, mode, bits)
    assert chunk_bits([1, 2, 3], "rle", 16) == 64  # three pairs fill one word
    assert chunk_bits([1, 2, 3, 4], "rle", 16) == 128


# ------------------------------------------------------------------------------------------------
# DRAM chunks: the engine against the naive twin's tile histories and the encoder above
# ------------------------------------------------------------------------------------------------
UNIT = EnergyEntry(energy_per_access=1.0, source="test")


def _buffered_arch(counting: str, block: int, compression: dict[str, str]) -> Architecture:
    def level(name, **kw):
        return StorageLevel(name=name, keeps=DATA_TYPES, capacity_words=None, energy_read=UNIT,
                            energy_fill=UNIT, energy_update=UNIT, **kw)
    return Architecture(
        name="buffered", description="", source_file="<test>", clock_mhz=1.0, energy_unit="pJ",
        counting=counting, word_bits={d: 16 for d in DATA_TYPES}, mac_energy=UNIT,
        levels=(level("DRAM", block_words=block), level("GLB"),
                level("RF", fanout_x=2, fanout_y=2, noc_energy_per_word=UNIT)),
        dram_compression=compression,
    )


def _flat(dims: LoopDims, d: str, element) -> int:
    shape = {"weights": (dims.G, dims.M, dims.C, dims.R, dims.S),
             "inputs": (dims.N, dims.G, dims.C, dims.H, dims.W),
             "outputs": (dims.N, dims.G, dims.M, dims.P, dims.Q)}[d]
    return int(np.ravel_multi_index(element, shape))


def expected_dram_chunks(nest, arch, d, values) -> tuple[list[int], list[int]]:
    """(bits, vector accesses) of DRAM reads and writes of ``d``, chunk by chunk, from the naive
    twin's deltas at the buffer (the only child of DRAM)."""
    mode = arch.dram_compression[d]
    access_bits = arch.levels[0].block_words * arch.word_bits[d]
    _, history = _history(nest, 1, d, arch.counting)
    (steps,) = history.values()
    bits, vectors = [0, 0], [0, 0]
    seen: set[int] = set()

    def add(action, chunk):
        if chunk:
            b = encoded_bits([values[k] for k in sorted(chunk)], mode, arch.word_bits[d])
            bits[action] += b
            vectors[action] += -(-b // access_bits)

    for _, _, delta in steps:
        flat = {_flat(nest.dims, d, e) for e in delta}
        if d == "outputs":
            add(0, flat & seen)  # partial sums DRAM already holds are read back
            add(1, flat)  # every element that enters the buffer is written back once
            seen |= flat
        else:
            add(0, flat)
    return bits, vectors


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_compressed_dram_bits_equal_the_encoder_on_the_naive_chunks(data):
    dims = data.draw(layer_dims(max_macs=800))
    compression = {d: data.draw(st.sampled_from(["rle", "significance_map"])) for d in DATA_TYPES}
    arch = _buffered_arch(data.draw(st.sampled_from(["timeloop", "exact"])), data.draw(st.integers(1, 4)),
                          compression)
    nest = build_nest(dims, arch, data.draw(mappings(dims, arch)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    density = data.draw(st.sampled_from([0.0, 0.3, 0.7, 1.0]))
    w, x = sparse_tensors(dims, rng, density, density, clustered=data.draw(st.booleans()))
    counts = run_engine(nest, arch, w, x).counts
    outputs = reference_conv(dims, w, x).ravel()
    assert counts.dram_compressed.all()
    for di, (d, values) in enumerate((("weights", w), ("inputs", x), ("outputs", outputs))):
        bits, vectors = expected_dram_chunks(nest, arch, d, values)
        assert counts.dram_bits[di].tolist() == bits, d
        assert counts.dram_vectors[di].tolist() == vectors, d
    # compression leaves the dense counters alone
    assert counts.differences(run_engine(nest, with_options(arch), w, x).counts) == []


# ------------------------------------------------------------------------------------------------
# MAC counts: correlation of the non-zero masks, and per-MAC predicates
# ------------------------------------------------------------------------------------------------
def mac_classes(dims: LoopDims, w: np.ndarray, x: np.ndarray) -> dict[str, int]:
    """MACs by which operands are non-zero: correlate the masks (a (output, weight) pair counts
    when its weight and its input are both non-zero)."""
    nw, nx = (w != 0).astype(np.float64), (x != 0).astype(np.float64)
    both = int(round(reference_conv(dims, nw, nx).sum()))
    w_nonzero = int(round(reference_conv(dims, nw, np.ones_like(nx)).sum()))
    x_nonzero = int(round(reference_conv(dims, np.ones_like(nw), nx).sum()))
    return {"macs": dims.macs, "both_nonzero": both, "zero_weight": dims.macs - w_nonzero,
            "zero_input": dims.macs - x_nonzero, "zero_both": dims.macs - w_nonzero - x_nonzero + both}


@pytest.mark.parametrize("preset", ["eyeriss_v1", "eyeriss_energy_tool", "eyeriss_isca16", "eyeriss_like_timeloop"])
@pytest.mark.parametrize("density", [(1.0, 1.0), (0.5, 0.3), (0.2, 0.9), (0.0, 0.5)])
def test_gated_and_skipped_macs_equal_the_mask_correlation(preset, density):
    arch = load_architecture(preset)
    nest = build_nest(CONV, arch, default_mapping(CONV, arch))
    w, x = sparse_tensors(CONV, np.random.default_rng(7), *density)
    counts = run_engine(nest, arch, w, x).counts
    want = mac_classes(CONV, w, x)
    assert (counts.macs_zero_weight, counts.macs_zero_input, counts.macs_zero_both) == (
        want["zero_weight"], want["zero_input"], want["zero_both"])
    all_nonzero_input = want["macs"] - want["zero_input"]
    performed, skipped, saved = {
        # JSSC17: a zero ifmap gates the filter read and the MAC, no cycle saved
        "eyeriss_v1": (all_nonzero_input, 0, [want["zero_input"], 0, 0]),
        # energy tool: a MAC with either operand zero is skipped, nothing of it is read
        "eyeriss_energy_tool": (want["both_nonzero"], want["macs"] - want["both_nonzero"],
                                [want["macs"] - want["both_nonzero"]] * 2 + [0]),
    }.get(preset, (want["macs"], 0, [0, 0, 0]))
    assert counts.macs_performed == performed
    assert counts.macs_skipped == skipped
    assert counts.reads_saved.tolist() == saved


def lockstep_cycles(nest, arch, skipped: np.ndarray) -> int:
    """The docstring's definition, by brute force: steps are the temporal iterations above the
    innermost fan-out; each step lasts as long as its busiest PE's MACs that are not skipped."""
    _, idx = element_keys(nest)
    fanouts = [i for i, level in enumerate(arch.levels) if level.fanout > 1]
    sync = nest.level_start[fanouts[-1]] if fanouts else 0
    step = np.zeros(len(idx), np.int64)
    pe = np.zeros(len(idx), np.int64)
    for k, loop in enumerate(nest.loops):
        if loop.axis is not None:
            pe = pe * loop.bound + idx[:, k]
        elif k < sync:
            step = step * loop.bound + idx[:, k]
    work = {}
    for s, p, busy in zip(step, pe, ~skipped):
        work[s, p] = work.get((s, p), 0) + int(busy)
    longest = {}
    for (s, _), n in work.items():
        longest[s] = max(longest.get(s, 0), n)
    return sum(longest.values())


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_zero_handling_per_mac_on_random_architectures(data):
    dims = data.draw(layer_dims(max_macs=800))
    handling = {d: data.draw(st.sampled_from(["none", "gate", "skip"])) for d in ("weights", "inputs")}
    arch = with_options(data.draw(architectures()), handling)
    nest = build_nest(dims, arch, data.draw(mappings(dims, arch)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    w, x = sparse_tensors(dims, rng, data.draw(st.sampled_from([0.0, 0.4, 1.0])), data.draw(st.sampled_from([0.0, 0.4, 1.0])))
    counts = run_engine(nest, arch, w, x).counts
    keys, _ = element_keys(nest)
    wz, xz = w[keys["weights"]] == 0, x[keys["inputs"]] == 0
    on = {mode: {d: handling[d] in mode for d in handling} for mode in (("gate", "skip"), ("skip",))}
    gated = (wz & on[("gate", "skip")]["weights"]) | (xz & on[("gate", "skip")]["inputs"])
    skipped = (wz & on[("skip",)]["weights"]) | (xz & on[("skip",)]["inputs"])
    assert counts.macs_gated == int(gated.sum())
    assert counts.macs_skipped == int(skipped.sum())
    assert counts.reads_saved[0] == int(((xz & on[("gate", "skip")]["inputs"]) | (wz & on[("skip",)]["weights"])).sum())
    assert counts.reads_saved[1] == int(((wz & on[("gate", "skip")]["weights"]) | (xz & on[("skip",)]["inputs"])).sum())
    if "skip" in handling.values():
        assert counts.cycles_compute == lockstep_cycles(nest, arch, skipped)
        assert counts.cycles_compute >= math.ceil((counts.macs - counts.macs_skipped) / counts.pes_used)
    else:
        assert counts.cycles_compute == nest.temporal_steps
    dense = run_engine(nest, with_options(arch), w, x).counts
    assert counts.storage.tolist() == dense.storage.tolist() and counts.noc.tolist() == dense.noc.tolist()


# ------------------------------------------------------------------------------------------------
# Energy and cycles as the data changes
# ------------------------------------------------------------------------------------------------
def _energy(counts, arch) -> dict[str, float]:
    return energy_breakdown(access_energy(counts, arch))


@pytest.mark.parametrize("preset", ["eyeriss_isca16", "eyeriss_like_timeloop", "eyeriss_v1"])
def test_dense_options_make_counts_and_energy_independent_of_the_data(preset):
    arch = with_options(load_architecture(preset))
    nest = build_nest(CONV, arch, default_mapping(CONV, arch))
    rng = np.random.default_rng(3)
    runs = [run_engine(nest, arch, *sparse_tensors(CONV, rng, dw, dx, clustered=c)).counts
            for dw, dx, c in ((1.0, 1.0, False), (0.3, 0.6, False), (0.0, 0.0, False), (0.8, 0.2, True))]
    tables = [access_energy(c, arch) for c in runs]
    for counts, table in zip(runs[1:], tables[1:]):
        assert counts.differences(runs[0]) == []
        assert counts.macs_performed == counts.macs and counts.macs_skipped == 0
        assert not counts.dram_compressed.any() and not counts.reads_saved.any()
        assert table.equals(tables[0])


@pytest.mark.parametrize("clustered", [False, True])
def test_skipping_never_costs_more_as_density_falls(clustered):
    arch = load_architecture("eyeriss_energy_tool")
    nest = build_nest(CONV, arch, default_mapping(CONV, arch))
    rng = np.random.default_rng(11)
    w, x = sparse_tensors(CONV, rng, 1.0, 1.0)
    order_w, order_x = rng.permutation(w.size), rng.permutation(x.size)
    dense_cycles = nest.temporal_steps
    previous = None
    for density in (1.0, 0.8, 0.6, 0.4, 0.2, 0.05, 0.0):  # nested masks: each keeps a subset
        wd, xd = w.copy(), x.copy()
        wd[order_w[int(density * w.size):]] = 0
        if clustered:
            xd[: int((1 - density) * x.size)] = 0
        else:
            xd[order_x[int(density * x.size):]] = 0
        counts = run_engine(nest, arch, wd, xd).counts
        energy = _energy(counts, arch)
        assert math.ceil(counts.macs_performed / counts.pes_used) <= counts.cycles_compute <= dense_cycles
        if previous is not None:
            assert counts.macs_performed <= previous[0]
            assert energy["energy_total"] <= previous[1] + 1e-9
            assert energy["energy_mac"] <= previous[2] and energy["energy_dram"] <= previous[3] + 1e-9
        previous = (counts.macs_performed, energy["energy_total"], energy["energy_mac"], energy["energy_dram"])
    assert counts.macs_performed == 0 and counts.cycles_compute == 0


def test_energy_prices_performed_macs_saved_reads_and_compressed_chunks():
    arch = load_architecture("eyeriss_energy_tool")
    nest = build_nest(CONV, arch, default_mapping(CONV, arch))
    w, x = sparse_tensors(CONV, np.random.default_rng(5), 0.4, 0.5)
    counts = run_engine(nest, arch, w, x).counts
    table = access_energy(counts, arch).set_index(["level", "data_type", "action"])
    assert table.loc[("MAC", "compute", "macs"), "count_words"] == counts.macs_performed
    for di, d in enumerate(("weights", "inputs")):
        innermost = arch.levels[arch.levels_keeping(d)[-1]].name
        assert table.loc[(innermost, d, "reads"), "count_words"] == counts.macs - counts.reads_saved[di]
        dram = table.loc[("DRAM", d, "reads")]
        assert dram.vector_accesses == counts.dram_vectors[di, 0]
        assert dram.energy == counts.dram_vectors[di, 0] * arch.levels[0].energy_read.energy_per_access
    dram_out = table.loc[("DRAM", "outputs", "updates")]
    assert dram_out.vector_accesses == counts.dram_vectors[2, 1]


# ------------------------------------------------------------------------------------------------
# Runs: the network's input image, fused ReLU outputs, and the closed form's warning
# ------------------------------------------------------------------------------------------------
def test_network_run_leaves_the_input_image_uncompressed_and_compresses_relu_outputs():
    arch = load_architecture("eyeriss_v1")
    results = simulate_network(networks.get("lenet5", seed=1), arch, batch=2, progress=False)
    rows = {r.layer: r.summary_row(arch) for r in results}
    first = rows["conv1"]
    assert first["dram_bits_compressed_inputs"] == first["dram_bits_uncompressed_inputs"]
    assert rows["conv2"]["dram_bits_compressed_inputs"] != rows["conv2"]["dram_bits_uncompressed_inputs"]
    # conv1's outputs go through a ReLU on chip: about half are zero, so RLE shrinks them
    assert first["dram_bits_compressed_outputs"] < first["dram_bits_uncompressed_outputs"]
    for row in rows.values():  # weights are not compressed on Eyeriss
        assert row["dram_bits_compressed_weights"] == row["dram_bits_uncompressed_weights"]
        assert row["macs_performed"] <= row["macs_dense"] and row["macs_skipped"] == 0


def test_closed_form_on_a_sparse_preset_says_it_counts_dense_data(caplog):
    import sim.simulate

    arch = load_architecture("eyeriss_v1")
    sim.simulate._WARNED_DENSE_MODEL.discard(arch.name)  # given once per process; earlier tests may have
    with caplog.at_level(logging.WARNING, logger="sim.simulate"):
        result = simulate_layer(CONV, arch, method="model")
        simulate_layer(CONV, arch, method="model")
    assert caplog.text.count("counts dense data") == 1, "the warning is given once, not per layer"
    assert "counts dense data" in caplog.text and "--method engine" in caplog.text
    assert result.counts.macs_performed == result.counts.macs
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sim.simulate"):
        simulate_layer(CONV, load_architecture("eyeriss_isca16"), method="model")
    assert caplog.text == ""
