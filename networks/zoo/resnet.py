"""ResNet-18 and ResNet-50 (He et al., CVPR 2016, Table 1), 224x224. Convolutions carry batch
norm and no bias. In ResNet-50's bottleneck blocks the stride sits on the first 1x1 conv, as in
the authors' original model (the variant whose MAC count, 3.9 G, is the one usually published);
projection shortcuts (1x1 conv + BN) are used where the shape changes."""
from __future__ import annotations

from networks.layers import (
    Add, BatchNorm, Conv2D, FullyConnected, GlobalAvgPool, Layer, MaxPool, ReLU, Softmax,
)
from networks.network import Network


def _conv_bn(name: str, source: str, out_channels: int, kernel: int, stride: int = 1, relu: bool = True) -> tuple[list[Layer], str]:
    layers: list[Layer] = [
        Conv2D(name=name, inputs=(source,), out_channels=out_channels, kernel=kernel, stride=stride,
               padding=kernel // 2, bias=False),
        BatchNorm(name=f"{name}_bn"),
    ]
    if relu:
        layers.append(ReLU(name=f"{name}_relu"))
    return layers, layers[-1].name


def _block(name: str, source: str, in_channels: int, width: int, stride: int, bottleneck: bool) -> tuple[list[Layer], str, int]:
    out_channels = width * 4 if bottleneck else width
    if bottleneck:
        a, x = _conv_bn(f"{name}_conv1", source, width, 1, stride)
        b, x = _conv_bn(f"{name}_conv2", x, width, 3)
        c, x = _conv_bn(f"{name}_conv3", x, out_channels, 1, relu=False)
        layers = a + b + c
    else:
        a, x = _conv_bn(f"{name}_conv1", source, width, 3, stride)
        b, x = _conv_bn(f"{name}_conv2", x, width, 3, relu=False)
        layers = a + b
    shortcut = source
    if stride != 1 or in_channels != out_channels:
        proj, shortcut = _conv_bn(f"{name}_downsample", source, out_channels, 1, stride, relu=False)
        layers += proj
    layers += [Add(name=f"{name}_add", inputs=(x, shortcut)), ReLU(name=f"{name}_relu")]
    return layers, f"{name}_relu", out_channels


def _resnet(name: str, depths: tuple[int, ...], bottleneck: bool) -> Network:
    stem, x = _conv_bn("conv1", "input", 64, 7, stride=2)
    layers: list[Layer] = stem + [MaxPool(name="pool1", inputs=(x,), kernel=3, stride=2, padding=1)]
    x, channels = "pool1", 64
    for stage, (depth, width) in enumerate(zip(depths, (64, 128, 256, 512)), start=2):
        for index in range(depth):
            stride = 2 if index == 0 and stage > 2 else 1
            block, x, channels = _block(f"layer{stage}_{index}", x, channels, width, stride, bottleneck)
            layers += block
    layers += [
        GlobalAvgPool(name="pool5", inputs=(x,)),
        FullyConnected(name="fc", in_features=channels, out_features=1000),
        Softmax(name="prob"),
    ]
    return Network(name=name, input_shape=(3, 224, 224), layers=layers)


def resnet18() -> Network:
    return _resnet("resnet18", (2, 2, 2, 2), bottleneck=False)


def resnet50() -> Network:
    return _resnet("resnet50", (3, 4, 6, 3), bottleneck=True)
