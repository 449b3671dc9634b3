"""The Timeloop reference case, reproduced exactly by the closed form.

VGG-16 conv (N=1, C=128, M=256, P=Q=56, R=S=3, stride 1) on ``hwconfigs/eyeriss_like_timeloop.toml``
with the mapping of /work/shared/reference/timeloop_counting.md (``tests/data/
timeloop_vgg_conv_mapping.toml``); expected counts from ``tests/data/timeloop_vgg_conv_eyeriss.csv``.
The engine runs once on the full case (~4 s) and must equal the closed form on every counter.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from networks.layers import LoopDims
from sim.config import load_architecture
from sim.counts import ACTIONS
from sim.energy import access_energy, energy_breakdown
from sim.engine import run_engine
from sim.mapping import build_nest, load_mapping
from sim.model import closed_form_counts, tile_words

DATASPACE = {"Weights": "weights", "Inputs": "inputs", "Outputs": "outputs"}
DATA_DIR = Path(__file__).parent / "data"
CYCLES = 5_505_024
PES = 168


def vgg_dims(C: int = 128, M: int = 256) -> LoopDims:
    return LoopDims(N=1, G=1, M=M, C=C, P=56, Q=56, R=3, S=3, stride=1, H=58, W=58)


@pytest.fixture(scope="module")
def arch():
    return load_architecture("eyeriss_like_timeloop")


@pytest.fixture(scope="module")
def case(arch):
    mapping = load_mapping(DATA_DIR / "timeloop_vgg_conv_mapping.toml", arch)
    nest = build_nest(vgg_dims(), arch, mapping, layer_name="vgg_conv")
    return nest, closed_form_counts(nest, arch)


@pytest.fixture(scope="module")
def reference_rows():
    with open(DATA_DIR / "timeloop_vgg_conv_eyeriss.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_mapping_file_is_the_documented_nest(case):
    nest, _ = case
    got = [(l.dim, l.bound, l.axis, nest.mapping.levels[l.level].level) for l in nest.loops]
    assert got == [
        ("Q", 4, None, "DRAM"), ("C", 4, None, "DRAM"), ("P", 7, None, "DRAM"), ("M", 4, None, "DRAM"),
        ("M", 2, None, "shared_glb"), ("C", 4, None, "shared_glb"), ("P", 8, None, "shared_glb"),
        ("Q", 14, "X", "shared_glb"), ("M", 4, "Y", "shared_glb"), ("S", 3, "Y", "shared_glb"),
        ("R", 3, None, "weights_spad"), ("C", 8, None, "weights_spad"),
        ("M", 8, None, "psum_spad"),
    ]


def test_every_csv_count_is_reproduced(arch, case, reference_rows):
    """Utilised instances, per-instance and total reads/fills/updates, and utilised capacity (the
    tile size) of every (level, dataspace) row; nothing kept is missing from the CSV."""
    nest, counts = case
    seen = set()
    problems = []
    for row in reference_rows:
        if row["level"] == "mac":
            assert int(row["utilized_instances"]) == counts.pes_used
            continue
        li = arch.level_index(row["level"])
        d = DATASPACE[row["dataspace"]]
        seen.add((row["level"], d))
        if counts.instances[li] != int(row["utilized_instances"]):
            problems.append(f"{row['level']} instances {counts.instances[li]} != {row['utilized_instances']}")
        for action in ACTIONS:
            for kind, got in (("per_instance", counts.per_instance(li, d, action)), ("total", counts.total(li, d, action))):
                want = int(row[f"{action}_{kind}"])
                if got != want:
                    problems.append(f"{row['level']} {d} {action} {kind}: {got} != {want}")
        if tile_words(nest, li, d) != int(row["utilized_capacity_words"]):
            problems.append(f"{row['level']} {d} tile {tile_words(nest, li, d)} != {row['utilized_capacity_words']}")
        assert arch.levels[li].block_words == int(row["block_words"])
    assert not problems, "\n".join(problems)
    kept = {(level.name, d) for level in arch.levels for d in level.keeps}
    assert seen == kept


def test_cycles_and_utilization(arch, case):
    """No level has a bandwidth limit, so cycles = compute cycles = MACs / utilised MACs."""
    nest, counts = case
    assert counts.macs == nest.dims.macs == 924_844_032
    assert counts.pes_used == PES == arch.mac_units
    assert counts.cycles_compute == CYCLES == counts.macs // PES
    assert counts.pes_used / arch.mac_units == 1.0
    assert all(level.read_bandwidth_words_per_cycle is None and level.write_bandwidth_words_per_cycle is None
               for level in arch.levels)


def csv_energy(reference_rows) -> tuple[dict[tuple[str, str], float], float]:
    """Energy per (level, dataspace) and in total, from the CSV's own counts and per-vector energies,
    with timeloop_counting.md's formula: instances x (ceil(reads/B) E_read + ceil(fills/B) E_write +
    ceil(updates/B) E_write), plus MACs x E_mac (key ("MAC", "compute"))."""
    parts = {}
    for row in reference_rows:
        if row["level"] == "mac":
            parts["MAC", "compute"] = float(row["energy_read_pJ_per_vector"]) * 924_844_032
            continue
        block = int(row["block_words"])
        e_read, e_write = float(row["energy_read_pJ_per_vector"]), float(row["energy_write_pJ_per_vector"])
        vectors = {a: math.ceil(int(row[f"{a}_per_instance"]) / block) for a in ACTIONS}
        parts[row["level"], DATASPACE[row["dataspace"]]] = int(row["utilized_instances"]) * (
            vectors["reads"] * e_read + vectors["fills"] * e_write + vectors["updates"] * e_write
        )
    return parts, sum(parts.values())


def _check_energy(table, reference_rows) -> None:
    parts, total = csv_energy(reference_rows)
    for (level, d), want in parts.items():
        got = table.energy[(table.level == level) & (table.data_type == d)].sum()
        assert got == pytest.approx(want, rel=1e-3), (level, d)
    assert table.energy.sum() == pytest.approx(total, rel=1e-3)
    assert energy_breakdown(table)["energy_total"] == pytest.approx(total, rel=1e-3)


def test_energy_matches_csv_formula(arch, case, reference_rows):
    """``sim.energy`` on the closed-form counts with the preset as shipped, per (level, dataspace) and
    in total, within 0.1% of the CSV formula. Timeloop reports no network energy: the preset's NoC
    energy must add nothing."""
    _, counts = case
    table = access_energy(counts, arch)
    assert table.energy[table.level_class == "NoC"].sum() == 0.0
    _check_energy(table, reference_rows)


def test_engine_equals_closed_form_on_full_reference_case(arch, case):
    """One engine run on the full reference case (924.8 M MACs, ~4 s): every counter equals the
    closed form's (hence the CSV's), and the computed layer output is right at a few pixels."""
    nest, model = case
    dims = nest.dims
    rng = np.random.default_rng(7)
    w = rng.standard_normal(dims.M * dims.C * 9).astype(np.float32)
    x = rng.standard_normal(dims.C * dims.H * dims.W).astype(np.float32)
    result = run_engine(nest, arch, w, x)
    assert result.counts.differences(model) == []
    wt = w.reshape(dims.M, dims.C, 3, 3).astype(np.float64)
    xt = x.reshape(dims.C, dims.H, dims.W).astype(np.float64)
    for m, p, q in ((0, 0, 0), (255, 55, 55), (100, 17, 40)):
        want = float((wt[m] * xt[:, p:p + 3, q:q + 3]).sum())
        assert result.outputs[0, 0, m, p, q] == pytest.approx(want, rel=1e-4, abs=1e-3)
