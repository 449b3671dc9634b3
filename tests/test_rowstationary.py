"""Row-stationary mappings of eyeriss_v1 (sim.rowstationary): a hand-derived PE set, the chip's
published AlexNet parameters, the default search, and the validation script's smoke run."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import networks
from networks.layers import LoopDims
from sim.config import load_architecture
from sim.engine import run_engine
from sim.mapping import MappingError, build_nest
from sim.model import closed_form_counts, tile_words
from sim.rowstationary import (
    RowStationaryError, RowStationaryParams, default_row_stationary, nearest_row_stationary,
    row_stationary_mapping,
)

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "validate_eyeriss.py"

# Published AlexNet mapping (batch 4) and the buffer tiles it implies: Chen, Krishna, Emer, Sze,
# IEEE JSSC 2017, AlexNet CONV1-5 mapping parameters and glb_ifmap_kB / glb_psum_kB (kB = 1024 B).
PUBLISHED = {
    "conv1": dict(m=96, n=1, e=7, p=16, q=1, r=1, t=2),
    "conv2": dict(m=64, n=1, e=27, p=16, q=2, r=1, t=1),
    "conv3": dict(m=64, n=4, e=13, p=16, q=4, r=1, t=4),
    "conv4": dict(m=64, n=4, e=13, p=16, q=3, r=2, t=2),
    "conv5": dict(m=64, n=4, e=13, p=16, q=3, r=2, t=2),
}
PUBLISHED_ACTIVE_PES = {"conv3": 156, "conv4": 156, "conv5": 156}
PUBLISHED_GLB_KB = {"conv3": (7.0, 84.5), "conv4": (10.5, 84.5), "conv5": (10.5, 84.5)}  # ifmap, psum


@pytest.fixture(scope="module")
def arch():
    return load_architecture("eyeriss_v1")


@pytest.fixture(scope="module")
def alexnet():
    return networks.get("alexnet")


def _with_multicast(arch, mode):
    """The architecture with the PE array's multicast mode replaced."""
    index = arch.level_index("ifmap_spad")
    levels = list(arch.levels)
    levels[index] = dataclasses.replace(levels[index], multicast=mode)
    return dataclasses.replace(arch, levels=tuple(levels))


# ------------------------------------------------------------------------------------------------
# (a) one PE set, derived by hand
# ------------------------------------------------------------------------------------------------
def _hand_counts(d: LoopDims, multicast: str) -> dict[tuple[str, str], tuple[int, int, int]]:
    """Totals (reads, fills, updates) over all instances of one R x E PE set with p=q=r=t=n=m=1.

    PE (y, x), y < R, x < E, convolves filter row y with ifmap row x + y (stride 1) into ofmap row
    x; the ifmap spad slides along the ofmap width Q; the global buffer keeps everything."""
    pes = d.R * d.P
    macs = d.P * d.Q * d.R * d.S  # C = M = N = 1
    # Filter row y goes once to the E PEs of PE row y (identical tiles along X share one buffer
    # read), and stays in each PE's filter spad for the whole layer: S fills per PE.
    weights_glb = d.R * d.S
    # Each PE fills its ifmap spad with its whole ifmap row once: S words, then one new word per
    # step along Q, S + (Q - 1) * stride = W per PE.
    ifmap_spad_fills = pes * d.W
    # "identical": no two PEs hold the same ifmap row tile along one axis, so the buffer reads every
    # PE's row separately. "overlap": the buffer sends the union of what the PEs need at each step:
    # the P + R - 1 = H distinct rows, S columns at first then one new column per step: H x W, every
    # ifmap value once.
    inputs_glb_reads = {"identical": pes * d.W, "overlap": d.H * d.W}[multicast]
    # Psums: each PE adds S products per ofmap value into its psum spad (Q values, one at a time);
    # the first write of each value is not read back. The R PEs of a column add their psums up the
    # column, so the buffer receives each of the P x Q ofmap values once, and writes it to DRAM.
    psum_updates = macs
    psum_reads = macs - pes * d.Q
    return {
        ("DRAM", "weights"): (weights_glb, 0, 0),
        ("DRAM", "inputs"): (d.H * d.W, 0, 0),
        ("DRAM", "outputs"): (0, 0, d.P * d.Q),
        ("global_buffer", "weights"): (weights_glb, weights_glb, 0),
        ("global_buffer", "inputs"): (inputs_glb_reads, d.H * d.W, 0),
        ("global_buffer", "outputs"): (0, 0, d.P * d.Q),
        ("filter_spad", "weights"): (macs, pes * d.S, 0),
        ("ifmap_spad", "inputs"): (macs, ifmap_spad_fills, 0),
        ("psum_spad", "outputs"): (psum_reads, 0, psum_updates),
    }


def _totals(counts, arch):
    return {
        (level.name, data_type): tuple(counts.total(i, data_type, a) for a in ("reads", "fills", "updates"))
        for i, level in enumerate(arch.levels) for data_type in level.keeps
    }


@pytest.mark.parametrize("multicast", ["identical", "overlap"])
def test_one_pe_set_matches_the_hand_derivation(arch, multicast, rng):
    dims = LoopDims(N=1, G=1, M=1, C=1, P=4, Q=4, R=3, S=3, stride=1, H=6, W=6)
    variant = _with_multicast(arch, multicast)
    mapping = row_stationary_mapping(dims, variant, m=1, n=1, e=dims.P, p=1, q=1, r=1, t=1,
                                     layer_name="pe_set")
    nest = build_nest(dims, variant, mapping, layer_name="pe_set")
    assert nest.total_spatial == dims.R * dims.P  # R x E PEs
    # per-PE tiles: one filter row, a sliding window of S ifmap values, one psum
    assert [tile_words(nest, variant.level_index(n), d) for n, d in
            (("filter_spad", "weights"), ("ifmap_spad", "inputs"), ("psum_spad", "outputs"))] == [dims.S, dims.S, 1]
    want = _hand_counts(dims, multicast)
    model = closed_form_counts(nest, variant)
    assert _totals(model, variant) == want
    assert model.macs == dims.macs and model.pes_used == dims.R * dims.P

    weights = rng.standard_normal(dims.R * dims.S).astype(np.float32)
    inputs = rng.standard_normal(dims.H * dims.W).astype(np.float32)
    result = run_engine(nest, variant, weights, inputs)
    assert _totals(result.counts, variant) == want
    assert result.counts.differences(model) == []
    w, x = weights.reshape(dims.R, dims.S), inputs.reshape(dims.H, dims.W)
    direct = np.array([[np.sum(w * x[p:p + dims.R, q:q + dims.S]) for q in range(dims.Q)]
                       for p in range(dims.P)])
    np.testing.assert_allclose(result.outputs.reshape(dims.P, dims.Q), direct, rtol=1e-5, atol=1e-5)


def test_overlap_multicast_is_what_saves_the_buffer_reads(arch):
    """The only difference between the modes is the buffer's ifmap reads (diagonal reuse)."""
    dims = LoopDims(N=1, G=1, M=1, C=1, P=4, Q=4, R=3, S=3, stride=1, H=6, W=6)
    both = {}
    for mode in ("identical", "overlap"):
        variant = _with_multicast(arch, mode)
        nest = build_nest(dims, variant, row_stationary_mapping(
            dims, variant, m=1, n=1, e=4, p=1, q=1, r=1, t=1, layer_name="pe_set"))
        both[mode] = _totals(closed_form_counts(nest, variant), variant)
    differing = {key for key in both["overlap"] if both["overlap"][key] != both["identical"][key]}
    assert differing == {("global_buffer", "inputs")}


# ------------------------------------------------------------------------------------------------
# (b) the chip's published AlexNet parameters
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layer", ["conv3", "conv4", "conv5"])
def test_published_conv3_to_5_are_expressible_with_156_pes(arch, alexnet, layer):
    dims = alexnet.loop_dims(layer, batch=4)
    params = RowStationaryParams(**PUBLISHED[layer])
    mapping = row_stationary_mapping(dims, arch, **PUBLISHED[layer], layer_name=layer)
    nest = build_nest(dims, arch, mapping, layer_name=layer)
    assert nest.total_spatial == params.active_pes(dims) == PUBLISHED_ACTIVE_PES[layer]
    level = arch.level_index
    # per-PE scratchpads as the papers size them
    assert tile_words(nest, level("filter_spad"), "weights") == params.p * params.q * dims.S
    assert tile_words(nest, level("ifmap_spad"), "inputs") == params.q * dims.S
    assert tile_words(nest, level("psum_spad"), "outputs") == params.p
    # the buffer holds what the chip's table says it holds (kB = 1024 bytes, 16-bit words)
    ifmap_kB, psum_kB = PUBLISHED_GLB_KB[layer]
    assert round(tile_words(nest, level("global_buffer"), "inputs") * 2 / 1024, 1) == ifmap_kB
    assert round(tile_words(nest, level("global_buffer"), "outputs") * 2 / 1024, 1) == psum_kB
    assert closed_form_counts(nest, arch).macs == dims.macs


def test_published_conv2_folds_unequally_onto_135_pes(arch, alexnet, rng):
    """The chip's CONV2: a 5 x 27 PE set on 14 columns, as segments of 14 and 13 columns stacked
    on 10 PE rows (a spatial remainder: 5 of the 140 PEs the loops address idle)."""
    dims = alexnet.loop_dims("conv2", batch=1)
    params = RowStationaryParams(**PUBLISHED["conv2"])
    mapping = row_stationary_mapping(dims, arch, **PUBLISHED["conv2"], layer_name="conv2")
    spatial = {(l.dim, l.bound, l.axis) for lm in mapping.levels for l in lm.spatial}
    assert spatial == {("P", 2, "Y"), ("R", 5, "Y"), ("P", 14, "X")}
    nest = build_nest(dims, arch, mapping, layer_name="conv2")
    assert nest.total_spatial == params.active_pes(dims) == 135
    assert nest.slots(len(arch.levels) - 1) == 140
    level = arch.level_index
    assert tile_words(nest, level("filter_spad"), "weights") == params.p * params.q * dims.S
    assert tile_words(nest, level("ifmap_spad"), "inputs") == params.q * dims.S
    # the buffer tiles of the chip's table: 3.8 kB of ifmaps, 91.1 kB of psums (27 ofmap rows, not 28)
    assert round(tile_words(nest, level("global_buffer"), "inputs") * 2 / 1024, 1) == 3.8
    assert round(tile_words(nest, level("global_buffer"), "outputs") * 2 / 1024, 1) == 91.1
    model = closed_form_counts(nest, arch)
    assert model.macs == dims.macs and model.pes_used == 135
    weights = rng.standard_normal(dims.M * dims.C * dims.R * dims.S * dims.G).astype(np.float32)
    inputs = rng.standard_normal(dims.N * dims.G * dims.C * dims.H * dims.W).astype(np.float32)
    assert run_engine(nest, arch, weights, inputs).counts.differences(model) == []


@pytest.mark.parametrize("multicast", ["identical", "overlap"])
def test_unequal_fold_of_one_pe_set_matches_the_hand_derivation(arch, multicast, rng):
    """E = 5 ofmap rows on a 3-column array: segments of 3 and 2 columns. Idle PEs hold nothing
    and no two PEs of the set share a tile they did not share unfolded, so every count is the one
    derived by hand for the unfolded R x E set."""
    dims = LoopDims(N=1, G=1, M=1, C=1, P=5, Q=4, R=3, S=3, stride=1, H=7, W=6)
    index = arch.level_index("ifmap_spad")
    levels = list(_with_multicast(arch, multicast).levels)
    levels[index] = dataclasses.replace(levels[index], fanout_x=3)
    narrow = dataclasses.replace(arch, levels=tuple(levels))
    mapping = row_stationary_mapping(dims, narrow, m=1, n=1, e=5, p=1, q=1, r=1, t=1, layer_name="fold")
    spatial = {(l.dim, l.bound, l.axis) for lm in mapping.levels for l in lm.spatial}
    assert spatial == {("P", 2, "Y"), ("R", 3, "Y"), ("P", 3, "X")}
    nest = build_nest(dims, narrow, mapping, layer_name="fold")
    assert nest.total_spatial == dims.R * dims.P and nest.slots(len(narrow.levels) - 1) == 18
    want = _hand_counts(dims, multicast)
    model = closed_form_counts(nest, narrow)
    assert _totals(model, narrow) == want
    weights = rng.standard_normal(dims.R * dims.S).astype(np.float32)
    inputs = rng.standard_normal(dims.H * dims.W).astype(np.float32)
    result = run_engine(nest, narrow, weights, inputs)
    assert _totals(result.counts, narrow) == want
    w, x = weights.reshape(dims.R, dims.S), inputs.reshape(dims.H, dims.W)
    direct = np.array([[np.sum(w * x[p:p + dims.R, q:q + dims.S]) for q in range(dims.Q)]
                       for p in range(dims.P)])
    np.testing.assert_allclose(result.outputs.reshape(dims.P, dims.Q), direct, rtol=1e-5, atol=1e-5)


def test_published_conv1_runs_as_full_passes_and_a_remainder_pass(arch, alexnet, rng):
    """The chip's CONV1: E = 55 ofmap rows in passes of e = 7 (a temporal remainder: 7 passes on
    11 x 14 = 154 PEs, then 6 rows on 11 x 12 = 132 PEs). Its m = 96 filters of 11 x 11 (11,616
    words) exceed the buffer's 4,096-word filter partition: the mapping holds only with the chip's
    filter streaming (one processing pass, p*t = 32 filters = 3,872 words, at a time)."""
    dims = alexnet.loop_dims("conv1", batch=1)
    with pytest.raises(RowStationaryError, match=r"weights tile at 'global_buffer' is 11616 words.*stream_filters") as info:
        row_stationary_mapping(dims, arch, **PUBLISHED["conv1"], layer_name="conv1")
    assert info.value.parameter == "m"
    mapping = row_stationary_mapping(dims, arch, **PUBLISHED["conv1"], layer_name="conv1", stream_filters=True)
    nest = build_nest(dims, arch, mapping, layer_name="conv1", check_capacity_fit=False)
    assert [(part.dims.P, first, part.total_spatial) for part, d, first in nest.parts] == [(49, 0, 154), (6, 49, 132)]
    assert nest.total_spatial == RowStationaryParams(**PUBLISHED["conv1"]).active_pes(dims) == 154
    level = arch.level_index
    # the buffer's ifmap tile of the chip's table: 35 rows x 227 columns of one channel = 15.5 kB
    assert round(tile_words(nest, level("global_buffer"), "inputs") * 2 / 1024, 1) == 15.5
    model = closed_form_counts(nest, arch)
    assert model.macs == dims.macs and model.pes_used == 154
    weights = rng.standard_normal(dims.M * dims.C * dims.R * dims.S).astype(np.float32)
    inputs = rng.standard_normal(dims.N * dims.C * dims.H * dims.W).astype(np.float32)
    assert run_engine(nest, arch, weights, inputs).counts.differences(model) == []


def test_streaming_filters_needs_one_pass_to_fit(arch):
    """p*t*q*r*R*S = 16*2*12*1*12*1 = 4608 filter words in one pass: over the 4096-word partition."""
    dims = LoopDims(N=1, G=1, M=32, C=12, P=7, Q=7, R=12, S=1, stride=1, H=18, W=7)
    with pytest.raises(RowStationaryError, match=r"one processing pass's filters.* = 4608 words") as info:
        row_stationary_mapping(dims, arch, m=32, n=1, e=7, p=16, q=12, r=1, t=2, layer_name="tall",
                               stream_filters=True)
    assert info.value.parameter == "p"


def test_nearest_expressible_changes_as_little_as_possible(arch, alexnet):
    dims = alexnet.loop_dims("conv1", batch=4)
    choice = nearest_row_stationary(dims, arch, RowStationaryParams(**PUBLISHED["conv1"]), "conv1")
    changed = {k for k, v in choice.params.as_dict().items() if v != PUBLISHED["conv1"][k]}
    # without streaming, m = 96 needs 96 x 11 x 11 filter words in the 4096-word filter
    # partition; m = p*t = 32 is the nearest that fits, and e = 7 stays (a last pass of 6 rows)
    assert changed == {"m"} and choice.params.m == 32 and choice.active_pes == 154
    build_nest(dims, arch, choice.mapping)


@pytest.mark.parametrize("change, parameter", [
    (dict(p=25), "p"),  # psum spad: 24 words
    (dict(q=5), "q"),  # ifmap spad: q * S = 15 > 12 words
    (dict(n=3), "n"),  # does not divide the batch of 4
    (dict(m=48), "m"),  # not a multiple of p * t = 64
    (dict(t=8), "m"),  # p * t = 128 does not divide m = 64
])
def test_bad_parameters_name_the_parameter(arch, alexnet, change, parameter):
    dims = alexnet.loop_dims("conv3", batch=4)
    with pytest.raises(RowStationaryError) as info:
        row_stationary_mapping(dims, arch, **{**PUBLISHED["conv3"], **change}, layer_name="conv3")
    assert info.value.parameter == parameter
    assert f"{parameter}=" in str(info.value) and "'conv3'" in str(info.value)


def test_sets_that_do_not_fit_the_array_are_rejected(arch, alexnet):
    dims = alexnet.loop_dims("conv3", batch=4)
    with pytest.raises(RowStationaryError, match=r"r\*t = 2\*4 PE sets") as info:
        row_stationary_mapping(dims, arch, **{**PUBLISHED["conv3"], "r": 2}, layer_name="conv3")
    assert info.value.parameter == "t"


def test_buffer_overflow_is_reported(arch, alexnet):
    dims = alexnet.loop_dims("conv3", batch=4)
    with pytest.raises(RowStationaryError, match="global_buffer") as info:
        row_stationary_mapping(dims, arch, **{**PUBLISHED["conv3"], "m": 128}, layer_name="conv3")
    assert info.value.parameter == "m"


def test_other_architectures_are_refused(alexnet):
    dims = alexnet.loop_dims("conv3", batch=4)
    with pytest.raises(RowStationaryError, match="eyeriss_v1") as info:
        row_stationary_mapping(dims, load_architecture("eyeriss_isca16"), **PUBLISHED["conv3"],
                               layer_name="conv3")
    assert info.value.parameter == "arch"


def test_wide_sets_fold_onto_the_rows(arch):
    """e = 28 > 14 columns: two segments of 14 stacked on Y (R = 3 -> 6 rows)."""
    dims = LoopDims(N=1, G=1, M=4, C=2, P=28, Q=28, R=3, S=3, stride=1, H=30, W=30)
    mapping = row_stationary_mapping(dims, arch, m=4, n=1, e=28, p=4, q=2, r=1, t=1, layer_name="wide")
    spatial = {(l.dim, l.bound, l.axis) for lm in mapping.levels for l in lm.spatial}
    assert spatial == {("P", 2, "Y"), ("R", 3, "Y"), ("P", 14, "X")}
    assert build_nest(dims, arch, mapping).total_spatial == 3 * 28


# ------------------------------------------------------------------------------------------------
# (c) the default search
# ------------------------------------------------------------------------------------------------
def _check_choice(dims, arch, name, choice):
    nest = build_nest(dims, arch, choice.mapping, layer_name=name)  # fits every level
    array = arch.levels[arch.level_index("ifmap_spad")]
    assert nest.total_spatial == choice.active_pes == choice.params.active_pes(dims)
    assert 1 <= choice.active_pes <= array.fanout
    assert closed_form_counts(nest, arch).macs == dims.macs


def test_default_gives_a_valid_mapping_for_every_alexnet_layer(arch, alexnet):
    names = [n for n in alexnet.layer_names if alexnet.loop_dims(n) is not None]
    assert len(names) == 8  # five conv, three FC
    for name in names:
        dims = alexnet.loop_dims(name, batch=4)
        choice = default_row_stationary(dims, arch, name)
        _check_choice(dims, arch, name, choice)
        if name in PUBLISHED_ACTIVE_PES:  # as many PEs as the chip, no more DRAM traffic
            published = build_nest(dims, arch, row_stationary_mapping(
                dims, arch, **PUBLISHED[name], layer_name=name))
            counts = closed_form_counts(published, arch)
            dram = sum(counts.total(0, d, a) for d in ("weights", "inputs", "outputs")
                       for a in ("reads", "fills", "updates"))
            assert choice.active_pes == PUBLISHED_ACTIVE_PES[name]
            assert choice.dram_words <= dram


@pytest.mark.parametrize("name", ["conv1_1", "conv4_2", "fc6"])
def test_default_gives_a_valid_mapping_for_vgg16(arch, name):
    network = networks.get("vgg16")
    dims = network.loop_dims(name, batch=1)
    _check_choice(dims, arch, name, default_row_stationary(dims, arch, name))


def test_default_is_deterministic(arch, alexnet):
    dims = alexnet.loop_dims("fc8", batch=4)
    assert default_row_stationary(dims, arch, "fc8") == default_row_stationary(dims, arch, "fc8")


def test_default_refuses_a_filter_taller_than_the_array(arch):
    dims = LoopDims(N=1, G=1, M=2, C=1, P=2, Q=2, R=13, S=1, stride=1, H=14, W=2)
    with pytest.raises(RowStationaryError, match=r"'tall'.*R=13.*12 PE rows.*no row-stationary parameters fit") as info:
        default_row_stationary(dims, arch, "tall")
    assert (info.value.layer, info.value.parameter, info.value.value) == ("tall", "R", 13)


# ------------------------------------------------------------------------------------------------
# (d) the validation script
# ------------------------------------------------------------------------------------------------
def test_validate_eyeriss_quick_smoke(tmp_path):
    run = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    table = pd.read_csv(tmp_path / "validation.csv")
    expected = {
        "layer", "mapping", "expressible", "note", "m", "n", "e", "p", "q", "r", "t",
        "active_pes", "active_pes_published", "active_pes_ratio", "macs_M", "macs_M_published",
        "macs_ratio", "glb_MB", "glb_MB_published", "glb_ratio", "dram_MB",
        "dram_uncompressed_MB_published_approx", "dram_ratio", "dram_compressed_MB_published",
        "engine_agrees",
    }
    assert expected <= set(table.columns)
    row = table.set_index("layer").loc["conv3"]
    assert row.mapping == "published" and bool(row.expressible) and bool(row.engine_agrees)
    assert row.active_pes == row.active_pes_published == 156
    assert row.macs_ratio == pytest.approx(1.0, abs=1e-3)
    assert (tmp_path / "validation.png").stat().st_size > 0
    assert (tmp_path / "manifest.json").is_file()
