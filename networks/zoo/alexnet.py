"""AlexNet (Krizhevsky et al. 2012) as Eyeriss runs it: 227x227 input, two towers expressed as
groups=2 in CONV2, CONV4 and CONV5 (Chen et al., ISCA 2016, Table of AlexNet shapes). FC1 reads
the 6x6x256 feature map directly, i.e. it is the convolution with R = S = 6."""
from __future__ import annotations

from networks.layers import LRN, Conv2D, Dropout, FullyConnected, MaxPool, ReLU, Softmax
from networks.network import Network


def _alexnet(name: str, groups: int) -> Network:
    lrn = dict(size=5, alpha=1e-4, beta=0.75, k=2.0)
    layers = [
        Conv2D(name="conv1", in_channels=3, out_channels=96, kernel=11, stride=4),
        ReLU(name="relu1"),
        LRN(name="norm1", **lrn),
        MaxPool(name="pool1", kernel=3, stride=2),
        Conv2D(name="conv2", in_channels=96, out_channels=256, kernel=5, padding=2, groups=groups),
        ReLU(name="relu2"),
        LRN(name="norm2", **lrn),
        MaxPool(name="pool2", kernel=3, stride=2),
        Conv2D(name="conv3", in_channels=256, out_channels=384, kernel=3, padding=1),
        ReLU(name="relu3"),
        Conv2D(name="conv4", in_channels=384, out_channels=384, kernel=3, padding=1, groups=groups),
        ReLU(name="relu4"),
        Conv2D(name="conv5", in_channels=384, out_channels=256, kernel=3, padding=1, groups=groups),
        ReLU(name="relu5"),
        MaxPool(name="pool5", kernel=3, stride=2),
        FullyConnected(name="fc6", in_features=256 * 6 * 6, out_features=4096),
        ReLU(name="relu6"),
        Dropout(name="drop6"),
        FullyConnected(name="fc7", in_features=4096, out_features=4096),
        ReLU(name="relu7"),
        Dropout(name="drop7"),
        FullyConnected(name="fc8", in_features=4096, out_features=1000),
        Softmax(name="prob"),
    ]
    return Network(name=name, input_shape=(3, 227, 227), layers=layers)


def alexnet() -> Network:
    return _alexnet("alexnet", groups=2)


def alexnet_single_tower() -> Network:
    return _alexnet("alexnet_single_tower", groups=1)
