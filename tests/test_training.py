"""The training loop: overfitting a small batch, masks, optimiser, schedules, reproducibility,
evaluation, baselines and the train_baselines.py smoke run."""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import networks
from networks import data, training
from networks.layers import BatchNorm, Conv2D, Dropout, FullyConnected, MaxPool, ReLU, Softmax
from networks.network import Network

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def subset() -> data.Dataset:
    return data.load_subset()


def _small_net() -> Network:
    return Network(
        name="small", input_shape=(1, 32, 32),
        layers=[
            Conv2D(name="conv1", out_channels=8, kernel=5, stride=2),
            BatchNorm(name="bn1"),
            ReLU(name="relu1"),
            MaxPool(name="pool1", kernel=2),
            FullyConnected(name="fc1", out_features=32),
            ReLU(name="relu2"),
            Dropout(name="drop", p=0.2),
            FullyConnected(name="fc2", out_features=10),
            Softmax(name="prob"),
        ],
    )


def test_overfits_small_batch_and_pruned_weights_stay_zero(subset):
    network = networks.get("lenet5", seed=0)
    rng = np.random.default_rng(1)
    masks = {name: rng.random(network.param_shapes(name)["weight"]) > 0.5 for name in ("conv2", "fc3", "fc4")}
    for name, mask in masks.items():
        network.set_mask(name, mask)
    images, labels = subset.images[:32], subset.labels[:32]
    history = training.fit(
        network, train_images=images, train_labels=labels, epochs=60, batch_size=32, lr=0.05,
        schedule="constant", rng=rng, progress=False,
    )
    assert history[0]["train_loss"] > 1.0
    assert history[-1]["train_loss"] < 0.05
    assert training.evaluate(network, images, labels)["top1"] == 1.0
    for name, mask in masks.items():
        weight = network.params[name]["weight"]
        assert np.all(weight[~mask] == 0), f"{name}: a pruned weight moved"
        assert np.count_nonzero(weight[mask]) == mask.sum()


def test_same_seed_same_weights(subset):
    def run(seed):
        network = _small_net().init_params(np.random.default_rng(seed))
        training.fit(
            network, train_images=subset.images[:96], train_labels=subset.labels[:96], epochs=2,
            batch_size=32, rng=np.random.default_rng(seed), progress=False,
        )
        return network

    a, b, c = run(3), run(3), run(4)
    for layer in a.params:
        for name in a.params[layer]:
            np.testing.assert_array_equal(a.params[layer][name], b.params[layer][name])
    assert not np.array_equal(a.params["fc2"]["weight"], c.params["fc2"]["weight"])


def test_fit_updates_batchnorm_running_statistics(subset):
    network = _small_net().init_params(np.random.default_rng(0))
    history = training.fit(
        network, train_images=subset.images[:64], train_labels=subset.labels[:64], epochs=1,
        batch_size=32, rng=np.random.default_rng(0), progress=False,
        test_images=subset.images[64:128], test_labels=subset.labels[64:128],
    )
    assert not np.allclose(network.params["bn1"]["running_mean"], 0)
    assert not np.allclose(network.params["bn1"]["running_var"], 1)
    row = history[0]
    assert set(row) == set(training.HISTORY_FIELDS)
    assert 0 <= row["test_top1"] <= row["test_top5"] <= 1


def test_sgd_momentum_weight_decay_and_mask():
    network = Network(name="fc", input_shape=(2, 1, 1), layers=[FullyConnected(name="fc", out_features=2)])
    network.set_params({"fc": {"weight": np.ones((2, 2)), "bias": np.zeros(2)}})
    network.set_mask("fc", np.array([[True, False], [True, True]]))
    training.apply_masks(network)
    optimiser = training.SGD(network, momentum=0.5, weight_decay=0.1)
    grad = {"fc": {"weight": np.full((2, 2), 1.0, np.float32) * network.masks["fc"], "bias": np.ones(2, np.float32)}}
    optimiser.step(grad, lr=0.1)
    # v = g + 0.1 * w = 1.1 (weights), 1 (bias, no decay); w = 1 - 0.1 * 1.1
    np.testing.assert_allclose(network.params["fc"]["weight"], [[0.89, 0.0], [0.89, 0.89]], rtol=1e-6)
    np.testing.assert_allclose(network.params["fc"]["bias"], [-0.1, -0.1], rtol=1e-6)
    optimiser.step(grad, lr=0.1)
    # v = 0.5 * 1.1 + (1 + 0.1 * 0.89) = 1.639
    np.testing.assert_allclose(network.params["fc"]["weight"][0, 0], 0.89 - 0.1639, rtol=1e-6)
    assert network.params["fc"]["weight"][0, 1] == 0


def test_schedules():
    step = training.make_schedule("step", base_lr=0.1, epochs=9)
    assert [step(e) for e in (0, 2.9, 3, 6.5)] == pytest.approx([0.1, 0.1, 0.01, 0.001])
    cosine = training.make_schedule("cosine", base_lr=0.1, epochs=10)
    assert cosine(0) == pytest.approx(0.1)
    assert cosine(5) == pytest.approx(0.05)
    assert cosine(10) == pytest.approx(0.0, abs=1e-12)
    assert training.CosineLR(base_lr=1.0, epochs=10, warmup_epochs=2)(1) == pytest.approx(0.5, abs=1e-3)
    with pytest.raises(ValueError, match="unknown learning-rate schedule 'linear'"):
        training.make_schedule("linear", base_lr=0.1, epochs=3)


def test_evaluate_top1_top5():
    # An FC layer with identity weights makes the input its own logits.
    network = Network(name="id", input_shape=(6, 1, 1), layers=[FullyConnected(name="fc", out_features=6, bias=False)])
    network.set_params({"fc": {"weight": np.eye(6)}})
    logits = np.array([[6, 5, 4, 3, 2, 1], [1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]], np.float32)[:, :, None, None]
    scores = training.evaluate(network, logits, np.array([0, 0, 4]))  # ranks 1, 6, 5
    assert scores["top1"] == pytest.approx(1 / 3)
    assert scores["top5"] == pytest.approx(2 / 3)


def test_fit_rejects_bad_inputs(subset):
    network = _small_net().init_params(np.random.default_rng(0))
    with pytest.raises(networks.NetworkError, match=r"training labels have shape \(3,\)"):
        training.fit(network, train_images=subset.images[:4], train_labels=subset.labels[:3], epochs=1, rng=np.random.default_rng(0))
    with pytest.raises(networks.NetworkError, match="expects"):
        training.fit(network, train_images=np.zeros((4, 3, 32, 32), np.float32), train_labels=np.zeros(4, int), epochs=1, rng=np.random.default_rng(0))


def test_divergence_is_reported(subset):
    network = _small_net().init_params(np.random.default_rng(0))
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        with np.errstate(all="ignore"):
            training.fit(
                network, train_images=subset.images[:64], train_labels=subset.labels[:64], epochs=3,
                batch_size=32, lr=1e6, schedule="constant", rng=np.random.default_rng(0), progress=False,
            )


def test_load_or_train_baseline_loads_existing_file(tmp_path):
    network = networks.get("lenet5", seed=5)
    networks.save_npz(network, training.baseline_paths("lenet5", directory=tmp_path)["model"])
    loaded = training.load_or_train_baseline("lenet5", directory=tmp_path)
    np.testing.assert_array_equal(loaded.params["fc5"]["weight"], network.params["fc5"]["weight"])
    with pytest.raises(networks.NetworkError, match="no baseline recipe for 'vgg16'"):
        training.load_or_train_baseline("vgg16", directory=tmp_path)


def test_train_baselines_quick_smoke(tmp_path):
    script = REPO / "experiments" / "train_baselines.py"
    # An empty data directory forces the fallback to the shipped subset, as on a CI machine
    # without Debian's dataset-fashion-mnist package.
    env = {**os.environ, data.FASHION_MNIST_DIR_ENV: str(tmp_path / "no-idx-files"), "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, str(script), "--quick", "--no-progress", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    for name in training.BASELINES:
        paths = training.baseline_paths(name, directory=tmp_path / "out")
        for kind, path in paths.items():
            assert path.is_file() and path.stat().st_size > 0, f"{name}: no {kind} file {path}"
        curve = pd.read_csv(paths["csv"])
        assert list(curve.columns) == list(training.HISTORY_FIELDS)
        assert len(curve) == 1 and math.isfinite(curve.test_top1[0])
        assert networks.load_npz(paths["model"]).has_params
