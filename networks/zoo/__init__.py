"""The model zoo: one module per network family, each function returning an architecture."""
from __future__ import annotations

from typing import Callable

from networks.network import Network

from networks.zoo import alexnet, cifar, googlenet, lenet, mobilenet, resnet, squeezenet, vgg

# name -> (builder, one-line description with the source of the architecture)
ZOO: dict[str, tuple[Callable[[], Network], str]] = {
    "alexnet": (alexnet.alexnet, "AlexNet, two-tower (groups=2 in CONV2/4/5), 227x227, as Eyeriss runs it"),
    "alexnet_single_tower": (alexnet.alexnet_single_tower, "AlexNet without groups (one tower), 227x227"),
    "vgg16": (vgg.vgg16, "VGG-16 (Simonyan & Zisserman 2015, configuration D), 224x224"),
    "googlenet": (googlenet.googlenet, "GoogLeNet / Inception v1 (Szegedy et al. 2015), no auxiliary heads"),
    "squeezenet1_0": (squeezenet.squeezenet1_0, "SqueezeNet v1.0 (Iandola et al. 2016)"),
    "squeezenet1_1": (squeezenet.squeezenet1_1, "SqueezeNet v1.1 (2.4x less computation than v1.0)"),
    "resnet18": (resnet.resnet18, "ResNet-18 (He et al. 2016)"),
    "resnet50": (resnet.resnet50, "ResNet-50 (He et al. 2016), stride in the first 1x1 conv of a block"),
    "mobilenet_v1": (mobilenet.mobilenet_v1, "MobileNet v1 1.0-224 (Howard et al. 2017)"),
    "lenet5": (lenet.lenet5, "LeNet-5 (LeCun et al. 1998), 32x32x1, full C3 connectivity"),
    "cifar_cnn": (cifar.cifar_cnn, "small CNN for 32x32 inputs (3 conv + 2 FC, batch norm)"),
}
