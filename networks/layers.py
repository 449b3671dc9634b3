"""Layer types of the NumPy CNN representation.

Every layer is a frozen, keyword-only dataclass that knows its own shape rule, parameter shapes,
dense MAC count and inference forward pass. Shapes are per sample, ``(C, H, W)``; activations are
``(N, C, H, W)`` float32 arrays. Fully-connected and flatten outputs stay 4-D as ``(N, C, 1, 1)``
so that every layer sees the same rank.

Layers name their inputs; an empty ``inputs`` means "the previous layer" (or the network input for
the first layer). The reserved name ``"input"`` always means the network input.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from networks.errors import NetworkShapeError

Shape = tuple[int, int, int]

NETWORK_INPUT = "input"


class LoopDims(NamedTuple):
    """The seven-loop nest of a convolution, as accelerators see it.

    M and C count channels *per group*; the layer performs N*G*M*C*P*Q*R*S dense MACs.
    H and W are the padded input height and width, H = (P - 1) * stride + R.
    """

    N: int
    G: int
    M: int
    C: int
    P: int
    Q: int
    R: int
    S: int
    stride: int
    H: int
    W: int

    @property
    def macs(self) -> int:
        return self.N * self.G * self.M * self.C * self.P * self.Q * self.R * self.S


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"expected an int or a pair of ints, got {value!r}")
        return int(value[0]), int(value[1])
    return int(value), int(value)


@dataclass(frozen=True, kw_only=True)
class Layer:
    """Base class. Subclasses override the shape rule and the forward pass."""

    name: str
    inputs: tuple[str, ...] = ()

    kind: ClassVar[str] = "Layer"
    arity: ClassVar[int | None] = 1  # number of inputs; None means "two or more"

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"a {self.kind} layer needs a non-empty string name, got {self.name!r}")
        if self.name == NETWORK_INPUT:
            raise ValueError(f"layer name {NETWORK_INPUT!r} is reserved for the network input")

    # --- shape rules -------------------------------------------------------------------------
    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        return input_shapes[0]

    def param_shapes(self, input_shapes: list[Shape]) -> dict[str, tuple[int, ...]]:
        return {}

    def macs(self, input_shapes: list[Shape]) -> int:
        """Dense multiply-accumulates per sample."""
        return 0

    def loop_dims(self, input_shapes: list[Shape], batch: int = 1) -> LoopDims | None:
        """The conv loop nest for MAC layers, None for layers without MACs."""
        return None

    # --- execution ---------------------------------------------------------------------------
    def forward(self, inputs: list[np.ndarray], params: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    # --- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields["inputs"] = list(self.inputs)
        return {"kind": self.kind, **{k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}}

    def _shape_error(self, expected: str, got: object) -> NetworkShapeError:
        return NetworkShapeError(
            f"layer {self.name!r} ({self.kind}) expects input {expected} but got {got}"
        )


# ------------------------------------------------------------------------------------------------
# MAC layers
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Conv2D(Layer):
    """2-D convolution. ``groups == in_channels`` gives a depthwise convolution.

    Weight layout ``(M, C / groups, R, S)``. ``in_channels`` is optional; when given, it is checked
    against the incoming shape.
    """

    out_channels: int
    kernel: int | tuple[int, int]
    stride: int = 1
    padding: int = 0
    groups: int = 1
    bias: bool = True
    in_channels: int | None = None

    kind: ClassVar[str] = "Conv2D"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "kernel", _pair(self.kernel))
        for field_name in ("out_channels", "stride", "groups"):
            if int(getattr(self, field_name)) < 1:
                raise ValueError(f"layer {self.name!r}: {field_name} must be >= 1")
        if self.padding < 0:
            raise ValueError(f"layer {self.name!r}: padding must be >= 0")
        if self.out_channels % self.groups:
            raise ValueError(
                f"layer {self.name!r}: out_channels={self.out_channels} is not divisible by "
                f"groups={self.groups}"
            )

    def _check(self, input_shapes: list[Shape]) -> Shape:
        c, h, w = input_shapes[0]
        if self.in_channels is not None and c != self.in_channels:
            raise self._shape_error(f"({self.in_channels}, H, W)", input_shapes[0])
        if c % self.groups:
            raise self._shape_error(
                f"channels divisible by groups={self.groups}", input_shapes[0]
            )
        r, s = self.kernel
        if h + 2 * self.padding < r or w + 2 * self.padding < s:
            raise self._shape_error(
                f"padded height/width >= kernel {self.kernel}", input_shapes[0]
            )
        return c, h, w

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        _, h, w = self._check(input_shapes)
        r, s = self.kernel
        p = (h + 2 * self.padding - r) // self.stride + 1
        q = (w + 2 * self.padding - s) // self.stride + 1
        return self.out_channels, p, q

    def param_shapes(self, input_shapes: list[Shape]) -> dict[str, tuple[int, ...]]:
        c, _, _ = self._check(input_shapes)
        shapes = {"weight": (self.out_channels, c // self.groups, *self.kernel)}
        if self.bias:
            shapes["bias"] = (self.out_channels,)
        return shapes

    def loop_dims(self, input_shapes: list[Shape], batch: int = 1) -> LoopDims:
        c, _, _ = self._check(input_shapes)
        _, p, q = self.output_shape(input_shapes)
        r, s = self.kernel
        return LoopDims(
            N=batch, G=self.groups, M=self.out_channels // self.groups, C=c // self.groups,
            P=p, Q=q, R=r, S=s, stride=self.stride,
            H=(p - 1) * self.stride + r, W=(q - 1) * self.stride + s,
        )

    def macs(self, input_shapes: list[Shape]) -> int:
        return self.loop_dims(input_shapes).macs

    def forward(self, inputs: list[np.ndarray], params: dict[str, np.ndarray]) -> np.ndarray:
        return conv2d_forward(
            inputs[0], params["weight"], params.get("bias"),
            stride=self.stride, padding=self.padding, groups=self.groups,
        )


@dataclass(frozen=True, kw_only=True)
class FullyConnected(Layer):
    """Fully-connected layer. A spatial input ``(C, H, W)`` is flattened in C, H, W order, so the
    layer is the convolution with R = H and S = W (how accelerators map it).

    Weight layout ``(M, C * H * W)``.
    """

    out_features: int
    bias: bool = True
    in_features: int | None = None

    kind: ClassVar[str] = "FullyConnected"

    def _features(self, input_shapes: list[Shape]) -> int:
        c, h, w = input_shapes[0]
        if self.in_features is not None and c * h * w != self.in_features:
            raise self._shape_error(f"{self.in_features} features (C*H*W)", input_shapes[0])
        return c * h * w

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        self._features(input_shapes)
        return self.out_features, 1, 1

    def param_shapes(self, input_shapes: list[Shape]) -> dict[str, tuple[int, ...]]:
        shapes = {"weight": (self.out_features, self._features(input_shapes))}
        if self.bias:
            shapes["bias"] = (self.out_features,)
        return shapes

    def loop_dims(self, input_shapes: list[Shape], batch: int = 1) -> LoopDims:
        self._features(input_shapes)
        c, h, w = input_shapes[0]
        return LoopDims(N=batch, G=1, M=self.out_features, C=c, P=1, Q=1, R=h, S=w, stride=1, H=h, W=w)

    def macs(self, input_shapes: list[Shape]) -> int:
        return self.loop_dims(input_shapes).macs

    def forward(self, inputs: list[np.ndarray], params: dict[str, np.ndarray]) -> np.ndarray:
        x = inputs[0]
        out = x.reshape(x.shape[0], -1) @ params["weight"].T
        if "bias" in params:
            out += params["bias"]
        return out.reshape(x.shape[0], -1, 1, 1)


# ------------------------------------------------------------------------------------------------
# Pooling
# ------------------------------------------------------------------------------------------------
def pool_output_size(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> int:
    """Output size of a pooling window (PyTorch's rule: in ceil mode the last window must start
    inside the input or its left padding)."""
    span = size + 2 * padding - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


@dataclass(frozen=True, kw_only=True)
class _Pool(Layer):
    kernel: int
    stride: int | None = None  # None: equal to the kernel
    padding: int = 0
    ceil_mode: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.stride is None:
            object.__setattr__(self, "stride", self.kernel)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        c, h, w = input_shapes[0]
        if h + 2 * self.padding < self.kernel or w + 2 * self.padding < self.kernel:
            raise self._shape_error(f"height/width >= kernel {self.kernel}", input_shapes[0])
        return (
            c,
            pool_output_size(h, self.kernel, self.stride, self.padding, self.ceil_mode),
            pool_output_size(w, self.kernel, self.stride, self.padding, self.ceil_mode),
        )

    def _windows(self, x: np.ndarray, fill: float) -> np.ndarray:
        _, p, q = self.output_shape([x.shape[1:]])
        need_h = (p - 1) * self.stride + self.kernel
        need_w = (q - 1) * self.stride + self.kernel
        pad_h_after = max(0, need_h - x.shape[2] - self.padding)
        pad_w_after = max(0, need_w - x.shape[3] - self.padding)
        xp = np.pad(
            x,
            ((0, 0), (0, 0), (self.padding, pad_h_after), (self.padding, pad_w_after)),
            constant_values=fill,
        )
        win = sliding_window_view(xp, (self.kernel, self.kernel), axis=(2, 3))
        return win[:, :, : need_h - self.kernel + 1 : self.stride, : need_w - self.kernel + 1 : self.stride]


@dataclass(frozen=True, kw_only=True)
class MaxPool(_Pool):
    kind: ClassVar[str] = "MaxPool"

    def forward(self, inputs: list[np.ndarray], params: dict[str, np.ndarray]) -> np.ndarray:
        return self._windows(inputs[0], -np.inf).max(axis=(4, 5))


@dataclass(frozen=True, kw_only=True)
class AvgPool(_Pool):
    """Average pooling; the divisor is the full kernel area (padding counts as zeros)."""

    kind: ClassVar[str] = "AvgPool"

    def forward(self, inputs: list[np.ndarray], params: dict[str, np.ndarray]) -> np.ndarray:
        return self._windows(inputs[0], 0.0).mean(axis=(4, 5), dtype=np.float32)


@dataclass(frozen=True, kw_only=True)
class GlobalAvgPool(Layer):
    kind: ClassVar[str] = "GlobalAvgPool"

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        return input_shapes[0][0], 1, 1

    def forward(self, inputs: list[np.ndarray], params: dict[str, np.ndarray]) -> np.ndarray:
        return inputs[0].mean(axis=(2, 3), keepdims=True, dtype=np.float32)


# ------------------------------------------------------------------------------------------------
# Element-wise and normalisation layers
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ReLU(Layer):
    kind: ClassVar[str] = "ReLU"

    def forward(self, inputs: list[np.ndarray], params: dict[str, np.ndarray]) -> np.ndarray:
        return np.maximum(inputs[0], 0)


@dataclass(frozen=True, kw_only=True)
class LRN(Layer):
    """Local response normalisation across channels (AlexNet, GoogLeNet):
    ``y = x / (k + alpha / size * sum_{window} x^2) ** beta`` (Caffe's and PyTorch's form)."""

    size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0

    kind: ClassVar[str] = "LRN"

    def forward(self, inputs: list[np.ndarray], params: dict[str, np.ndarray]) -> np.ndarray:
        x = inputs[0]
        sq = np.pad(x * x, ((0, 0), (self.size // 2, (self.size - 1) // 2), (0, 0), (0, 0)))
        window_sum = sliding_window_view(sq, self.size, axis=1).sum(axis=-1)
        return (x / (self.k + self.alpha / self.size * window_sum) ** self.beta).astype(np.float32)


@dataclass(frozen=True, kw_only=True)
class BatchNorm(Layer):
    """Batch normalisation in inference form: ``gamma * (x - mean) / sqrt(var + eps) + beta``."""

    eps: float = 1e-5

    kind: ClassVar[str] = "BatchNorm"

    def param_shapes(self, input_shapes: list[Shape]) -> dict[str, tuple[int, ...]]:
        c = input_shapes[0][0]
        return {"gamma": (c,), "beta": (c,), "running_mean": (c,), "running_var": (c,)}

    def scale_shift(self, params: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The per-channel affine map this layer applies at inference."""
        scale = params["gamma"] / np.sqrt(params["running_var"] + self.eps)
        return scale.astype(np.float32), (params["beta"] - params["running_mean"] * scale).astype(np.float32)

    def forward(self, inputs: list[np.ndarray], params: dict[str, np.ndarray]) -> np.ndarray:
        scale, shift = self.scale_shift(params)
        return inputs[0] * scale[None, :, None, None] + shift[None, :, None, None]


@dataclass(frozen=True, kw_only=True)
class Dropout(Layer):
    """Identity at inference."""

    p: float = 0.5

    kind: ClassVar[str] = "Dropout"

    def forward(self, inputs: list[np.ndarray], params: dict[str, np.ndarray]) -> np.ndarray:
        return inputs[0]


@dataclass(frozen=True, kw_only=True)
class Flatten(Layer):
    kind: ClassVar[str] = "Flatten"

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        c, h, w = input_shapes[0]
        return c * h * w, 1, 1

    def forward(self, inputs: list[np.ndarray], params: dict[str, np.ndarray]) -> np.ndarray:
        x = inputs[0]
        return x.reshape(x.shape[0], -1, 1, 1)


@dataclass(frozen=True, kw_only=True)
class Softmax(Layer):
    """Softmax over channels."""

    kind: ClassVar[str] = "Softmax"

    def forward(self, inputs: list[np.ndarray], params: dict[str, np.ndarray]) -> np.ndarray:
        z = inputs[0] - inputs[0].max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


# ------------------------------------------------------------------------------------------------
# Merging layers
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Concat(Layer):
    """Concatenation along channels (Inception, Fire modules)."""

    kind: ClassVar[str] = "Concat"
    arity: ClassVar[int | None] = None

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        spatial = {s[1:] for s in input_shapes}
        if len(spatial) != 1:
            raise self._shape_error("equal height and width on every branch", list(input_shapes))
        return sum(s[0] for s in input_shapes), *input_shapes[0][1:]

    def forward(self, inputs: list[np.ndarray], params: dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate(inputs, axis=1)


@dataclass(frozen=True, kw_only=True)
class Add(Layer):
    """Element-wise sum (residual connections)."""

    kind: ClassVar[str] = "Add"
    arity: ClassVar[int | None] = None

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        if len(set(input_shapes)) != 1:
            raise self._shape_error("identical shapes on every branch", list(input_shapes))
        return input_shapes[0]

    def forward(self, inputs: list[np.ndarray], params: dict[str, np.ndarray]) -> np.ndarray:
        out = inputs[0].copy()
        for x in inputs[1:]:
            out += x
        return out


LAYER_TYPES: dict[str, type[Layer]] = {
    cls.kind: cls
    for cls in (
        Conv2D, FullyConnected, MaxPool, AvgPool, GlobalAvgPool, ReLU, LRN, BatchNorm,
        Dropout, Flatten, Softmax, Concat, Add,
    )
}


def layer_from_dict(spec: dict) -> Layer:
    """Inverse of ``Layer.to_dict``."""
    spec = dict(spec)
    kind = spec.pop("kind")
    if kind not in LAYER_TYPES:
        raise ValueError(f"unknown layer kind {kind!r}; known kinds: {sorted(LAYER_TYPES)}")
    spec["inputs"] = tuple(spec.get("inputs", ()))
    if "kernel" in spec and isinstance(spec["kernel"], list):
        spec["kernel"] = tuple(spec["kernel"])
    return LAYER_TYPES[kind](**spec)


# ------------------------------------------------------------------------------------------------
# Convolution kernel (im2col + batched BLAS matmul)
# ------------------------------------------------------------------------------------------------
def im2col(x: np.ndarray, kernel: tuple[int, int], stride: int, padding: int, groups: int) -> np.ndarray:
    """Unfold ``x`` (N, C, H, W) into columns (G, C/G * R * S, N * P * Q)."""
    n, c, _, _ = x.shape
    r, s = kernel
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding))) if padding else x
    win = sliding_window_view(xp, (r, s), axis=(2, 3))[:, :, ::stride, ::stride]  # N,C,P,Q,R,S
    p, q = win.shape[2], win.shape[3]
    win = win.reshape(n, groups, c // groups, p, q, r, s)
    return np.ascontiguousarray(win.transpose(1, 2, 5, 6, 0, 3, 4)).reshape(groups, -1, n * p * q)


def conv2d_forward(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, *, stride: int, padding: int, groups: int
) -> np.ndarray:
    """Grouped 2-D convolution (cross-correlation, as in every DNN framework)."""
    n = x.shape[0]
    m, cg, r, s = weight.shape
    cols = im2col(x, (r, s), stride, padding, groups)
    p = (x.shape[2] + 2 * padding - r) // stride + 1
    q = (x.shape[3] + 2 * padding - s) // stride + 1
    out = np.matmul(weight.reshape(groups, m // groups, cg * r * s), cols)  # G, M/G, N*P*Q
    out = out.reshape(m, n, p, q).transpose(1, 0, 2, 3)
    if bias is not None:
        out = out + bias[None, :, None, None]
    return np.ascontiguousarray(out, dtype=np.float32)


def fan_in(param_shape: tuple[int, ...]) -> int:
    return int(math.prod(param_shape[1:]))
