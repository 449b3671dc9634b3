"""SqueezeNet v1.0 and v1.1 (Iandola et al. 2016; v1.1 from the authors' model repository).
A Fire module is a 1x1 squeeze conv feeding parallel 1x1 and 3x3 expand convs, concatenated.
Pools use ceil mode as in the original Caffe models; the classifier is a 1x1 conv + global pool."""
from __future__ import annotations

from networks.layers import Concat, Conv2D, Dropout, GlobalAvgPool, Layer, MaxPool, ReLU, Softmax
from networks.network import Network


def _fire(name: str, source: str, squeeze: int, expand: int) -> tuple[list[Layer], str]:
    layers: list[Layer] = [
        Conv2D(name=f"{name}_squeeze1x1", inputs=(source,), out_channels=squeeze, kernel=1),
        ReLU(name=f"{name}_squeeze1x1_relu"),
        Conv2D(name=f"{name}_expand1x1", inputs=(f"{name}_squeeze1x1_relu",), out_channels=expand, kernel=1),
        ReLU(name=f"{name}_expand1x1_relu"),
        Conv2D(name=f"{name}_expand3x3", inputs=(f"{name}_squeeze1x1_relu",), out_channels=expand, kernel=3, padding=1),
        ReLU(name=f"{name}_expand3x3_relu"),
        Concat(name=f"{name}_concat", inputs=(f"{name}_expand1x1_relu", f"{name}_expand3x3_relu")),
    ]
    return layers, f"{name}_concat"


def _squeezenet(name: str, stem: Conv2D, fires: list[tuple[int, int] | str]) -> Network:
    layers: list[Layer] = [stem, ReLU(name="conv1_relu")]
    source = "conv1_relu"
    index = 2
    pool_index = 1
    for item in fires:
        if item == "pool":
            layers.append(MaxPool(name=f"pool{pool_index}", inputs=(source,), kernel=3, stride=2, ceil_mode=True))
            source = f"pool{pool_index}"
            pool_index += 1
            continue
        squeeze, expand = item
        block, source = _fire(f"fire{index}", source, squeeze, expand)
        layers += block
        index += 1
    layers += [
        Dropout(name="drop9", inputs=(source,)),
        Conv2D(name="conv10", out_channels=1000, kernel=1),
        ReLU(name="conv10_relu"),
        GlobalAvgPool(name="pool10"),
        Softmax(name="prob"),
    ]
    return Network(name=name, input_shape=(3, 224, 224), layers=layers)


def squeezenet1_0() -> Network:
    fires = ["pool", (16, 64), (16, 64), (32, 128), "pool", (32, 128), (48, 192), (48, 192), (64, 256), "pool", (64, 256)]
    return _squeezenet("squeezenet1_0", Conv2D(name="conv1", in_channels=3, out_channels=96, kernel=7, stride=2), fires)


def squeezenet1_1() -> Network:
    fires = ["pool", (16, 64), (16, 64), "pool", (32, 128), (32, 128), "pool", (48, 192), (48, 192), (64, 256), (64, 256)]
    return _squeezenet("squeezenet1_1", Conv2D(name="conv1", in_channels=3, out_channels=64, kernel=3, stride=2), fires)
