"""The forward pass against independent naive loop implementations (tests/naive.py)."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import networks
from networks import layers as L
from tests import naive


@st.composite
def conv_cases(draw):
    groups = draw(st.sampled_from([1, 2, 3]))
    cg = draw(st.integers(1, 3))
    mg = draw(st.integers(1, 3))
    r = draw(st.integers(1, 4))
    s = draw(st.integers(1, 4))
    stride = draw(st.integers(1, 3))
    padding = draw(st.integers(0, 2))
    h = draw(st.integers(max(1, r - 2 * padding), 8))
    w = draw(st.integers(max(1, s - 2 * padding), 8))
    n = draw(st.integers(1, 2))
    seed = draw(st.integers(0, 2**31))
    return dict(groups=groups, cg=cg, mg=mg, r=r, s=s, stride=stride, padding=padding, h=h, w=w, n=n, seed=seed)


@settings(max_examples=60, deadline=None)
@given(conv_cases())
def test_conv_equals_naive_loops(case):
    rng = np.random.default_rng(case["seed"])
    g = case["groups"]
    layer = L.Conv2D(name="c", out_channels=g * case["mg"], kernel=(case["r"], case["s"]),
                     stride=case["stride"], padding=case["padding"], groups=g)
    x = rng.standard_normal((case["n"], g * case["cg"], case["h"], case["w"])).astype(np.float32)
    params = {k: rng.standard_normal(v).astype(np.float32) for k, v in layer.param_shapes([x.shape[1:]]).items()}
    got = layer.forward([x], params)
    want = naive.conv2d(x, params["weight"], params["bias"], stride=case["stride"], padding=case["padding"], groups=g)
    assert got.shape == want.shape == (case["n"], *layer.output_shape([x.shape[1:]]))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_depthwise_conv_equals_naive_loops(rng):
    layer = L.Conv2D(name="dw", out_channels=6, kernel=3, stride=2, padding=1, groups=6)
    x = rng.standard_normal((2, 6, 7, 7)).astype(np.float32)
    params = {k: rng.standard_normal(v).astype(np.float32) for k, v in layer.param_shapes([x.shape[1:]]).items()}
    want = naive.conv2d(x, params["weight"], params["bias"], stride=2, padding=1, groups=6)
    np.testing.assert_allclose(layer.forward([x], params), want, rtol=1e-4, atol=1e-4)


def test_fully_connected_on_spatial_input_equals_naive_loops(rng):
    layer = L.FullyConnected(name="fc", out_features=5)
    x = rng.standard_normal((3, 4, 2, 3)).astype(np.float32)
    params = {k: rng.standard_normal(v).astype(np.float32) for k, v in layer.param_shapes([x.shape[1:]]).items()}
    np.testing.assert_allclose(layer.forward([x], params), naive.fully_connected(x, params["weight"], params["bias"]), rtol=1e-4, atol=1e-4)


@settings(max_examples=60, deadline=None)
@given(
    kernel=st.integers(1, 4), stride=st.integers(1, 3), padding=st.integers(0, 1),
    ceil_mode=st.booleans(), h=st.integers(4, 9), w=st.integers(4, 9), seed=st.integers(0, 2**31),
    reduce=st.sampled_from(["max", "avg"]),
)
def test_pooling_equals_naive_loops(kernel, stride, padding, ceil_mode, h, w, seed, reduce):
    padding = min(padding, kernel // 2)
    cls = L.MaxPool if reduce == "max" else L.AvgPool
    layer = cls(name="p", kernel=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)
    x = np.random.default_rng(seed).standard_normal((2, 3, h, w)).astype(np.float32)
    want = naive.pool(x, kernel=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode, reduce=reduce)
    got = layer.forward([x], {})
    assert got.shape[1:] == layer.output_shape([x.shape[1:]])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_lrn_equals_naive_loops(rng):
    layer = L.LRN(name="n", size=5, alpha=1e-2, beta=0.75, k=2.0)
    x = rng.standard_normal((2, 7, 3, 3)).astype(np.float32)
    np.testing.assert_allclose(layer.forward([x], {}), naive.lrn(x, size=5, alpha=1e-2, beta=0.75, k=2.0), rtol=1e-5)


def test_elementwise_and_merging_layers(rng):
    a = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    b = rng.standard_normal((2, 2, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(L.ReLU(name="r").forward([a], {}), np.where(a > 0, a, 0))
    np.testing.assert_array_equal(L.Concat(name="c").forward([a, b], {})[:, 3:], b)
    np.testing.assert_array_equal(L.Add(name="s").forward([a, a], {}), 2 * a)
    np.testing.assert_array_equal(L.GlobalAvgPool(name="g").forward([a], {})[..., 0, 0], a.mean(axis=(2, 3)))
    soft = L.Softmax(name="p").forward([a], {})
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-6)
    params = {"gamma": np.array([1, 2, 3], np.float32), "beta": np.array([0, 1, 0], np.float32),
              "running_mean": np.array([1, 0, -1], np.float32), "running_var": np.array([4, 1, 0.25], np.float32)}
    bn = L.BatchNorm(name="bn", eps=0.0).forward([a], params)
    np.testing.assert_allclose(bn[:, 1], 2 * a[:, 1] + 1, rtol=1e-6)
    np.testing.assert_allclose(bn[:, 2], 3 * (a[:, 2] + 1) / 0.5, rtol=1e-6)


def test_network_forward_returns_every_activation(rng):
    network = networks.get("lenet5", seed=3)
    x = rng.standard_normal((2, 1, 32, 32)).astype(np.float32)
    out, acts = network.forward(x, return_activations=True)
    assert set(acts) == {"input", *network.layer_names}
    for name in network.layer_names:
        assert acts[name].shape == (2, *network.output_shape(name))
    np.testing.assert_array_equal(out, acts["prob"])
    conv2_input = acts[network.input_names("conv2")[0]]
    want = naive.conv2d(conv2_input, network.params["conv2"]["weight"], network.params["conv2"]["bias"], stride=1, padding=0, groups=1)
    np.testing.assert_allclose(acts["conv2"], want, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(network.forward(x), out)


def test_masks_zero_weights_in_the_forward_pass_and_counts(rng):
    network = networks.get("lenet5", seed=0)
    mask = np.ones((16, 6, 5, 5), bool)
    mask[:8] = False  # half the conv2 filters pruned
    network.set_mask("conv2", mask)
    _, acts = network.forward(rng.standard_normal((1, 1, 32, 32)).astype(np.float32), return_activations=True)
    np.testing.assert_array_equal(acts["conv2"][:, :8], np.broadcast_to(network.params["conv2"]["bias"][:8, None, None], (1, 8, 10, 10)))
    row = network.summary().set_index("layer").loc["conv2"]
    assert row.weights_nonzero == 8 * 6 * 25
    assert row.macs_effective == 8 * 6 * 25 * 10 * 10 == row.macs_dense // 2


def test_initialisation_is_deterministic_per_seed():
    a, b, c = networks.get("cifar_cnn", seed=7), networks.get("cifar_cnn", seed=7), networks.get("cifar_cnn", seed=8)
    np.testing.assert_array_equal(a.params["conv1"]["weight"], b.params["conv1"]["weight"])
    assert not np.array_equal(a.params["conv1"]["weight"], c.params["conv1"]["weight"])


def test_fold_batchnorm_keeps_the_function(rng):
    network = networks.get("cifar_cnn", seed=1)
    for name in network.layer_names:
        if network.layer(name).kind == "BatchNorm":
            c = network.param_shapes(name)["gamma"][0]
            network.params[name] = {
                "gamma": rng.uniform(0.5, 2, c).astype(np.float32), "beta": rng.standard_normal(c).astype(np.float32),
                "running_mean": rng.standard_normal(c).astype(np.float32), "running_var": rng.uniform(0.5, 2, c).astype(np.float32),
            }
    folded = network.fold_batchnorm()
    assert not any(folded.layer(n).kind == "BatchNorm" for n in folded.layer_names)
    assert len(folded.layers) == len(network.layers) - 3
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(folded.forward(x), network.forward(x), rtol=1e-4, atol=1e-6)


def test_residual_network_forward_runs_with_branches(rng):
    network = networks.get("resnet18", seed=0)
    out = network.forward(rng.standard_normal((1, 3, 224, 224)).astype(np.float32))
    assert out.shape == (1, 1000, 1, 1)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out.sum(), 1.0, rtol=1e-5)
