"""ONNX import: small graphs built here against an independent NumPy forward pass, errors, and the
architecture graphs shipped with onnx (``onnx/backend/test/data/light``) against the zoo."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper

import networks
from networks import GlobalAvgPool, MaxPool, Network, NetworkError
from sim.cli import main

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


# ------------------------------------------------------------------------------------------------
# Building small models and an independent NumPy reference
# ------------------------------------------------------------------------------------------------
def _save(tmp_path: Path, nodes: list, weights: dict[str, np.ndarray], input_shape: tuple, output: str,
          *, batch: int | str = "N", file_name: str = "model.onnx", opset: int = 13) -> Path:
    graph = helper.make_graph(
        nodes, "test",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, *input_shape])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(v.astype(np.float32), name=k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    path = tmp_path / file_name
    onnx.save(model, str(path))
    return path


def _conv(x, w, b, *, stride=1, pad=0, groups=1):
    """Direct grouped convolution with explicit loops over output positions."""
    n, _, h, wd = x.shape
    m, cg, r, s = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    p, q = (h + 2 * pad - r) // stride + 1, (wd + 2 * pad - s) // stride + 1
    out = np.zeros((n, m, p, q))
    mg = m // groups
    for g in range(groups):
        for i in range(p):
            for j in range(q):
                patch = xp[:, g * cg:(g + 1) * cg, i * stride:i * stride + r, j * stride:j * stride + s]
                out[:, g * mg:(g + 1) * mg, i, j] = np.tensordot(patch, w[g * mg:(g + 1) * mg], axes=([1, 2, 3], [1, 2, 3]))
    return out + (0 if b is None else b[None, :, None, None])


def _pool(x, k, stride, reduce):
    n, c, h, w = x.shape
    p, q = (h - k) // stride + 1, (w - k) // stride + 1
    return np.array([[[[reduce(x[a, ch, i * stride:i * stride + k, j * stride:j * stride + k])
                        for j in range(q)] for i in range(p)] for ch in range(c)] for a in range(n)])


def _random(rng, shape, scale=0.3):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


# ------------------------------------------------------------------------------------------------
# Small graphs: structure and forward pass
# ------------------------------------------------------------------------------------------------
def test_conv_relu_pool_flatten_gemm_matches_numpy(tmp_path, rng):
    w = {"w1": _random(rng, (6, 3, 3, 3)), "b1": _random(rng, (6,)),
         "w2": _random(rng, (10, 6 * 4 * 4)), "b2": _random(rng, (10,)),
         "w3": _random(rng, (10, 5)), "b3": _random(rng, (5,)), "shape": np.array([0, -1])}
    w["shape"] = w["shape"].astype(np.int64)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv/1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu 1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Reshape", ["p1", "shape"], ["f1"], name="flat"),
        helper.make_node("Gemm", ["f1", "w2", "b2"], ["g1"], name="fc1", transB=1),
        helper.make_node("Relu", ["g1"], ["r2"], name="relu2"),
        helper.make_node("MatMul", ["r2", "w3"], ["m3"], name="fc2"),
        helper.make_node("Add", ["m3", "b3"], ["y"], name="fc2_bias"),
    ]
    net = networks.from_onnx(_save(tmp_path, nodes, {**w, "shape": w["shape"]}, (3, 8, 8), "y"))
    assert net.name == "model" and net.input_shape == (3, 8, 8)
    # the reshape is folded: fc1 reads the pooled map directly (R = S = 4), MatMul + Add is one layer
    assert [(layer.name, layer.kind) for layer in net.layers] == [
        ("conv_1", "Conv2D"), ("relu_1", "ReLU"), ("pool", "MaxPool"), ("fc1", "FullyConnected"),
        ("relu2", "ReLU"), ("fc2", "FullyConnected")]
    assert net.loop_dims("fc1")[2:8] == (10, 6, 1, 1, 4, 4)
    assert net.param_shapes("fc2") == {"weight": (5, 10), "bias": (5,)}
    x = _random(rng, (2, 3, 8, 8), 1.0)
    h = np.maximum(_conv(x, w["w1"], w["b1"], pad=1), 0)
    h = _pool(h, 2, 2, np.max).reshape(2, -1)
    h = np.maximum(h @ w["w2"].T + w["b2"], 0)
    expected = h @ w["w3"] + w["b3"]
    np.testing.assert_allclose(net.forward(x)[:, :, 0, 0], expected, rtol=1e-4, atol=1e-5)


def test_residual_add_batchnorm_global_pool_softmax_matches_numpy(tmp_path, rng):
    c = 4
    w = {"w1": _random(rng, (c, c, 3, 3)), "w2": _random(rng, (c, c, 1, 1)),
         "g": 1 + _random(rng, (c,)), "b": _random(rng, (c,)), "mu": _random(rng, (c,)),
         "var": 1 + np.abs(_random(rng, (c,)))}
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "g", "b", "mu", "var"], ["bn1"], name="bn1", epsilon=1e-3),
        helper.make_node("Relu", ["bn1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", kernel_shape=[1, 1]),
        helper.make_node("Add", ["c2", "x"], ["s"], name="add"),
        helper.make_node("Relu", ["s"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["gp"], name="gap"),
        helper.make_node("Flatten", ["gp"], ["f"], name="flatten"),
        helper.make_node("Softmax", ["f"], ["y"], name="prob", axis=1),
    ]
    net = networks.from_onnx(_save(tmp_path, nodes, w, (c, 5, 5), "y"), name="res")
    assert net.name == "res"
    assert net.input_names("add") == ("conv2", "input")
    assert net.layer("conv1").bias is False and net.layer("bn1").eps == pytest.approx(1e-3)
    x = _random(rng, (3, c, 5, 5), 1.0)
    h = _conv(x, w["w1"], None, pad=1)
    h = (h - w["mu"][None, :, None, None]) / np.sqrt(w["var"][None, :, None, None] + 1e-3)
    h = np.maximum(h * w["g"][None, :, None, None] + w["b"][None, :, None, None], 0)
    h = np.maximum(_conv(h, w["w2"], None) + x, 0).mean(axis=(2, 3))
    expected = np.exp(h) / np.exp(h).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(net.forward(x).reshape(3, c), expected, rtol=1e-4, atol=1e-6)


def test_concat_and_grouped_conv_match_numpy(tmp_path, rng):
    w = {"wa": _random(rng, (4, 2, 3, 3)), "ba": _random(rng, (4,)),  # groups=2 on 4 channels
         "wb": _random(rng, (3, 4, 1, 1)), "wc": _random(rng, (6, 7, 3, 3))}
    nodes = [
        helper.make_node("Conv", ["x", "wa", "ba"], ["a"], name="grouped", kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=2),
        helper.make_node("Conv", ["x", "wb"], ["b"], name="", kernel_shape=[1, 1]),
        helper.make_node("Concat", ["a", "b"], ["cat"], name="cat", axis=1),
        helper.make_node("Conv", ["cat", "wc"], ["c"], name="", strides=[2, 2]),
        helper.make_node("AveragePool", ["c"], ["y"], name="avg", kernel_shape=[2, 2], strides=[1, 1]),
    ]
    net = networks.from_onnx(_save(tmp_path, nodes, w, (4, 9, 9), "y"))
    assert net.layer("grouped").groups == 2
    assert [layer.name for layer in net.layers] == ["grouped", "conv", "cat", "conv_1", "avg"]  # unique names
    x = _random(rng, (2, 4, 9, 9), 1.0)
    h = np.concatenate([_conv(x, w["wa"], w["ba"], pad=1, groups=2), _conv(x, w["wb"], None)], axis=1)
    expected = _pool(_conv(h, w["wc"], None, stride=2), 2, 1, np.mean)
    np.testing.assert_allclose(net.forward(x), expected, rtol=1e-4, atol=1e-5)


def test_asymmetric_pool_pads_become_ceil_mode(tmp_path, rng):
    nodes = [helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1])]
    net = networks.from_onnx(_save(tmp_path, nodes, {}, (2, 8, 8), "y"))
    assert net.layer("pool") == MaxPool(name="pool", inputs=("input",), kernel=3, stride=2, ceil_mode=True)
    x = _random(rng, (1, 2, 8, 8), 1.0)
    expected = _pool(np.pad(x, ((0, 0), (0, 0), (0, 1), (0, 1)), constant_values=-np.inf), 3, 2, np.max)
    np.testing.assert_array_equal(net.forward(x), expected)


# ------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------
def test_every_unsupported_operator_is_named_in_one_error(tmp_path):
    nodes = [
        helper.make_node("Sigmoid", ["x"], ["a"], name="s"),
        helper.make_node("Transpose", ["a"], ["b"], name="t", perm=[0, 1, 3, 2]),
        helper.make_node("Relu", ["b"], ["c"], name="r"),
        helper.make_node("Sigmoid", ["c"], ["y"], name="s2"),
    ]
    path = _save(tmp_path, nodes, {}, (2, 4, 4), "y", file_name="bad.onnx")
    with pytest.raises(NetworkError, match="unsupported ONNX operators: Sigmoid \\(2 nodes\\), Transpose \\(1 node\\)") as info:
        networks.from_onnx(path)
    assert "bad.onnx" in str(info.value)


@pytest.mark.parametrize("attributes, message", [
    ({"pads": [1, 1, 0, 0]}, "not symmetric"),
    ({"dilations": [2, 2]}, "dilations"),
    ({"strides": [1, 2]}, "strides"),
])
def test_conv_attributes_the_layer_cannot_express_are_errors(tmp_path, rng, attributes, message):
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3, 3], **attributes)]
    with pytest.raises(NetworkError, match=message):
        networks.from_onnx(_save(tmp_path, nodes, {"w": _random(rng, (2, 2, 3, 3))}, (2, 8, 8), "y"))


def test_get_loads_onnx_files_and_names_a_missing_one(tmp_path, rng):
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3, 3])]
    path = _save(tmp_path, nodes, {"w": _random(rng, (2, 2, 3, 3))}, (2, 8, 8), "y", batch=1)
    net = networks.get(str(path), seed=0)
    np.testing.assert_array_equal(net.params["conv"]["weight"], np.asarray(
        numpy_helper.to_array(onnx.load(str(path)).graph.initializer[0])))  # the file's weights are kept
    missing = tmp_path / "nothing.onnx"
    with pytest.raises(NetworkError, match="nothing.onnx"):
        networks.get(str(missing))
    assert networks.get("alexnet").name == "alexnet"  # zoo names unchanged


def test_cli_runs_an_onnx_file(tmp_path, rng):
    w = {"w": _random(rng, (4, 3, 3, 3)), "f": _random(rng, (10, 4 * 6 * 6))}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3]),
             helper.make_node("Flatten", ["c"], ["f1"], name="flat"),
             helper.make_node("Gemm", ["f1", "f"], ["y"], name="fc", transB=1)]
    path = _save(tmp_path, nodes, w, (3, 8, 8), "y", batch=1)
    out = tmp_path / "run"
    assert main(["run", "--network", str(path), "--hw", "eyeriss_v1", "--out", str(out), "--no-progress"]) == 0
    layers = pd.read_csv(out / "layers.csv")
    assert list(layers.layer) == ["conv", "fc"] and list(layers.macs_dense) == [4 * 27 * 36, 10 * 144]


# ------------------------------------------------------------------------------------------------
# The architecture graphs shipped with onnx, against the zoo
# ------------------------------------------------------------------------------------------------
def _mac_layers(network: Network) -> list[tuple]:
    """(kind, output shape, weights, dense MACs) of every MAC layer, order-free (branch order differs)."""
    table = network.summary()
    table = table[table.weights > 0]
    return sorted(zip(table.kind, table.output_shape, table.weights, table.macs_dense))


def _variant(network: Network, *, input_shape=None, change=lambda layer: layer) -> Network:
    return Network(name=f"{network.name}_variant", input_shape=input_shape or network.input_shape,
                   layers=[change(layer) for layer in network.layers])


def _light(stem: str) -> Network:
    path = LIGHT / f"light_{stem}.onnx"
    if not path.is_file():
        pytest.skip(f"{path.name} is not shipped with onnx {onnx.__version__}")
    return networks.from_onnx(path)


def test_light_squeezenet_is_zoo_squeezenet1_1():
    imported, zoo = _light("squeezenet"), networks.get("squeezenet1_1")
    assert _mac_layers(imported) == _mac_layers(zoo)
    assert imported.totals()["macs_dense"] == zoo.totals()["macs_dense"] == 349_151_936


def test_light_bvlc_alexnet_is_two_tower_alexnet_at_224_with_floor_pools():
    """BVLC AlexNet (groups=2, so our ``alexnet``, not the single tower) converted at 224x224 with
    floor-mode pools except pool5 (end pad 1 = ceil mode): 54 -> 26 -> 12 -> 6 instead of our
    227x227 pyramid 55 -> 27 -> 13 -> 6. Weights are equal; every conv has fewer output pixels."""
    imported, zoo = _light("bvlc_alexnet"), networks.get("alexnet")
    assert imported.totals()["weights"] == zoo.totals()["weights"] == 60_954_656
    assert imported.totals()["weights"] != networks.get("alexnet_single_tower").totals()["weights"]
    at_224 = _variant(zoo, input_shape=(3, 224, 224), change=lambda layer: dataclasses.replace(
        layer, ceil_mode=True) if layer.name == "pool5" else layer)
    assert _mac_layers(imported) == _mac_layers(at_224)
    assert imported.totals()["macs_dense"] == 654_560_384 and zoo.totals()["macs_dense"] == 724_406_816


def test_light_resnet50_is_zoo_resnet50_with_stride_on_the_3x3_conv():
    """The Caffe2 ResNet-50 strides in the 3x3 conv of the first block of stages 3-5 (the zoo, like
    the original model, in the first 1x1). That 1x1 conv then runs on the 2x larger input map, so
    it costs 4x its zoo MACs: the totals differ by 3x the zoo MACs of those three convs
    (3 x 3 x 25,690,112 = 231,211,008); weights are equal."""
    imported, zoo = _light("resnet50"), networks.get("resnet50")
    assert imported.totals()["weights"] == zoo.totals()["weights"] == 25_502_912
    moved = [f"layer{stage}_0_conv{i}" for stage in (3, 4, 5) for i in (1, 2)]
    zoo_macs = zoo.summary().set_index("layer").macs_dense
    term = 3 * sum(zoo_macs[f"layer{stage}_0_conv1"] for stage in (3, 4, 5))
    assert term == 231_211_008
    assert imported.totals()["macs_dense"] - zoo.totals()["macs_dense"] == term
    stride_on_3x3 = _variant(zoo, change=lambda layer: dataclasses.replace(
        layer, stride=2 if layer.name.endswith("conv2") else 1) if layer.name in moved else layer)
    assert _mac_layers(imported) == _mac_layers(stride_on_3x3)


def test_light_inception_v1_is_zoo_googlenet_with_floor_pools():
    """The converted GoogLeNet pools in floor mode (the Caffe model: ceil mode), so its maps are
    112 -> 55 -> 27 -> 13 -> 6 instead of 56 -> 28 -> 14 -> 7, and its 7x7 average pool with end
    pad 1 covers the whole 6x6 map (imported as a global pool). Weights are equal."""
    imported, zoo = _light("inception_v1"), networks.get("googlenet")
    assert imported.totals()["weights"] == zoo.totals()["weights"] == 6_990_272
    floor_pools = _variant(zoo, change=lambda layer: (
        dataclasses.replace(layer, ceil_mode=False) if isinstance(layer, MaxPool)
        else GlobalAvgPool(name=layer.name, inputs=layer.inputs) if layer.name == "pool5_7x7_s1" else layer))
    assert _mac_layers(imported) == _mac_layers(floor_pools)
    assert imported.totals()["macs_dense"] == 1_431_556_352 < zoo.totals()["macs_dense"] == 1_582_671_872


@pytest.mark.parametrize("stem, weights, macs", [
    ("vgg19", 143_652_544, 19_632_062_464),  # 16 conv + 3 FC, no zoo twin (the zoo has VGG-16)
    ("zfnet512", 87_242_528, 1_481_727_008),
    ("densenet121", 7_894_208, 2_834_161_664),  # Mul/Add scale after each BN folded into it
])
def test_other_light_graphs_import(stem, weights, macs):
    totals = _light(stem).totals()
    assert (totals["weights"], totals["macs_dense"]) == (weights, macs)


@pytest.mark.parametrize("stem, message", [
    ("shufflenet", r"unsupported ONNX operators: Reshape \(to other than 2-D\) \(32 nodes\), Transpose \(16 nodes\)"),
    ("inception_v2", "count_include_pad=0"),
])
def test_light_graphs_beyond_the_layer_types_give_a_clear_error(stem, message):
    with pytest.raises(NetworkError, match=message):
        _light(stem)
