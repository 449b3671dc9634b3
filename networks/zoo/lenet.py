"""LeNet-5 (LeCun et al. 1998) on 32x32x1 inputs, in its common modern form: C3 connects to all
six S2 maps (the original's partial connection table is not used), max pooling, ReLU, and the
120-84-10 classifier as fully-connected layers."""
from __future__ import annotations

from networks.layers import Conv2D, FullyConnected, MaxPool, ReLU, Softmax
from networks.network import Network


def lenet5() -> Network:
    layers = [
        Conv2D(name="conv1", in_channels=1, out_channels=6, kernel=5),
        ReLU(name="relu1"),
        MaxPool(name="pool1", kernel=2),
        Conv2D(name="conv2", in_channels=6, out_channels=16, kernel=5),
        ReLU(name="relu2"),
        MaxPool(name="pool2", kernel=2),
        FullyConnected(name="fc3", in_features=16 * 5 * 5, out_features=120),
        ReLU(name="relu3"),
        FullyConnected(name="fc4", in_features=120, out_features=84),
        ReLU(name="relu4"),
        FullyConnected(name="fc5", in_features=84, out_features=10),
        Softmax(name="prob"),
    ]
    return Network(name="lenet5", input_shape=(1, 32, 32), layers=layers)
