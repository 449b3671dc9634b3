"""Backward passes against central finite differences (float64, small random shapes)."""
from __future__ import annotations

import numpy as np
import pytest

from networks import backprop
from networks.layers import (
    LRN, Add, AvgPool, BatchNorm, Concat, Conv2D, Dropout, Flatten, FullyConnected, GlobalAvgPool,
    MaxPool, ReLU, Softmax, im2col,
)
from networks.network import Network

EPS = 1e-6
TOLERANCE = 1e-6  # relative error; float64 central differences reach ~1e-9 on smooth layers


def _relative_error(a: np.ndarray, b: np.ndarray) -> float:
    # The floor keeps exactly-zero gradients (a conv bias before BatchNorm, whose finite
    # differences are pure round-off, ~1e-10) from dividing by ~0.
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), np.max(np.abs(b)), 1e-4))


def _numeric_grad(f, array: np.ndarray) -> np.ndarray:
    """d f / d array by central differences, perturbing ``array`` in place."""
    grad = np.zeros_like(array)
    flat, flat_grad = array.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + EPS
        up = f()
        flat[i] = saved - EPS
        down = f()
        flat[i] = saved
        flat_grad[i] = (up - down) / (2 * EPS)
    return grad


def check_layer(layer, input_shapes, *, seed: int, training: bool = True, params_shapes=None, positive: bool = False):
    """Compare every analytic input and parameter gradient of ``layer`` with finite differences
    of the scalar ``sum(output * projection)``."""
    rng = np.random.default_rng(seed)
    inputs = [rng.standard_normal(shape) for shape in input_shapes]
    if positive:
        inputs = [np.abs(x) + 0.5 for x in inputs]
    shapes = params_shapes or layer.param_shapes([s[1:] for s in input_shapes])
    params = {name: rng.standard_normal(shape) for name, shape in shapes.items()}
    if "running_var" in params:
        params["running_var"] = np.abs(params["running_var"]) + 0.5

    def run():
        # A fresh generator each call: dropout draws the same mask for every evaluation.
        return backprop.layer_forward(layer, inputs, params, training=training, rng=np.random.default_rng(7))

    out, ctx = run()
    assert out.dtype == np.float64
    projection = rng.standard_normal(out.shape)

    def scalar():
        return float(np.sum(run()[0] * projection))

    grad_inputs, grad_params = backprop.layer_backward(layer, ctx, params, projection)
    for x, analytic in zip(inputs, grad_inputs):
        numeric = _numeric_grad(scalar, x)
        assert _relative_error(analytic, numeric) < TOLERANCE, f"{layer.kind} input gradient"
    trained = {k for k in params if k not in backprop.STATE_PARAMS}
    assert set(grad_params) == trained
    for name in trained:
        numeric = _numeric_grad(scalar, params[name])
        assert grad_params[name].shape == params[name].shape
        assert _relative_error(grad_params[name], numeric) < TOLERANCE, f"{layer.kind} {name} gradient"


@pytest.mark.parametrize("seed", range(6))
def test_conv2d_random_stride_padding_groups(seed):
    rng = np.random.default_rng(100 + seed)
    groups = int(rng.choice([1, 2, 3]))
    in_channels = groups * int(rng.integers(1, 3))
    out_channels = groups * int(rng.integers(1, 3))
    kernel = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    stride = int(rng.integers(1, 4))
    padding = int(rng.integers(0, 3))
    size = int(rng.integers(max(kernel), 8))
    layer = Conv2D(
        name="conv", out_channels=out_channels, kernel=kernel, stride=stride, padding=padding,
        groups=groups, bias=bool(seed % 2),
    )
    check_layer(layer, [(2, in_channels, size, size + 1)], seed=seed)


def test_depthwise_conv():
    check_layer(Conv2D(name="dw", out_channels=4, kernel=3, padding=1, stride=2, groups=4), [(2, 4, 6, 6)], seed=1)


def test_fully_connected_on_spatial_input():
    check_layer(FullyConnected(name="fc", out_features=4), [(3, 2, 3, 2)], seed=2)


@pytest.mark.parametrize(
    "kernel, stride, padding, ceil_mode",
    [(2, 2, 0, False), (3, 2, 1, False), (3, 1, 0, False), (3, 2, 0, True), (2, 3, 1, True)],
)
@pytest.mark.parametrize("cls", [MaxPool, AvgPool])
def test_pooling(cls, kernel, stride, padding, ceil_mode):
    layer = cls(name="pool", kernel=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)
    check_layer(layer, [(2, 2, 7, 6)], seed=kernel * 10 + stride)


def test_global_avg_pool():
    check_layer(GlobalAvgPool(name="gap"), [(2, 3, 4, 5)], seed=3)


def test_relu():
    check_layer(ReLU(name="relu"), [(2, 3, 4, 4)], seed=4)


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm(training):
    check_layer(BatchNorm(name="bn"), [(4, 3, 3, 2)], seed=5, training=training)


def test_batchnorm_training_updates_running_statistics():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3, 4, 4)) * 2 + 1
    params = {"gamma": np.ones(3), "beta": np.zeros(3), "running_mean": np.zeros(3), "running_var": np.ones(3)}
    out, ctx = backprop.layer_forward(BatchNorm(name="bn"), [x], params, training=True)
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=(0, 2, 3)), 1, rtol=1e-4)
    m = backprop.BN_MOMENTUM
    np.testing.assert_allclose(ctx.state_updates["running_mean"], m * x.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(ctx.state_updates["running_var"], (1 - m) + m * x.var(axis=(0, 2, 3), ddof=1))


def test_dropout_training_mask_and_eval_identity():
    layer = Dropout(name="drop", p=0.5)
    check_layer(layer, [(4, 3, 2, 2)], seed=6, training=True)
    x = np.ones((1000, 4, 1, 1))
    out, _ = backprop.layer_forward(layer, [x], {}, training=True, rng=np.random.default_rng(0))
    assert set(np.unique(out)) == {0.0, 2.0}
    assert abs(out.mean() - 1) < 0.05
    out, _ = backprop.layer_forward(layer, [x], {}, training=False)
    assert out is x


def test_flatten_softmax_concat_add():
    check_layer(Flatten(name="flat"), [(2, 3, 2, 2)], seed=7)
    check_layer(Softmax(name="prob"), [(3, 5, 1, 1)], seed=8)
    check_layer(Concat(name="cat", inputs=("a", "b")), [(2, 2, 3, 3), (2, 3, 3, 3)], seed=9)
    check_layer(Add(name="add", inputs=("a", "b", "c")), [(2, 3, 2, 2)] * 3, seed=10)


def test_lrn_backward_raises_naming_the_layer():
    layer = LRN(name="norm1")
    x = np.random.default_rng(0).standard_normal((1, 6, 3, 3))
    _, ctx = backprop.layer_forward(layer, [x], {}, training=True)
    with pytest.raises(NotImplementedError, match="LRN layer 'norm1'"):
        backprop.layer_backward(layer, ctx, {}, x)


def test_softmax_cross_entropy_gradient():
    rng = np.random.default_rng(11)
    logits = rng.standard_normal((5, 7, 1, 1))
    labels = rng.integers(0, 7, 5)
    loss, grad, probs = backprop.softmax_cross_entropy(logits, labels)
    np.testing.assert_allclose(probs.sum(axis=1), 1)
    numeric = _numeric_grad(lambda: backprop.softmax_cross_entropy(logits, labels)[0], logits)
    assert _relative_error(grad, numeric) < TOLERANCE
    with pytest.raises(ValueError, match="labels must lie in"):
        backprop.softmax_cross_entropy(logits, np.full(5, 7))


def test_im2col_offsets_matches_layers_im2col():
    x = np.random.default_rng(12).standard_normal((2, 6, 7, 5)).astype(np.float32)
    for stride, padding, groups in [(1, 0, 1), (2, 1, 3), (3, 2, 2)]:
        np.testing.assert_array_equal(
            backprop.im2col_offsets(x, (3, 2), stride=stride, padding=padding, groups=groups),
            im2col(x, (3, 2), stride, padding, groups),
        )


def _dag_network() -> Network:
    """Every layer kind in one small DAG: branches, Add, Concat, BN, pooling, Flatten, FC."""
    layers = [
        Conv2D(name="conv1", out_channels=4, kernel=3, padding=1, stride=2),
        BatchNorm(name="bn1"),
        ReLU(name="relu1"),
        Conv2D(name="branch_a", inputs=("relu1",), out_channels=4, kernel=3, padding=1, groups=2, bias=False),
        Conv2D(name="branch_b", inputs=("relu1",), out_channels=4, kernel=1),
        Add(name="add", inputs=("branch_a", "branch_b", "relu1")),
        MaxPool(name="pool_max", inputs=("add",), kernel=3, stride=2, padding=1),
        AvgPool(name="pool_avg", inputs=("add",), kernel=2),
        Concat(name="cat", inputs=("pool_max", "pool_avg")),
        Dropout(name="drop", p=0.3),
        Flatten(name="flat"),
        FullyConnected(name="fc1", out_features=6),
        ReLU(name="relu2"),
        FullyConnected(name="fc2", out_features=5),
        Softmax(name="prob"),
    ]
    return Network(name="dag", input_shape=(2, 8, 8), layers=layers)


def test_whole_network_gradient_with_masks():
    network = _dag_network().init_params(np.random.default_rng(0))
    rng = np.random.default_rng(1)
    network.set_mask("fc1", rng.random(network.param_shapes("fc1")["weight"]) > 0.5)
    network.set_mask("branch_a", rng.random(network.param_shapes("branch_a")["weight"]) > 0.3)
    # float64 parameters (set directly: set_params stores float32) for exact finite differences.
    network.params = {k: {p: a.astype(np.float64) for p, a in v.items()} for k, v in network.params.items()}
    x = rng.standard_normal((3, 2, 8, 8))
    labels = rng.integers(0, 5, 3)

    def loss():
        tape = backprop.forward_train(network, x, training=True, rng=np.random.default_rng(3), update_state=False)
        return backprop.softmax_cross_entropy(tape.logits, labels)[0]

    tape = backprop.forward_train(network, x, training=True, rng=np.random.default_rng(3), update_state=False)
    assert tape.logits_name == "fc2"
    _, grad_logits, _ = backprop.softmax_cross_entropy(tape.logits, labels)
    grads = backprop.backward(network, tape, grad_logits)
    assert set(grads) == {"conv1", "bn1", "branch_a", "branch_b", "fc1", "fc2"}
    for layer_name in ("conv1", "bn1", "branch_a", "fc1"):
        for param_name, analytic in grads[layer_name].items():
            numeric = _numeric_grad(loss, network.params[layer_name][param_name])
            if layer_name in network.masks and param_name == "weight":
                # The loss does not depend on pruned weights: both gradients vanish there.
                assert np.all(analytic[~network.masks[layer_name]] == 0)
                assert np.all(numeric[~network.masks[layer_name]] == 0)
            assert _relative_error(analytic, numeric) < 1e-5, f"{layer_name}.{param_name}"


def test_eval_forward_matches_inference_forward():
    network = _dag_network().init_params(np.random.default_rng(2))
    network.params["bn1"]["running_mean"] = np.full(4, 0.3, np.float32)
    network.params["bn1"]["running_var"] = np.full(4, 2.0, np.float32)
    x = np.random.default_rng(3).standard_normal((4, 2, 8, 8)).astype(np.float32)
    tape = backprop.forward_train(network, x, training=False)
    _, _, probs = backprop.softmax_cross_entropy(tape.logits, np.zeros(4, int))
    np.testing.assert_allclose(probs, network.forward(x).reshape(4, -1), rtol=1e-5, atol=1e-6)


def test_check_trainable_rejects_lrn_before_training():
    network = Network(
        name="with_lrn", input_shape=(3, 6, 6),
        layers=[Conv2D(name="conv", out_channels=4, kernel=3), LRN(name="norm1"), Flatten(name="flat"),
                FullyConnected(name="fc", out_features=2)],
    )
    with pytest.raises(NotImplementedError, match="LRN layer 'norm1'"):
        backprop.check_trainable(network)
