"""GoogLeNet / Inception v1 (Szegedy et al., CVPR 2015, Table 1), 224x224, without the two
auxiliary classifiers (they are dropped at inference). Pools use ceil mode, as in the original
Caffe model, so the 112 -> 56 -> 28 -> 14 -> 7 pyramid is reproduced."""
from __future__ import annotations

from networks.layers import (
    LRN, AvgPool, Concat, Conv2D, Dropout, FullyConnected, Layer, MaxPool, ReLU, Softmax,
)
from networks.network import Network

# name: (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj), Table 1 of the paper
_INCEPTION = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


def _conv_relu(name: str, source: str, out_channels: int, kernel: int, padding: int = 0, stride: int = 1) -> list[Layer]:
    return [
        Conv2D(name=name, inputs=(source,), out_channels=out_channels, kernel=kernel, padding=padding, stride=stride),
        ReLU(name=f"{name}_relu"),
    ]


def _inception(tag: str, source: str) -> tuple[list[Layer], str]:
    n1, n3r, n3, n5r, n5, pool_proj = _INCEPTION[tag]
    p = f"inception_{tag}"
    layers = (
        _conv_relu(f"{p}_1x1", source, n1, 1)
        + _conv_relu(f"{p}_3x3_reduce", source, n3r, 1)
        + _conv_relu(f"{p}_3x3", f"{p}_3x3_reduce_relu", n3, 3, padding=1)
        + _conv_relu(f"{p}_5x5_reduce", source, n5r, 1)
        + _conv_relu(f"{p}_5x5", f"{p}_5x5_reduce_relu", n5, 5, padding=2)
        + [MaxPool(name=f"{p}_pool", inputs=(source,), kernel=3, stride=1, padding=1, ceil_mode=True)]
        + _conv_relu(f"{p}_pool_proj", f"{p}_pool", pool_proj, 1)
    )
    branches = (f"{p}_1x1_relu", f"{p}_3x3_relu", f"{p}_5x5_relu", f"{p}_pool_proj_relu")
    layers.append(Concat(name=f"{p}_output", inputs=branches))
    return layers, f"{p}_output"


def googlenet() -> Network:
    lrn = dict(size=5, alpha=1e-4, beta=0.75, k=1.0)
    layers: list[Layer] = [
        *_conv_relu("conv1_7x7_s2", "input", 64, 7, padding=3, stride=2),
        MaxPool(name="pool1_3x3_s2", kernel=3, stride=2, ceil_mode=True),
        LRN(name="pool1_norm1", **lrn),
        *_conv_relu("conv2_3x3_reduce", "pool1_norm1", 64, 1),
        *_conv_relu("conv2_3x3", "conv2_3x3_reduce_relu", 192, 3, padding=1),
        LRN(name="conv2_norm2", **lrn),
        MaxPool(name="pool2_3x3_s2", kernel=3, stride=2, ceil_mode=True),
    ]
    source = "pool2_3x3_s2"
    for tag in _INCEPTION:
        block, source = _inception(tag, source)
        layers += block
        if tag in ("3b", "4e"):
            pool = f"pool{3 if tag == '3b' else 4}_3x3_s2"
            layers.append(MaxPool(name=pool, inputs=(source,), kernel=3, stride=2, ceil_mode=True))
            source = pool
    layers += [
        AvgPool(name="pool5_7x7_s1", inputs=(source,), kernel=7, stride=1),
        Dropout(name="pool5_drop", p=0.4),
        FullyConnected(name="loss3_classifier", in_features=1024, out_features=1000),
        Softmax(name="prob"),
    ]
    return Network(name="googlenet", input_shape=(3, 224, 224), layers=layers)
