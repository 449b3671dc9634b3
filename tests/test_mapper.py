"""The mapper: exact against brute force over its space, valid mappings whose engine counts equal the
closed form, dataflow constraints on the returned mappings, determinism and clear errors."""
from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pytest

from networks.layers import LoopDims
from sim import mapper as mapper_module
from sim.config import load_architecture
from sim.dataflow import DATAFLOWS, equal_area_architecture, get_dataflow
from sim.energy import access_energy
from sim.engine import run_engine
from sim.mapper import ORDERS, NoValidMappingError, _build_space, _check_shape, _rows, map_layer
from sim.mapping import RELEVANT_DIMS, build_nest
from sim.mapspace import arch_tables, decode, evaluate
from sim.model import closed_form_counts
from sim.rowstationary import row_stationary_mapping

DATA = Path(__file__).parent / "data"


def conv(N=1, M=4, C=4, P=4, Q=4, R=3, S=3, stride=1, G=1) -> LoopDims:
    return LoopDims(N=N, G=G, M=M, C=C, P=P, Q=Q, R=R, S=S, stride=stride,
                    H=(P - 1) * stride + R, W=(Q - 1) * stride + S)


def model_energy(dims, arch, mapping) -> tuple[float, int]:
    counts = closed_form_counts(build_nest(dims, arch, mapping), arch)
    return float(access_energy(counts, arch).energy.sum()), counts.cycles_compute


_BRUTE: dict = {}


def brute_force(hw, flow_name, dims):
    """Every candidate of the mapper's space (sim.mapper._build_space), each evaluated on its own
    (no bounds, no pruning): (energies, cycles, encoded candidates)."""
    key = (hw, flow_name, dims)
    if key not in _BRUTE:
        arch = load_architecture(hw)
        flow = get_dataflow(flow_name)
        space = _build_space(dims, arch, flow, _check_shape(arch, "t"), "t")
        encoded = []
        for a in range(len(space.dram)):
            ext = space.sizes // space.dram[a]
            for i in range(len(space.inner_y)):
                if not np.any(ext % (space.inner_y[i] * space.inner_x[i] * space.inner_pe[i])):
                    encoded += [_rows(space, a, i, o) for o in range(len(ORDERS))]
        loops = np.stack(encoded)
        result = evaluate(dims, arch_tables(arch), loops)
        assert result.fits.all()  # the space only holds mappings that fit
        _BRUTE[key] = (result.energy, result.cycles, loops)
    return _BRUTE[key]


SMALL_CASES = [
    ("eyeriss_v1", "RS", conv(M=4, C=4, P=4, Q=4, R=3, S=3)),
    ("eyeriss_v1", "RS", conv(N=2, M=6, C=2, P=3, Q=3, R=2, S=2, stride=2)),
    ("eyeriss_isca16", "RS", conv(M=8, C=4, P=2, Q=4, R=1, S=1)),
    ("eyeriss_isca16", "WS", conv(M=4, C=2, P=2, Q=4, R=3, S=2)),
    ("eyeriss_isca16", "OSB", conv(N=2, M=4, C=2, P=2, Q=2, R=2, S=2)),
]


@pytest.mark.parametrize("objective", ["energy", "cycles", "edp"])
@pytest.mark.parametrize("hw, flow, dims", SMALL_CASES)
def test_mapper_optimum_equals_brute_force_over_its_space(hw, flow, dims, objective):
    arch = load_architecture(hw)
    energy, cycles, loops = brute_force(hw, flow, dims)
    mapper_module.clear_cache()
    result = map_layer(dims, arch, dataflow=flow, objective=objective)
    assert result.exact and result.gap == 0.0
    assert result.candidates_evaluated <= len(loops)
    value = {"energy": energy, "cycles": cycles.astype(float), "edp": energy * cycles}[objective]
    assert np.isclose(result.objective_value, value.min(), rtol=1e-12)
    # the brute force's evaluation is the model's (spot check with sim.model itself)
    rng = np.random.default_rng(0)
    for row in rng.choice(len(loops), size=3, replace=False):
        mapping = decode(loops[row], arch, source="brute force")
        assert np.isclose(model_energy(dims, arch, mapping)[0], energy[row], rtol=1e-12)


def test_budget_fallback_reports_a_quality_bound():
    arch = load_architecture("eyeriss_v1")
    dims = conv(N=2, M=16, C=8, P=8, Q=8, R=3, S=3)
    mapper_module.clear_cache()
    full = map_layer(dims, arch)
    mapper_module.clear_cache()
    limited = map_layer(dims, arch, budget=1)
    assert full.exact and not limited.exact
    assert limited.lower_bound <= full.energy <= limited.energy
    assert limited.gap == pytest.approx(limited.energy / limited.lower_bound - 1)


@pytest.mark.parametrize("hw, flow, dims", SMALL_CASES[:3] + [("eyeriss_like_timeloop", "RS", conv(M=4, C=2, P=3, Q=3))])
def test_returned_mapping_is_valid_and_engine_counts_equal_closed_form(hw, flow, dims):
    arch = load_architecture(hw)
    mapper_module.clear_cache()
    result = map_layer(dims, arch, dataflow=flow, layer_name="small")
    nest = build_nest(dims, arch, result.mapping, layer_name="small")  # raises if invalid
    rng = np.random.default_rng(1)
    w = rng.standard_normal(dims.G * dims.M * dims.C * dims.R * dims.S).astype(np.float32)
    x = rng.standard_normal(dims.N * dims.G * dims.C * dims.H * dims.W).astype(np.float32)
    engine = run_engine(nest, arch, w, x).counts
    assert engine.differences(result.counts) == []
    assert result.counts.differences(closed_form_counts(nest, arch)) == []
    assert result.energy == pytest.approx(model_energy(dims, arch, result.mapping)[0], rel=1e-12)
    assert result.utilization == result.pes_used / arch.mac_units


def _loops(mapping, arch, level_filter):
    return [(loop, index) for index, lm in enumerate(mapping.levels) if level_filter(index)
            for loop in (*lm.temporal, *lm.spatial)]


@pytest.mark.parametrize("flow", list(DATAFLOWS))
def test_dataflow_constraints_hold_on_returned_mappings(flow):
    base = load_architecture("eyeriss_isca16")
    arch = equal_area_architecture(base, flow, pes=16)
    dims = conv(N=2, M=8, C=4, P=4, Q=4, R=3, S=3)
    definition = get_dataflow(flow)
    mapper_module.clear_cache()
    result = map_layer(dims, arch, layer_name="c")
    assert result.dataflow == flow  # the equal-area architecture carries its dataflow
    spatial = [loop for lm in result.mapping.levels for loop in lm.spatial]
    for loop in spatial:
        allowed = definition.spatial_y + definition.forced_spatial_y if loop.axis == "Y" else definition.spatial_x
        assert loop.dim in allowed, (flow, loop)
    pe_loops = [loop for loop, _ in _loops(result.mapping, arch, lambda i: i >= 2)]
    assert {loop.dim for loop in pe_loops} <= set(definition.pe_loops)
    for d in definition.forced_spatial_y:
        assert np.prod([l.bound for l in spatial if l.dim == d and l.axis == "Y"]) == getattr(dims, d)
    rf = 2
    counts = result.counts
    if flow == "NLR":  # no register file: no RF traffic at all
        assert counts.storage[rf].sum() == 0 and arch.levels[rf].capacity_words == 0
    if flow == "WS":
        # a weight loaded into a PE stays for every PE-level iteration: reads = fills x iterations at least
        iterations = int(np.prod([l.bound for l in pe_loops]))
        assert all(l.dim not in RELEVANT_DIMS["weights"] for l in pe_loops)
        assert counts.per_instance(rf, "weights", "fills") * iterations <= counts.per_instance(rf, "weights", "reads")
    if flow in ("OSA", "OSB", "OSC"):
        # a partial sum stays in its PE while the PE loops (channels, filter taps) run
        assert all(l.dim not in RELEVANT_DIMS["outputs"] for l in pe_loops)
        iterations = int(np.prod([l.bound for l in pe_loops]))
        assert counts.per_instance(rf, "outputs", "updates") >= iterations * (
            counts.per_instance(rf, "outputs", "fills") + 1) - iterations
    if flow == "IS":
        assert all(l.dim not in RELEVANT_DIMS["inputs"] for l in pe_loops)


def test_mapper_is_deterministic():
    arch = load_architecture("eyeriss_v1")
    dims = conv(N=2, M=16, C=8, P=6, Q=6, R=3, S=3)
    mapper_module.clear_cache()
    first = map_layer(dims, arch)
    mapper_module.clear_cache()
    began = time.perf_counter()
    second = map_layer(dims, arch)
    wall_s = time.perf_counter() - began
    assert first.mapping == second.mapping and first.energy == second.energy
    assert 0 < second.search_s <= wall_s


def test_mapper_matches_or_beats_the_published_eyeriss_conv3_mapping():
    """JSSC17's AlexNet CONV3 mapping (m=64, n=4, e=13, p=16, q=4, r=1, t=4, batch 4) lies in the RS
    space, so the mapper's optimum cannot cost more under the same model."""
    with open(DATA / "eyeriss_alexnet_jssc2017.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["layer"] == "CONV3")
    dims = conv(N=int(row["batch_N"]), M=int(row["M"]), C=int(row["C"]), P=int(row["E"]), Q=int(row["F"]),
                R=int(row["R"]), S=int(row["S"]), stride=int(row["U"]))
    arch = load_architecture("eyeriss_v1")
    published = row_stationary_mapping(dims, arch, layer_name="CONV3", **{k: int(row[k]) for k in "mnepqrt"})
    mapper_module.clear_cache()
    result = map_layer(dims, arch, layer_name="CONV3")
    assert result.exact
    assert result.energy <= model_energy(dims, arch, published)[0]


def test_filter_taller_than_the_array_names_layer_and_constraint():
    arch = load_architecture("eyeriss_v1")  # 12 PE rows
    with pytest.raises(NoValidMappingError) as info:
        map_layer(conv(M=2, C=2, P=2, Q=2, R=13, S=3), arch, layer_name="tall")
    assert info.value.constraint == "spatial:R" and info.value.layer == "tall"
    assert "'tall'" in str(info.value) and "R=13" in str(info.value) and "12" in str(info.value)


def test_tile_that_cannot_fit_names_the_level():
    arch = load_architecture("eyeriss_v1")  # filter spad 224 words: RS keeps a whole filter row S in it
    with pytest.raises(NoValidMappingError) as info:
        map_layer(conv(M=2, C=2, P=2, Q=300, R=3, S=300), arch, layer_name="wide")
    assert info.value.constraint == "capacity:pe"
    assert "ifmap_spad" in str(info.value) or "filter_spad" in str(info.value)


def test_unknown_dataflow_and_objective_are_usage_errors():
    from sim.errors import UsageError

    arch = load_architecture("eyeriss_v1")
    with pytest.raises(UsageError, match="RS, WS"):
        map_layer(conv(), arch, dataflow="XS")
    with pytest.raises(UsageError, match="energy, cycles, edp"):
        map_layer(conv(), arch, objective="power")


def test_equal_area_rule_keeps_the_storage_area_of_row_stationary():
    from sim.dataflow import RF_AREA_PER_SRAM_BYTE

    base = load_architecture("eyeriss_isca16")
    for pes in (256, 512, 1024):
        areas = set()
        for flow in DATAFLOWS:
            arch = equal_area_architecture(base, flow, pes=pes)
            rf, buffer = arch.levels[2], arch.levels[1]
            assert rf.fanout == pes and arch.dataflow == flow
            areas.add(pes * rf.capacity_words * 2 * RF_AREA_PER_SRAM_BYTE + buffer.capacity_words * 2)
        rs = equal_area_architecture(base, "RS", pes=256)
        assert rs.levels[1].capacity_words == base.levels[1].capacity_words  # 128 kB at 256 PEs, as ISCA16
        assert len(areas) == 1 and areas.pop() == pes * 512 * RF_AREA_PER_SRAM_BYTE + pes * 512


def test_cli_run_searches_by_default_and_records_the_policy(tmp_path):
    import json

    import pandas as pd

    from sim.cli import main

    layer = "N=1,C=8,M=16,P=6,Q=6,R=3,S=3,stride=1"
    out = tmp_path / "search"
    assert main(["run", "--layer", layer, "--hw", "eyeriss_v1", "--method", "model", "--out", str(out)]) == 0
    row = pd.read_csv(out / "layers.csv").iloc[0]
    assert row.mapper == "search" and row.mapping_dataflow == "RS" and bool(row.mapping_exact)
    assert row.mapping_candidates > 0 and row.mapping_gap == 0 and row.mapping_search_s >= 0
    inputs = json.loads((out / "manifest.json").read_text())["inputs"]
    assert inputs["mapper"] == "search" and inputs["dataflow"] == "RS"
    mapper_module.clear_cache()
    expected = map_layer(conv(M=16, C=8, P=6, Q=6), load_architecture("eyeriss_v1"))
    assert row.energy_total == pytest.approx(expected.energy)

    out = tmp_path / "default"
    assert main(["run", "--layer", layer, "--hw", "eyeriss_v1", "--method", "model", "--mapper", "default",
                 "--out", str(out)]) == 0
    row = pd.read_csv(out / "layers.csv").iloc[0]
    assert row.mapper == "default" and row.energy_total >= expected.energy
    assert json.loads((out / "manifest.json").read_text())["inputs"]["mapper"] == "default"


def test_cli_unmappable_layer_is_one_line_and_exit_2(tmp_path, capsys):
    from sim.cli import main

    out = tmp_path / "tall"
    assert main(["run", "--layer", "C=2,M=2,P=2,Q=2,R=13,S=3", "--hw", "eyeriss_v1", "--method", "model",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("eapsim: error:") and "R=13" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    with pytest.raises(SystemExit) as info:
        main(["run", "--layer", "C=2,M=2,P=2,Q=2,R=1,S=1", "--dataflow", "XS", "--out", str(out)])
    assert info.value.code == 2


def test_config_dataflow_key_is_validated(tmp_path):
    from sim.config import load_architecture as load
    from sim.config import preset_path
    from sim.errors import ConfigError

    text = preset_path("eyeriss_isca16").read_text().replace('dataflow = "RS"', 'dataflow = "WSS"')
    path = tmp_path / "hw.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(path)
    message = str(info.value)
    assert str(path) in message and "dataflow" in message and "WSS" in message and '"WS"' in message
    assert load("eyeriss_v1").dataflow == "RS"


def test_screen_kernel_equals_its_numpy_twin():
    """sim.mapspace.screen_inner (numba) keeps exactly the candidates whose NumPy bound
    (sim.mapper._inner_bounds + _revisit_bounds) is within the limit."""
    from sim.mapper import _IRRELEVANT_MASK, _MOVES_MASK, _ORDER_TABLE, _inner_bounds, _revisit_bounds
    from sim.mapspace import screen_inner

    arch = load_architecture("eyeriss_v1")
    dims = conv(N=4, M=16, C=8, P=6, Q=6, R=3, S=3)
    space = _build_space(dims, arch, get_dataflow("RS"), 2, "t")
    base, per_visit = _inner_bounds(dims, arch, 2, space)
    prod = space.inner_y * space.inner_x * space.inner_pe
    rng = np.random.default_rng(0)
    for a in rng.choice(len(space.dram), size=20, replace=False):
        ext = space.sizes // space.dram[a]
        divides = np.all(ext[None, :] % prod == 0, axis=1)
        fg = ext[None, :] // np.where(divides[:, None], prod, 1)
        bound = 5.0 + base[:, None] + _revisit_bounds(space.dram[a], space.dram_order[a], fg, per_visit)
        limit = float(np.median(bound[divides]))
        keep = np.zeros((len(prod), len(ORDERS)), bool)
        kernel_bound = np.zeros((len(prod), len(ORDERS)))
        screen_inner(space.dram[a], space.dram_order[a], ext, prod, base, per_visit, _ORDER_TABLE, _MOVES_MASK,
                     _IRRELEVANT_MASK, 5.0, 1.0, limit, True, keep, kernel_bound)
        assert (keep == (divides[:, None] & (bound <= limit))).all()
        assert np.allclose(kernel_bound[divides], bound[divides], rtol=1e-12)
        assert keep.any() and not keep.all()
