"""Pruning building blocks: the paper's toy example, output-error selection against a naive twin,
the least-squares refit against numpy.linalg.lstsq, layer selection errors."""
from __future__ import annotations

import numpy as np
import pytest

from networks.layers import Conv2D, FullyConnected, ReLU
from networks.network import Network
from pruning.calibration import LayerStatistics, layer_statistics, output_error
from pruning.errors import PruningError
from pruning.layer_step import make_pruner
from pruning.lsq import refit
from pruning.magnitude import select_magnitude
from pruning.output_error import select_output_error
from pruning.selection import LayerSelector

TOY_FILTER = np.array([[-2, 1, 1], [1, 1, 1], [1, 1, 1]], np.float32)


def _stats_from(x: np.ndarray, y: np.ndarray, scale: np.ndarray | None = None) -> LayerStatistics:
    """Second moments of X (rows, K) and Y (rows, M), one group."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    return LayerStatistics(layer="layer", gram=(x.T @ x)[None], cross=(x.T @ y)[None], output_sq=(y * y).sum(0)[None],
                           rows=len(x), channel_scale=np.ones(y.shape[1]) if scale is None else scale)


def _toy_network() -> Network:
    net = Network(name="toy", input_shape=(1, 3, 3), layers=[Conv2D(name="conv", out_channels=1, kernel=3, bias=False)])
    net.set_params({"conv": {"weight": TOY_FILTER[None, None]}})
    return net


def test_toy_example_magnitude_error_3_output_error_0():
    # CVPR 2017 (Yang, Chen, Sze), energy-aware pruning poster: all-ones input, keep 6 of 9 weights.
    net = _toy_network()
    stats = layer_statistics(net, net, "conv", np.ones((1, 1, 3, 3), np.float32), rng=np.random.default_rng(0))
    assert stats.rows == 1 and stats.output_sq[0, 0] == 36.0  # output 6
    weights = TOY_FILTER.reshape(1, 1, 9).astype(np.float64)
    keep = np.ones((1, 1, 9), bool)
    by_magnitude = select_magnitude(weights, keep, 6)
    by_output = select_output_error(stats, weights, keep, 6)
    assert by_magnitude.sum() == by_output.sum() == 6
    assert np.sqrt(output_error(stats, weights * by_magnitude)[0, 0]) == pytest.approx(3.0)
    assert output_error(stats, weights * by_output)[0, 0] == pytest.approx(0.0, abs=1e-12)
    assert not by_output[0, 0, 0]  # the -2 goes
    assert by_magnitude[0, 0, 0]  # magnitude keeps it


def _naive_greedy(x, y, weights, keep, count, scale):
    """Obvious twin: remove, one at a time, the (channel, weight) whose removal (kept weights keep
    their values) gives the smallest scaled total squared output error."""
    keep = keep.copy()
    def total(k):
        return sum(scale[m] * np.sum((y[:, m] - x @ (weights[m] * k[m])) ** 2) for m in range(len(weights)))
    for _ in range(int(keep.sum()) - count):
        best, best_err = None, np.inf
        for m, j in zip(*np.nonzero(keep)):
            keep[m, j] = False
            err = total(keep)
            keep[m, j] = True
            if err < best_err - 1e-9:
                best, best_err = (m, j), err
        keep[best] = False
    return keep


@pytest.mark.parametrize("case", range(6))
def test_greedy_selection_matches_naive_twin(case):
    rng = np.random.default_rng(case)
    rows, k, m = 40, 7, 3
    x = rng.standard_normal((rows, k))
    weights = rng.standard_normal((m, k))
    y = x @ weights.T + 0.3 * rng.standard_normal((rows, m))
    scale = rng.uniform(0.5, 2.0, m)
    keep = rng.random((m, k)) < 0.85
    count = int(keep.sum()) // 2
    stats = _stats_from(x, y, np.sqrt(scale))
    chosen = select_output_error(stats, weights[None], keep[None], count, prefilter_factor=100.0)[0]
    np.testing.assert_array_equal(chosen, _naive_greedy(x, y, weights, keep, count, scale))
    assert not np.any(chosen & ~keep)  # never a weight outside the mask


def test_output_error_from_moments_matches_direct():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((50, 6)), rng.standard_normal((50, 4))
    w = rng.standard_normal((4, 6))
    direct = ((y - x @ w.T) ** 2).sum(axis=0)
    np.testing.assert_allclose(output_error(_stats_from(x, y), w[None])[0], direct, rtol=1e-10)


def test_lsq_refit_lowers_error_and_equals_lstsq():
    rng = np.random.default_rng(2)
    rows, k, m = 80, 10, 5
    x = rng.standard_normal((rows, k))
    y = rng.standard_normal((rows, m)) + x @ rng.standard_normal((k, m))
    weights = rng.standard_normal((1, m, k))
    keep = rng.random((1, m, k)) < 0.5
    keep[0, 0] = False  # an emptied channel stays empty
    stats = _stats_from(x, y)
    fitted = refit(stats, weights, keep)
    assert np.all(fitted[~keep] == 0)
    assert np.all(output_error(stats, fitted) <= output_error(stats, weights * keep) + 1e-9)
    for channel in range(m):
        kept = np.flatnonzero(keep[0, channel])
        if kept.size:
            expected = np.linalg.lstsq(x[:, kept], y[:, channel], rcond=None)[0]
            np.testing.assert_allclose(fitted[0, channel, kept], expected, rtol=1e-6, atol=1e-9)


def test_lsq_refit_rank_deficient_gives_min_norm_solution():
    net = _toy_network()  # one row: X = ones(1, 9), rank 1
    stats = layer_statistics(net, net, "conv", np.ones((1, 1, 3, 3), np.float32), rng=np.random.default_rng(0))
    keep = np.zeros((1, 1, 9), bool)
    keep[0, 0, [0, 4, 8]] = True
    fitted = refit(stats, TOY_FILTER.reshape(1, 1, 9).astype(np.float64), keep)
    np.testing.assert_allclose(fitted[0, 0, [0, 4, 8]], np.linalg.lstsq(np.ones((1, 3)), [6.0], rcond=None)[0], rtol=1e-6)


def test_calibration_matches_im2col_of_the_layer():
    rng = np.random.default_rng(3)
    net = Network(name="t", input_shape=(2, 6, 6), layers=[
        Conv2D(name="conv", out_channels=3, kernel=3, padding=1), ReLU(name="relu"),
        FullyConnected(name="fc", out_features=4)]).init_params(rng)
    images = rng.standard_normal((5, 2, 6, 6)).astype(np.float32)
    stats = layer_statistics(net, net, "conv", images, rng=rng, batch_images=2)
    # Y = X A exactly when X and Y come from the same network: the error of the layer's own weights is 0
    weights = net.params["conv"]["weight"].reshape(1, 3, -1).astype(np.float64)
    assert stats.rows == 5 * 36
    np.testing.assert_allclose(output_error(stats, weights), 0, atol=1e-6 * stats.output_sq.max())
    fc = layer_statistics(net, net, "fc", images, rng=rng)
    assert fc.gram.shape == (1, 108, 108) and fc.rows == 5


def test_pruner_never_resurrects():
    net = _toy_network()
    mask = np.ones((1, 1, 3, 3), bool)
    mask[0, 0, 1, 1] = False
    net.set_mask("conv", mask)
    pruner = make_pruner(net, "conv", selection="magnitude", refit=False)
    weights, keep = pruner.prune(5)
    assert not keep.reshape(3, 3)[1, 1]
    grown = np.ones_like(keep)
    with pytest.raises(AssertionError, match="come back"):
        pruner.apply(net, weights, grown)


def test_selection_by_pattern_kind_exclude_and_errors():
    net = Network(name="t", input_shape=(1, 8, 8), layers=[
        Conv2D(name="conv1", out_channels=2, kernel=3), ReLU(name="relu"), Conv2D(name="conv2", out_channels=2, kernel=3),
        FullyConnected(name="fc1", out_features=3)])
    assert LayerSelector().select(net) == ["conv1", "conv2", "fc1"]
    assert LayerSelector(patterns=("conv*",), exclude=("conv2",)).select(net) == ["conv1"]
    assert LayerSelector(kinds=("fc",)).select(net) == ["fc1"]
    with pytest.raises(PruningError, match="matches no layer.*conv1, relu, conv2, fc1"):
        LayerSelector(patterns=("cnv*",)).select(net)
    with pytest.raises(PruningError, match="matches no prunable layer"):
        LayerSelector(patterns=("relu",)).select(net)
    with pytest.raises(PruningError, match="cannot be pruned"):
        LayerSelector(kinds=("pool",)).select(net)


def test_removing_channels_equals_zeroing_their_consumer_columns():
    from pruning.structured import chain, remove_channels

    rng = np.random.default_rng(4)
    from networks.layers import BatchNorm, MaxPool
    net = Network(name="t", input_shape=(2, 8, 8), layers=[
        Conv2D(name="conv1", out_channels=5, kernel=3, padding=1, bias=False), BatchNorm(name="bn1"), ReLU(name="relu1"),
        MaxPool(name="pool1", kernel=2), Conv2D(name="conv2", out_channels=4, kernel=3), ReLU(name="relu2"),
        FullyConnected(name="fc3", out_features=3)]).init_params(rng)
    net.params["bn1"]["running_mean"] = rng.standard_normal(5).astype(np.float32)
    assert chain(net, "conv1") == (["bn1", "relu1", "pool1"], "conv2")
    assert chain(net, "fc3") is None  # the classes
    images = rng.standard_normal((3, 2, 8, 8)).astype(np.float32)
    keep = np.array([0, 2, 3])
    zeroed = net.copy()
    zeroed.params["conv2"]["weight"][:, [1, 4]] = 0
    pruned = remove_channels(net, "conv1", keep)
    assert pruned.param_shapes("conv1")["weight"] == (3, 2, 3, 3)
    np.testing.assert_allclose(pruned.forward(images), zeroed.forward(images), rtol=1e-5, atol=1e-6)
    # an FC consumer: channel c is the block of H*W input features c*H*W .. (c+1)*H*W - 1
    fc_keep = np.array([1, 3])
    zeroed = net.copy()
    zeroed.params["fc3"]["weight"].reshape(3, 4, -1)[:, [0, 2]] = 0
    np.testing.assert_allclose(remove_channels(net, "conv2", fc_keep).forward(images), zeroed.forward(images),
                               rtol=1e-5, atol=1e-6)


def test_deep_compression_densities_give_the_published_weight_count(data_dir, repo_root):
    import importlib.util

    import pandas as pd

    import networks

    published = pd.read_csv(data_dir / "deep_compression_alexnet_densities.csv").set_index("layer").density
    alexnet = networks.get("alexnet")
    kept = sum(published[name] * np.prod(alexnet.param_shapes(name)["weight"]) for name in published.index)
    # Yang, Chen, Sze, CVPR 2017, results table: AlexNet magnitude-pruned (Deep Compression) 6.79M weights
    assert kept / 1e6 == pytest.approx(6.79, rel=0.005)
    spec = importlib.util.spec_from_file_location("prune_alexnet_energy", repo_root / "experiments" / "prune_alexnet_energy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.DEEP_COMPRESSION_ALEXNET == published.to_dict()
