"""VGG-16, configuration D of Simonyan & Zisserman (ICLR 2015): thirteen 3x3 convs, three FC."""
from __future__ import annotations

from networks.layers import Conv2D, Dropout, FullyConnected, Layer, MaxPool, ReLU, Softmax
from networks.network import Network

_STAGES = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


def vgg16() -> Network:
    layers: list[Layer] = []
    channels = 3
    for stage, (width, depth) in enumerate(_STAGES, start=1):
        for index in range(1, depth + 1):
            layers += [
                Conv2D(name=f"conv{stage}_{index}", in_channels=channels, out_channels=width, kernel=3, padding=1),
                ReLU(name=f"relu{stage}_{index}"),
            ]
            channels = width
        layers.append(MaxPool(name=f"pool{stage}", kernel=2, stride=2))
    layers += [
        FullyConnected(name="fc6", in_features=512 * 7 * 7, out_features=4096),
        ReLU(name="relu6"),
        Dropout(name="drop6"),
        FullyConnected(name="fc7", in_features=4096, out_features=4096),
        ReLU(name="relu7"),
        Dropout(name="drop7"),
        FullyConnected(name="fc8", in_features=4096, out_features=1000),
        Softmax(name="prob"),
    ]
    return Network(name="vgg16", input_shape=(3, 224, 224), layers=layers)
