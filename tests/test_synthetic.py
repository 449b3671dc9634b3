"""Synthetic density mode (issue 6): the generator, the published AlexNet profile, the command line
and the energy-breakdown experiment's smoke run."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import networks
from sim.cli import main
from sim.compression import RLE_MAX_RUN, chunk_bits, rle_pairs_per_word
from sim.config import load_architecture
from sim.errors import UsageError
from sim.simulate import simulate_network
from sim.synthetic import (
    ALEXNET_IFMAP_ZERO_FRACTION, DataProfile, achieved_density, density_mask, published_profile,
    synthetic_tensor, zero_runs,
)

ENERGY_BREAKDOWN = Path(__file__).resolve().parents[1] / "experiments" / "energy_breakdown.py"
SHAPE = (2, 16, 64, 64)  # 131072 values


@pytest.mark.parametrize("clustered", [False, True])
@pytest.mark.parametrize("density", [0.0, 0.05, 0.275, 0.5, 0.9999, 1.0])
def test_achieved_density_is_the_requested_one_up_to_rounding(density, clustered, rng):
    x = synthetic_tensor(SHAPE, density, rng, clustered=clustered)
    assert x.shape == SHAPE and x.dtype == np.float32
    assert achieved_density(x) == pytest.approx(density, abs=1 / x.size)
    assert (x >= 0).all()  # ReLU-like values unless signed
    assert (synthetic_tensor(SHAPE, 0.5, rng, signed=True) < 0).any()


def test_the_generator_is_reproducible_from_its_seed():
    a = synthetic_tensor(SHAPE, 0.3, np.random.default_rng(4), clustered=True)
    b = synthetic_tensor(SHAPE, 0.3, np.random.default_rng(4), clustered=True)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("density", [0.2, 0.5, 0.8])
def test_clustered_zeros_form_longer_runs_at_the_same_density(density, rng):
    plain = density_mask(SHAPE, density, rng)  # uniform zeros: mean run about 1 / density <= 5
    for size in (8, 32):
        clustered = density_mask(SHAPE, density, rng, clustered=True, cluster_size=size)
        assert clustered.sum() == plain.sum()
        runs = zero_runs(clustered)
        assert runs.mean() == pytest.approx(size, rel=0.05)  # the cluster-size parameter
        assert runs.mean() > zero_runs(plain).mean()  # uniform zeros: mean run 1 / density


def rle_bits_from_runs(values: np.ndarray) -> int:
    """Eyeriss RLE by its rule, from the zero runs: one pair per non-zero, plus one pair per 32
    zeros of a run before a non-zero (a literal zero), plus ceil(z / 32) pairs for z trailing zeros."""
    flat = values.reshape(-1)
    runs = zero_runs(values)
    trailing = runs[-1] if flat[-1] == 0 else 0
    inner = runs[:-1] if flat[-1] == 0 else runs
    pairs = np.count_nonzero(flat) + int((inner // (RLE_MAX_RUN + 1)).sum()) + -(-int(trailing) // (RLE_MAX_RUN + 1))
    return 64 * -(-pairs // rle_pairs_per_word(16))


@pytest.mark.parametrize("density", [0.2, 0.3, 0.7])
def test_rle_bits_follow_the_zero_runs_so_clustering_never_saves_bits(density, rng):
    """Eyeriss's RLE spends one (run, value) pair per non-zero whatever run precedes it, and an
    extra pair for every 32 zeros of a run. At the same density, clustering the zeros into longer
    runs therefore does NOT reduce the RLE bits (sim.compression): it leaves them equal while runs
    stay under 32 and adds pairs once runs exceed 31. The significance map depends on the count of
    non-zeros only."""
    chunk = (1, 1, 64, 256)
    plain = synthetic_tensor(chunk, density, rng)
    short = synthetic_tensor(chunk, density, rng, clustered=True, cluster_size=8)
    long = synthetic_tensor(chunk, density, rng, clustered=True, cluster_size=128)
    bits = {}
    for name, x in (("plain", plain), ("short", short), ("long", long)):
        assert zero_runs(x).max() <= x.size
        bits[name] = chunk_bits(x.reshape(-1).tolist(), "rle", 16)
        assert bits[name] == rle_bits_from_runs(x)
        assert chunk_bits(x.reshape(-1).tolist(), "significance_map", 16) == x.size + 16 * np.count_nonzero(x)
    assert zero_runs(long).mean() > zero_runs(short).mean() > zero_runs(plain).mean()
    nonzero_floor = 64 * -(-np.count_nonzero(plain) // 3)  # one pair per non-zero
    assert bits["long"] > bits["short"] >= nonzero_floor and bits["plain"] >= nonzero_floor
    if density >= 0.3:  # uniform runs (mean about 1 / density) rarely reach 32: both cost about one pair per non-zero
        assert bits["short"] == pytest.approx(bits["plain"], rel=0.02)


def test_profile_validates_its_densities_and_names():
    with pytest.raises(UsageError, match="between 0 and 1"):
        DataProfile(input_density=1.5)
    with pytest.raises(UsageError, match="'conv9'"):
        DataProfile(input_density={"conv9": -0.1})
    with pytest.raises(UsageError, match="no published input-density profile for network 'lenet5'"):
        published_profile("lenet5")
    with pytest.raises(UsageError, match="no MAC layer named 'convv3'"):
        simulate_network(networks.get("lenet5"), load_architecture("eyeriss_v1"),
                         data=DataProfile(input_density={"convv3": 0.5}), progress=False)
    with pytest.raises(UsageError, match="--method engine"):
        simulate_network(networks.get("lenet5"), load_architecture("eyeriss_v1"), method="model",
                         data=DataProfile(input_density=0.5), progress=False)


def test_published_profile_is_applied_to_alexnet_conv1_to_5_by_name():
    profile = published_profile("alexnet")
    # JSSC 2017 (Chen, Krishna, Emer, Sze): zeros in the ifmaps of AlexNet CONV1-5 on ImageNet
    assert ALEXNET_IFMAP_ZERO_FRACTION == {"conv1": 0.0001, "conv2": 0.387, "conv3": 0.725,
                                           "conv4": 0.793, "conv5": 0.776}
    arch = load_architecture("eyeriss_v1")
    network = networks.get("alexnet")
    results = simulate_network(network, arch, data=profile, layers=["conv2", "conv4", "fc8"], progress=False)
    rows = {r.layer: r.summary_row(arch) for r in results}
    for layer in ("conv2", "conv4"):
        want = 1 - ALEXNET_IFMAP_ZERO_FRACTION[layer]
        assert rows[layer]["input_density_requested"] == pytest.approx(want)
        assert rows[layer]["input_density_achieved"] == pytest.approx(want, abs=1e-4)
        assert rows[layer]["weight_density_achieved"] == 1.0
        # ofmaps after the fused ReLU, computed from the synthetic inputs: about half are zero
        assert 0.3 < rows[layer]["output_density_achieved"] < 0.7
    assert np.isnan(rows["fc8"]["input_density_requested"])  # not in the profile: the forward pass
    assert 0.3 < rows["fc8"]["input_density_achieved"] < 0.7
    # conv4 at 20.7% density: zero-gated MACs (eyeriss_v1 gates zero ifmaps) follow the inputs
    conv4 = rows["conv4"]
    assert conv4["macs_performed"] / conv4["macs_dense"] < 0.3


def test_weight_density_prunes_and_counts_effective_macs(rng):
    arch = load_architecture("eyeriss_energy_tool")
    data = DataProfile(input_density=0.5, weight_density={"conv2": 0.25})
    (conv1, conv2) = simulate_network(networks.get("lenet5"), arch, data=data, layers=["conv1", "conv2"],
                                      progress=False)
    row = conv2.summary_row(arch)
    assert row["weight_density_requested"] == 0.25
    assert row["weight_density_achieved"] == pytest.approx(0.25, abs=1e-3)
    assert row["macs_effective"] == pytest.approx(0.25 * row["macs_dense"], rel=1e-2)
    assert row["macs_performed"] < 0.25 * row["macs_dense"]  # skipped: zero weight or zero input
    assert np.isnan(conv1.summary_row(arch)["weight_density_requested"])


def test_cli_input_density_end_to_end_on_lenet5(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--network", "lenet5", "--input-density", "0.3", "--clustered", "--out", str(out),
                 "--no-progress"]) == 0
    assert "synthetic input density 0.3" in capsys.readouterr().out
    layers = pd.read_csv(out / "layers.csv")
    assert {"input_density_requested", "input_density_achieved", "weight_density_achieved"} <= set(layers.columns)
    assert (layers.input_density_requested == 0.3).all()
    assert np.allclose(layers.input_density_achieved, 0.3, atol=0.01)
    assert (out / "manifest.json").read_text().count('"input_density": "0.3"') == 1


def test_cli_published_profile_is_announced(capsys):
    assert main(["run", "--network", "alexnet", "--input-density", "published", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "published alexnet input densities" in out and "JSSC 2017" in out and "conv3 0.275" in out


@pytest.mark.parametrize("argv, message", [
    (["--input-density", "1.5"], "--input-density 1.5: a density"),
    (["--input-density", "dense"], "--input-density 'dense': give 'published'"),
    (["--input-density", "published"], "no published input-density profile for network 'lenet5'"),
    (["--clustered"], "--clustered shapes the zeros of synthetic inputs"),
    (["--input-density", "0.5", "--method", "model"], "--method engine"),
])
def test_bad_density_option_gives_one_clear_line(argv, message, tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["run", "--network", "lenet5", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("eapsim: error:") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_energy_breakdown_quick_smoke(tmp_path):
    run = subprocess.run([sys.executable, str(ENERGY_BREAKDOWN), "--quick", "--no-progress", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "NOT optimised" in run.stdout and "CVPR 2017" in run.stdout
    table = pd.read_csv(tmp_path / "comparison.csv")
    assert set(table.network) == {"alexnet", "googlenet", "squeezenet1_0"}
    published = table.set_index(["figure", "network"]).published.to_dict()
    assert {k: published[k] for k in [("conv_share", "alexnet"), ("share_input_fmaps", "googlenet"),
            ("share_output_fmaps", "googlenet"), ("share_weights", "googlenet"),
            ("share_computation", "googlenet"), ("energy_vs_alexnet", "squeezenet1_0")]} == {
        ("conv_share", "alexnet"): 0.725, ("share_input_fmaps", "googlenet"): 0.25,
        ("share_output_fmaps", "googlenet"): 0.43, ("share_weights", "googlenet"): 0.22,
        ("share_computation", "googlenet"): 0.10, ("energy_vs_alexnet", "squeezenet1_0"): 1.3}
    shares = table[table.figure.str.startswith("share_")].simulated
    assert shares.sum() == pytest.approx(1.0)
    layers = pd.read_csv(tmp_path / "layers.csv")
    assert set(layers.network) == {"alexnet", "googlenet", "squeezenet1_0"}
    assert (layers.groupby("network").size() == 2).all()
    for name in ("networks.csv", "manifest.json", "comparison.png"):
        assert (tmp_path / name).stat().st_size > 0
