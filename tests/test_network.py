"""Network structure, shape inference errors, and save/load."""
from __future__ import annotations


import numpy as np
import pytest

import networks
from networks import layers as L
from networks.errors import NetworkError, NetworkShapeError


def test_fc_with_wrong_input_size_names_layer_and_both_shapes():
    with pytest.raises(NetworkShapeError) as info:
        networks.Network(
            name="bad", input_shape=(3, 8, 8),
            layers=[L.Conv2D(name="conv", out_channels=4, kernel=3), L.FullyConnected(name="fc", in_features=100, out_features=2)],
        )
    message = str(info.value)
    assert "'fc'" in message and "100" in message and "(4, 6, 6)" in message


def test_conv_with_wrong_channels_names_layer_and_both_shapes():
    with pytest.raises(NetworkShapeError, match=r"'conv2'.*\(8, H, W\).*\(4, 6, 6\)"):
        networks.Network(
            name="bad", input_shape=(3, 8, 8),
            layers=[L.Conv2D(name="conv1", out_channels=4, kernel=3), L.Conv2D(name="conv2", in_channels=8, out_channels=4, kernel=3)],
        )


def test_add_of_mismatched_branches_names_both_shapes():
    with pytest.raises(NetworkShapeError, match=r"'sum'.*\(4, 6, 6\).*\(4, 8, 8\)"):
        networks.Network(
            name="bad", input_shape=(4, 8, 8),
            layers=[L.Conv2D(name="conv", out_channels=4, kernel=3), L.Add(name="sum", inputs=("conv", "input"))],
        )


def test_forward_rejects_wrong_input_shape():
    network = networks.get("lenet5", seed=0)
    with pytest.raises(NetworkShapeError, match=r"\(N, 1, 32, 32\).*\(2, 1, 28, 28\)"):
        network.forward(np.zeros((2, 1, 28, 28), np.float32))


def test_wiring_errors_are_clear():
    with pytest.raises(NetworkError, match="not an earlier layer"):
        networks.Network(name="n", input_shape=(1, 4, 4), layers=[L.ReLU(name="a", inputs=("b",)), L.ReLU(name="b")])
    with pytest.raises(NetworkError, match="used twice"):
        networks.Network(name="n", input_shape=(1, 4, 4), layers=[L.ReLU(name="a"), L.ReLU(name="a")])
    with pytest.raises(NetworkError, match="unknown network 'alexnett'.*alexnet"):
        networks.get("alexnett")
    network = networks.get("lenet5", seed=0)
    with pytest.raises(NetworkShapeError, match="conv1.*mask has shape"):
        network.set_mask("conv1", np.ones((6, 1, 3, 3), bool))
    with pytest.raises(NetworkError, match="no weight to mask"):
        network.set_mask("relu1", np.ones(1, bool))
    with pytest.raises(NetworkError, match="has no weights"):
        networks.get("lenet5").forward(np.zeros((1, 1, 32, 32), np.float32))


def test_save_load_round_trip_is_exact(tmp_path, rng):
    network = networks.get("googlenet", seed=5)
    network.set_mask("inception_3a_3x3", rng.random(network.param_shapes("inception_3a_3x3")["weight"]) < 0.3)
    path = networks.save_npz(network, tmp_path / "model.npz")
    loaded = networks.load_npz(path)
    assert [l.to_dict() for l in loaded.layers] == [l.to_dict() for l in network.layers]
    assert loaded.input_shape == network.input_shape and loaded.name == network.name
    for name, params in network.params.items():
        for key, array in params.items():
            np.testing.assert_array_equal(loaded.params[name][key], array)
    assert set(loaded.masks) == {"inception_3a_3x3"}
    np.testing.assert_array_equal(loaded.masks["inception_3a_3x3"], network.masks["inception_3a_3x3"])
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_load_rejects_missing_and_malformed_files(tmp_path):
    with pytest.raises(NetworkError, match="no such model file"):
        networks.load_npz(tmp_path / "absent.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(NetworkError, match="junk.npz: not a readable"):
        networks.load_npz(tmp_path / "junk.npz")
    np.savez(tmp_path / "plain.npz", a=np.zeros(2))
    with pytest.raises(NetworkError, match="plain.npz: missing 'architecture.json'"):
        networks.load_npz(tmp_path / "plain.npz")
    network = networks.get("lenet5", seed=0)
    path = networks.save_npz(network, tmp_path / "m.npz")
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["param/fc3/weight"] = arrays["param/fc3/weight"][:, :10]
    np.savez(tmp_path / "bad_shape.npz", **arrays)
    with pytest.raises(NetworkError, match=r"bad_shape.npz.*'fc3'.*\(120, 10\).*\(120, 400\)"):
        networks.load_npz(tmp_path / "bad_shape.npz")


def test_cli_demo_prints_the_zoo_table(capsys):
    from sim.cli import main

    assert main(["zoo"]) == 0
    out = capsys.readouterr().out
    for name in networks.available():
        assert name in out
