"""MobileNet v1, width 1.0, 224x224 (Howard et al. 2017, Table 1): a 3x3 stem and thirteen
depthwise-separable blocks (3x3 depthwise conv, groups = channels, then 1x1 pointwise), each
conv followed by batch norm and ReLU."""
from __future__ import annotations

from networks.layers import BatchNorm, Conv2D, FullyConnected, GlobalAvgPool, Layer, ReLU, Softmax
from networks.network import Network

# (pointwise output channels, depthwise stride), Table 1 of the paper
_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
           (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def _conv_bn_relu(name: str, **conv) -> list[Layer]:
    return [Conv2D(name=name, bias=False, **conv), BatchNorm(name=f"{name}_bn"), ReLU(name=f"{name}_relu")]


def mobilenet_v1() -> Network:
    layers = _conv_bn_relu("conv1", in_channels=3, out_channels=32, kernel=3, stride=2, padding=1)
    channels = 32
    for index, (out_channels, stride) in enumerate(_BLOCKS, start=1):
        layers += _conv_bn_relu(
            f"conv_dw{index}", in_channels=channels, out_channels=channels, kernel=3, stride=stride,
            padding=1, groups=channels,
        )
        layers += _conv_bn_relu(f"conv_pw{index}", in_channels=channels, out_channels=out_channels, kernel=1)
        channels = out_channels
    layers += [
        GlobalAvgPool(name="pool"),
        FullyConnected(name="fc", in_features=1024, out_features=1000),
        Softmax(name="prob"),
    ]
    return Network(name="mobilenet_v1", input_shape=(3, 224, 224), layers=layers)
