"""Network simulation, run outputs and the command line."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

import networks
from sim.cli import main
from sim.config import list_presets, load_architecture
from sim.default_mapping import default_mapping
from sim.mapping import build_nest
from sim.results import write_run
from sim.simulate import parse_layer, simulate_network


@pytest.mark.parametrize("preset", ["eyeriss_v1", "eyeriss_isca16", "eyeriss_like_timeloop"])
def test_every_layer_of_every_zoo_network_gets_a_valid_default_mapping(preset):
    arch = load_architecture(preset)
    for name in ("alexnet", "googlenet", "mobilenet_v1", "squeezenet1_1", "lenet5", "resnet18"):
        network = networks.get(name)
        for layer in network.layer_names:
            dims = network.loop_dims(layer)
            if dims is not None:
                nest = build_nest(dims, arch, default_mapping(dims, arch, layer_name=layer), layer_name=layer)
                assert nest.total_spatial <= arch.mac_units


def test_engine_and_model_agree_on_a_whole_network_and_outputs_match_forward_pass():
    # dense twin of eyeriss_v1: the closed form counts dense data (sparsity: tests/test_sparsity.py)
    arch = dataclasses.replace(load_architecture("eyeriss_v1"), zero_handling={"weights": "none", "inputs": "none"},
                               dram_compression={"weights": "none", "inputs": "none", "outputs": "none"})
    network = networks.get("lenet5", seed=1)
    engine = simulate_network(network, arch, batch=2, method="engine", progress=False)
    model = simulate_network(network, arch, batch=2, method="model", progress=False)
    assert [r.layer for r in engine] == ["conv1", "conv2", "fc3", "fc4", "fc5"]
    for e, m in zip(engine, model):
        assert e.counts.differences(m.counts) == []
        assert e.breakdown == pytest.approx(m.breakdown)
        # energy = sum of its parts, by data type and by level
        parts_type = sum(e.breakdown[f"energy_{k}"] for k in ("input_fmaps", "output_fmaps", "weights", "computation"))
        parts_level = sum(e.breakdown[f"energy_{k}"] for k in ("dram", "global_buffer", "noc", "register_file", "mac"))
        assert parts_type == pytest.approx(e.breakdown["energy_total"]) == pytest.approx(parts_level)
    # ReLU activations make the engine see zero operands on real tensors
    assert engine[1].counts.macs_zero_operand > 0


def test_engine_layer_output_equals_network_forward():
    from sim.engine import layer_tensors, run_engine

    arch = load_architecture("eyeriss_isca16")
    network = networks.get("alexnet", seed=2)
    x = np.random.default_rng(0).standard_normal((1, 3, 227, 227), dtype=np.float32)
    _, acts = network.forward(x, return_activations=True)
    dims = network.loop_dims("conv2", batch=1)
    w, inp = layer_tensors(dims, network.layer_params("conv2")["weight"], acts["pool1"], padding=2)
    result = run_engine(build_nest(dims, arch, default_mapping(dims, arch)), arch, w, inp)
    want = acts["conv2"] - network.params["conv2"]["bias"][None, :, None, None]
    np.testing.assert_allclose(result.outputs.reshape(want.shape), want, rtol=1e-3, atol=1e-3)


def test_run_writes_every_output_file_and_a_manifest(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--network", "lenet5", "--hw", "eyeriss_v1", "--batch", "2", "--out", str(out), "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "access_counts.csv", "energy_breakdown.png", "layers.csv", "manifest.json", "network.csv"]
    layers = pd.read_csv(out / "layers.csv")
    access = pd.read_csv(out / "access_counts.csv")
    network = pd.read_csv(out / "network.csv")
    assert list(layers.layer) == ["conv1", "conv2", "fc3", "fc4", "fc5"]
    assert (layers.macs_dense == [2 * 117600, 2 * 240000, 2 * 48000, 2 * 10080, 2 * 840]).all()
    for layer, energy in layers.set_index("layer").energy_total.items():
        assert access[access.layer == layer].energy.sum() == pytest.approx(energy)
    assert network.energy_total.iloc[0] == pytest.approx(layers.energy_total.sum())
    assert set(access.level_class) <= {"DRAM", "global_buffer", "NoC", "register_file", "MAC"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["architecture"]["name"] == "eyeriss_v1"
    assert set(manifest["mappings"]) == set(layers.layer)
    assert manifest["inputs"]["batch"] == 2 and manifest["versions"]["numpy"]


def test_single_layer_with_a_mapping_file(tmp_path, data_dir):
    out = tmp_path / "one"
    layer = "N=1,C=128,M=256,P=56,Q=56,R=3,S=3,stride=1"
    code = main(["run", "--layer", layer, "--hw", "eyeriss_like_timeloop", "--method", "model",
                 "--mapping", str(data_dir / "timeloop_vgg_conv_mapping.toml"), "--out", str(out)])
    assert code == 0
    layers = pd.read_csv(out / "layers.csv")
    assert layers.cycles_total.iloc[0] == 5_505_024  # Timeloop reference case (timeloop_counting.md)
    assert layers.pe_utilization.iloc[0] == 1.0


def test_mapping_file_with_a_temporal_remainder_runs_in_parts(tmp_path):
    """A CONV1-like layer in passes of 7 ofmap rows (8 passes cover 55): the run writes the sum of
    the two parts, and the engine and the model agree on every access count."""
    mapping = tmp_path / "passes.toml"
    mapping.write_text(
        '[[level]]\nname = "DRAM"\ntemporal = [["P", 8], ["C", 3]]\n'
        '[[level]]\nname = "global_buffer"\ntemporal = [["Q", 13]]\nspatial = [["R", 11, "Y"], ["P", 7, "X"]]\n'
        '[[level]]\nname = "filter_spad"\ntemporal = [["S", 11]]\n'
        '[[level]]\nname = "psum_spad"\ntemporal = [["M", 8]]\n')
    layer = "N=1,C=3,M=8,P=55,Q=13,R=11,S=11,stride=4"
    tables = {}
    for method in ("engine", "model"):
        out = tmp_path / method
        assert main(["run", "--layer", layer, "--hw", "eyeriss_v1", "--mapping", str(mapping), "--method", method,
                     "--out", str(out)]) == 0
        tables[method] = (pd.read_csv(out / "layers.csv"), pd.read_csv(out / "access_counts.csv"))
    layers, access = tables["model"]
    assert layers.pes_used.iloc[0] == 77 and layers.macs_dense.iloc[0] == 3 * 8 * 55 * 13 * 11 * 11
    assert layers.energy_total.iloc[0] == pytest.approx(access.energy.sum())
    # outputs: each of the 8 x 55 x 13 ofmap values reaches DRAM once
    dram_out = access[(access.level == "DRAM") & (access.data_type == "outputs") & (access.action == "updates")]
    assert dram_out.count_words.iloc[0] == 8 * 55 * 13
    np.testing.assert_array_equal(tables["engine"][1].count_words, access.count_words)


@pytest.mark.parametrize("argv, message", [
    (["run", "--network", "alexnett"], "unknown network 'alexnett'"),
    (["run", "--hw", "no_such_preset"], "no_such_preset"),
    (["run", "--layer", "N=1,C=3"], "missing M, P, Q, R, S"),
    (["run", "--layer", "N=1,C=x,M=1,P=1,Q=1,R=1,S=1"], "C='x' is not an integer"),
    (["run", "--layer", "K=3"], "'K=3' is not KEY=VALUE"),
    (["run", "--batch", "0"], "--batch 0"),
    (["run", "--layer", "C=1,M=1,P=1,Q=1,R=1,S=1", "--mapping", "/no/such/map.toml"], "no such mapping file"),
])
def test_bad_input_gives_one_clear_line_and_no_output(argv, message, tmp_path, capsys):
    out = tmp_path / "never"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("eapsim: error:") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_mapping_that_does_not_fit_names_the_constraint(tmp_path, capsys):
    mapping = tmp_path / "bad.toml"
    mapping.write_text('[[level]]\nname = "psum_spad"\ntemporal = [["M", 256]]\n[[level]]\nname = "DRAM"\n'
                       'temporal = [["C", 128], ["P", 56], ["Q", 56], ["R", 3], ["S", 3]]\n')
    code = main(["run", "--layer", "C=128,M=256,P=56,Q=56,R=3,S=3", "--hw", "eyeriss_like_timeloop",
                 "--mapping", str(mapping), "--out", str(tmp_path / "x"), "--method", "model"])
    assert code == 2
    assert "'psum_spad' need 256 words" in capsys.readouterr().err


def test_failed_write_leaves_previous_run_untouched(tmp_path, monkeypatch):
    arch = load_architecture("eyeriss_v1")
    results = simulate_network(networks.get("lenet5"), arch, method="model", progress=False)
    out = write_run(tmp_path / "run", results, arch, network="lenet5", batch=1)
    before = (out / "layers.csv").read_text()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("sim.plots.plot_energy_breakdown", broken)
    with pytest.raises(RuntimeError):
        write_run(tmp_path / "run", results, arch, network="lenet5", batch=1)
    assert (out / "layers.csv").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_parse_layer_derives_input_size():
    dims = parse_layer("N=2,G=2,C=48,M=128,P=27,Q=27,R=5,S=5,stride=1")
    assert (dims.H, dims.W, dims.macs) == (31, 31, 2 * 2 * 128 * 48 * 27 * 27 * 25)


def test_presets_listed():
    assert {"eyeriss_v1", "eyeriss_isca16", "eyeriss_like_timeloop"} <= set(list_presets())


def test_missing_noc_energy_is_a_config_error_naming_the_level_and_the_fix():
    from sim.energy import access_energy
    from sim.errors import ConfigError
    from sim.model import closed_form_counts

    complete = load_architecture("eyeriss_isca16")
    fan = complete.levels[-1]
    arch = dataclasses.replace(complete, levels=(*complete.levels[:-1], dataclasses.replace(fan, noc_energy_per_word=None)))
    dims = parse_layer("C=4,M=16,P=8,Q=8,R=3,S=3")
    counts = closed_form_counts(build_nest(dims, arch, default_mapping(dims, complete)), arch)
    with pytest.raises(ConfigError, match=r"eyeriss_isca16.toml: level 'rf' has a fan-out .* add noc_energy_per_word"):
        access_energy(counts, arch)
