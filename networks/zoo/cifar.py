"""A small CNN for 32x32 inputs (CIFAR-shaped; also Fashion-MNIST padded to 32x32): three
conv-BN-ReLU-pool stages of 32, 64, 128 channels and a 256-unit hidden FC layer."""
from __future__ import annotations

from networks.layers import BatchNorm, Conv2D, Dropout, FullyConnected, Layer, MaxPool, ReLU, Softmax
from networks.network import Network


def cifar_cnn(in_channels: int = 3, classes: int = 10) -> Network:
    layers: list[Layer] = []
    channels = in_channels
    for stage, width in enumerate((32, 64, 128), start=1):
        layers += [
            Conv2D(name=f"conv{stage}", in_channels=channels, out_channels=width, kernel=3, padding=1, bias=False),
            BatchNorm(name=f"bn{stage}"),
            ReLU(name=f"relu{stage}"),
            MaxPool(name=f"pool{stage}", kernel=2),
        ]
        channels = width
    layers += [
        FullyConnected(name="fc4", in_features=128 * 4 * 4, out_features=256),
        ReLU(name="relu4"),
        Dropout(name="drop4"),
        FullyConnected(name="fc5", in_features=256, out_features=classes),
        Softmax(name="prob"),
    ]
    return Network(name="cifar_cnn", input_shape=(in_channels, 32, 32), layers=layers)
