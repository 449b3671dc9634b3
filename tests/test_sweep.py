"""Design-space sweeps (sim/sweep.py): validation before work, point values against the plain
simulation path, equal area by hand, resumability after SIGKILL, Dask against local, plots."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import networks
from sim.cli import main
from sim.config import parse_architecture
from sim.errors import ConfigError
from sim.simulate import simulate_network
from sim.sweep import POINT_FORMAT, evaluate_point, load_sweep, point_key, run_sweep
from sim.sweep_plots import pareto_front

SMALL = """format_version = 1
name = "small"
base = "eyeriss_v1"
networks = ["lenet5"]
batch = [1, 2]
[vary]
"level[ifmap_spad].fanout_x" = [7, 14]
"level[filter_spad].capacity_words" = { start = 56, stop = 448, factor = 2 }
"""


def write(tmp_path: Path, text: str, name: str = "sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- the sweep file ------------------------------------------------------------------------------

def test_points_are_the_product_of_the_axes_with_ranges_expanded(tmp_path):
    sweep = load_sweep(write(tmp_path, SMALL))
    assert len(sweep.points) == 2 * 2 * 4  # batch x fanout_x x (56, 112, 224, 448)
    capacities = sorted({p.varied["level[filter_spad].capacity_words"] for p in sweep.points})
    assert capacities == [56, 112, 224, 448]
    point = sweep.points[0]
    assert point.task.config["level"][2]["fanout_x"] == point.varied["level[ifmap_spad].fanout_x"]
    assert point.task.config["level"][3]["capacity_words"] == point.varied["level[filter_spad].capacity_words"]
    assert len({p.task.key for p in sweep.points}) == len(sweep.points)


def test_arithmetic_range_includes_stop_and_level_by_index(tmp_path):
    text = SMALL.replace('"level[filter_spad].capacity_words" = { start = 56, stop = 448, factor = 2 }',
                         '"level[3].capacity_words" = { start = 100, stop = 300, step = 100 }')
    sweep = load_sweep(write(tmp_path, text))
    assert sorted({p.varied["level[3].capacity_words"] for p in sweep.points}) == [100, 200, 300]


@pytest.mark.parametrize("entry, field, words", [
    ('"level[filter_spad].capacity_wrds" = [64]', "level[filter_spad].capacity_wrds", "did you mean 'level[filter_spad].capacity_words'"),
    ('"level[filter_spads].capacity_words" = [64]', "level[filter_spads].capacity_words", "no level named 'filter_spads'"),
    ('"clock_mhzz" = [100.0]', "clock_mhzz", "did you mean 'clock_mhz'"),
    ('"level[filter_spad].capacity_words" = { start = 512, stop = 64, step = 64 }', "vary.level[filter_spad].capacity_words", "empty range"),
    ('"level[filter_spad].capacity_words" = []', "vary.level[filter_spad].capacity_words", "empty list"),
    ('"level[ifmap_spad].fanout_x" = ["14"]', "level[2].fanout_x", "is a string"),
    ('"level[ifmap_spad].fanout_x" = [14.5]', "level[2].fanout_x", "is a float"),
])
def test_malformed_sweep_rejected_before_any_work(tmp_path, entry, field, words):
    path = write(tmp_path, SMALL.split("[vary]")[0] + "[vary]\n" + entry + "\n")
    out = tmp_path / "out"
    with pytest.raises(ConfigError) as caught:
        load_sweep(path)
    assert caught.value.field == field
    assert field in str(caught.value) and words in str(caught.value) and str(path) in str(caught.value)
    # The command line: one line, exit code 2, nothing written.
    assert main(["sweep", str(path), "--out", str(out), "--no-progress"]) == 2
    assert not out.exists()


@pytest.mark.parametrize("text, field", [
    (SMALL.replace('networks = ["lenet5"]', 'networks = ["lenet6"]'), "networks"),
    (SMALL.replace("batch = [1, 2]", "batch = [0]"), "batch"),
    (SMALL.replace("batch = [1, 2]", 'mapping = ["row_stationery"]'), "mapping"),
    (SMALL.replace('name = "small"', 'name = "small"\nobjectiv = "edp"'), "objectiv"),
    (SMALL + "[constraints]\nmax_area = 1.0\n", "area"),
])
def test_other_malformed_entries_name_their_field(tmp_path, text, field):
    with pytest.raises(ConfigError) as caught:
        load_sweep(write(tmp_path, text))
    assert caught.value.field == field


def test_constraint_max_pes_drops_points(tmp_path):
    sweep = load_sweep(write(tmp_path, SMALL + "[constraints]\nmax_pes = 100\n"))
    assert {p.varied["level[ifmap_spad].fanout_x"] for p in sweep.points} == {7}  # 12 x 14 = 168 > 100
    assert sweep.excluded == {"max_pes = 100": 2 * 4}


def test_equal_area_sizes_the_buffer_by_hand(tmp_path):
    text = """format_version = 1
name = "area"
base = "eyeriss_v1"
networks = ["lenet5"]
[vary]
"level[ifmap_spad].fanout_x" = [7, 14, 16]
[area]
unit = "relative"
per_pe = 1.0
per_word = { register_file = 0.004, global_buffer = 0.002 }
source = "test"
[constraints]
equal_area = { adjust = "level[global_buffer].capacity_words", multiple_of = 1024 }
"""
    sweep = load_sweep(write(tmp_path, text))
    # eyeriss_v1: 12 rows, per-PE spads 12 + 224 + 24 = 260 words, buffer 55296 words.
    # Exact arithmetic for the oracle (the coefficients as written in the file).
    pe, rf, glb = Fraction(1), Fraction("0.004"), Fraction("0.002")
    reference = 168 * pe + 168 * 260 * rf + 55296 * glb
    for point in sweep.points:
        pes = 12 * point.varied["level[ifmap_spad].fanout_x"]
        room = reference - pes * (pe + 260 * rf)
        expected = math.floor(room / glb / 1024) * 1024
        assert point.adjusted["level[global_buffer].capacity_words"] == expected
        assert point.task.area == pytest.approx(float(pes * (pe + 260 * rf) + expected * glb), rel=1e-12)
        assert float(reference - 1024 * glb) <= point.task.area <= float(reference) * (1 + 1e-12)
    base_point = next(p for p in sweep.points if p.varied["level[ifmap_spad].fanout_x"] == 14)
    assert base_point.adjusted["level[global_buffer].capacity_words"] == 55296  # 54 x 1024: the chip itself


# -- point values --------------------------------------------------------------------------------

def test_point_totals_equal_the_plain_simulation(tmp_path):
    """The sweep's hot path (no tables, cached counts) against simulate_network's pandas path."""
    sweep = load_sweep(write(tmp_path, SMALL))
    point = sweep.points[-1]
    metrics = evaluate_point(point.task)
    arch = parse_architecture(point.task.config, source_file="x")
    results = simulate_network(networks.get("lenet5"), arch, batch=point.task.batch, method="model", mapper="default", progress=False)
    assert metrics["status"] == "ok"
    assert metrics["macs_dense"] == sum(r.counts.macs for r in results) == 416_520 * 2
    assert metrics["cycles_total"] == sum(r.counts.timing.cycles_total for r in results)
    for key in ("energy_total", "energy_dram", "energy_register_file", "energy_weights", "energy_noc"):
        assert metrics[key] == pytest.approx(sum(r.breakdown[key] for r in results), rel=1e-12)
    assert metrics["edp"] == pytest.approx(metrics["energy_total"] * metrics["cycles_total"], rel=1e-15)
    assert metrics["pe_utilization"] == pytest.approx(metrics["macs_dense"] / (metrics["cycles_total"] * 12 * point.varied["level[ifmap_spad].fanout_x"]))


def test_engine_point_equals_the_engine_run(tmp_path):
    sweep = load_sweep(write(tmp_path, SMALL)).with_method("engine")
    point = sweep.points[0]
    assert point.task.method == "engine"
    metrics = evaluate_point(point.task)
    arch = parse_architecture(point.task.config, source_file="x")
    results = simulate_network(networks.get("lenet5"), arch, batch=point.task.batch, method="engine", mapper="default", progress=False)
    assert metrics["energy_total"] == pytest.approx(sum(r.breakdown["energy_total"] for r in results), rel=1e-12)
    assert metrics["cycles_total"] == sum(r.counts.timing.cycles_total for r in results)


def test_search_policy_point_equals_the_mapper_run(tmp_path):
    """The "search" policy maps every layer with the mapper, as `eapsim run` does by default."""
    sweep = load_sweep(write(tmp_path, SMALL.replace("batch = [1, 2]", 'batch = [1]\nmapping = ["search", "search:WS"]')))
    point = next(p for p in sweep.points if p.task.mapping == "search")
    metrics = evaluate_point(point.task)
    arch = parse_architecture(point.task.config, source_file="x")
    results = simulate_network(networks.get("lenet5"), arch, batch=1, method="model", mapper="search", progress=False)
    assert metrics["energy_total"] == pytest.approx(sum(r.breakdown["energy_total"] for r in results), rel=1e-12)
    assert metrics["cycles_total"] == sum(r.counts.timing.cycles_total for r in results)
    ws = next(p for p in sweep.points if p.task.mapping == "search:WS" and p.varied == point.varied)
    assert ws.task.key != point.task.key
    ws_results = simulate_network(networks.get("lenet5"), arch, batch=1, method="model", mapper="search",
                                  dataflow="WS", progress=False)
    assert evaluate_point(ws.task)["energy_total"] == pytest.approx(
        sum(r.breakdown["energy_total"] for r in ws_results), rel=1e-12)


def test_point_key_covers_every_input(tmp_path):
    task = load_sweep(write(tmp_path, SMALL)).points[0].task
    import dataclasses
    changed = [dataclasses.replace(task, batch=3), dataclasses.replace(task, mapping="row_stationary"),
               dataclasses.replace(task, method="engine"), dataclasses.replace(task, network="alexnet"),
               dataclasses.replace(task, config={**task.config, "clock_mhz": 100.0})]
    keys = {point_key(t) for t in changed} | {point_key(task)}
    assert len(keys) == len(changed) + 1
    assert point_key(task) == task.key


# -- running: resumable, identical across executors ----------------------------------------------

def test_rerun_skips_finished_points_and_summary_is_stable(tmp_path):
    sweep = load_sweep(write(tmp_path, SMALL))
    out = tmp_path / "out"
    table = run_sweep(sweep, out, workers=1, progress=False)
    assert len(table) == len(sweep.points) and (table.status == "ok").all()
    first = (out / "summary.csv").read_bytes()
    stamps = {p: p.stat().st_mtime_ns for p in (out / "points").glob("*.json")}
    assert len(stamps) == len(sweep.points)
    run_sweep(sweep, out, workers=1, progress=False)
    assert {p: p.stat().st_mtime_ns for p in (out / "points").glob("*.json")} == stamps
    assert (out / "summary.csv").read_bytes() == first
    record = json.loads(next(iter(stamps)).read_text())
    assert record["point_format"] == POINT_FORMAT


def test_sigkill_mid_sweep_then_resume_equals_uninterrupted_run(tmp_path):
    text = SMALL.replace('"level[ifmap_spad].fanout_x" = [7, 14]', '"level[ifmap_spad].fanout_x" = [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]')
    path = write(tmp_path, text)
    sweep = load_sweep(path)
    total = len(sweep.points)  # 2 x 15 x 4 = 120
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    command = [sys.executable, "-m", "sim.cli", "sweep", str(path), "--out", str(killed), "--workers", "1", "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if len(list((killed / "points").glob("*.json"))) >= 5 if (killed / "points").is_dir() else False:
                break
            time.sleep(0.005)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    done = len(list((killed / "points").glob("*.json")))
    assert 5 <= done < total, done
    assert not (killed / "summary.csv").exists()
    assert main(["sweep", str(path), "--out", str(killed), "--workers", "1", "--no-progress"]) == 0
    run_sweep(sweep, reference, workers=1, progress=False)
    resumed = pd.read_csv(killed / "summary.csv")
    assert len(resumed) == total and resumed.point.is_unique
    assert set(resumed.point) == {p.task.key for p in sweep.points}
    assert (killed / "summary.csv").read_bytes() == (reference / "summary.csv").read_bytes()
    assert not list((killed / "points").glob(".*.tmp"))  # leftovers of the kill are cleared


def test_dask_local_cluster_gives_the_same_summary_as_local_processes(tmp_path):
    distributed = pytest.importorskip("distributed")
    sweep = load_sweep(write(tmp_path, SMALL))
    run_sweep(sweep, tmp_path / "local", workers=2, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", processes=True,
                                  dashboard_address=None) as cluster:
        run_sweep(sweep, tmp_path / "dask", scheduler=cluster.scheduler_address, progress=False)
    local = (tmp_path / "local" / "summary.csv").read_bytes()
    assert local == (tmp_path / "dask" / "summary.csv").read_bytes()
    assert len(pd.read_csv(tmp_path / "local" / "summary.csv")) == len(sweep.points)


def test_unmappable_point_is_recorded_not_fatal(tmp_path):
    text = """format_version = 1
name = "rs"
base = "eyeriss_v1"
networks = ["alexnet"]
mapping = ["row_stationary"]
[vary]
"level[ifmap_spad].fanout_y" = [8]
"""
    table = run_sweep(load_sweep(write(tmp_path, text)), tmp_path / "out", workers=1, progress=False)
    # Row stationary puts the R = 11 filter rows of conv1 down the PE rows: 8 rows cannot hold them.
    assert table.status.iloc[0].startswith("unmappable: ") and "conv1" in table.status.iloc[0]
    assert math.isnan(table.energy_total.iloc[0])


# -- summary and plots ---------------------------------------------------------------------------

def test_pareto_front_against_brute_force():
    rng = np.random.default_rng(3)
    energy, cycles = rng.integers(0, 30, 200).astype(float), rng.integers(0, 30, 200).astype(float)
    brute = {i for i in range(200)
             if not any(energy[j] <= energy[i] and cycles[j] <= cycles[i] and (energy[j], cycles[j]) != (energy[i], cycles[i])
                        for j in range(200))}
    front = pareto_front(energy, cycles)
    assert {(energy[i], cycles[i]) for i in front} == {(energy[i], cycles[i]) for i in brute}
    assert len(front) == len({(energy[i], cycles[i]) for i in brute})  # one index per front point


def test_sweep_plot_draws_from_the_csv(tmp_path):
    sweep = load_sweep(write(tmp_path, SMALL))
    out = tmp_path / "out"
    run_sweep(sweep, out, workers=1, progress=False)
    assert main(["sweep-plot", str(out)]) == 0
    for name in ("sweep_heatmap.png", "sweep_pareto.png", "sweep_best_levels.png"):
        assert (out / name).stat().st_size > 10_000
    assert main(["sweep-plot", str(tmp_path / "nothing")]) == 2


def test_example_sweeps_load():
    root = Path(__file__).resolve().parents[1] / "experiments" / "sweeps"
    files = sorted(root.glob("*.toml"))
    assert [f.stem for f in files] == ["dataflow_x_pe_count", "glb_x_batch", "pe_array_x_rf"]
    for file in files:
        sweep = load_sweep(file)
        assert sweep.points and all(p.task.network == "alexnet" for p in sweep.points)
