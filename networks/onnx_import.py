"""Import a CNN from an ONNX file as a :class:`~networks.network.Network`.

``onnx`` is an optional dependency (``pip install -e ".[onnx]"``); it is imported when
:func:`from_onnx` is called, never when ``networks`` is imported.

How the graph is read:

* Constant sub-graphs (initializers and the ``Constant``, ``ConstantOfShape``, ``Identity``,
  ``Reshape``, ``Unsqueeze``, ``Squeeze``, ``Transpose``, ``Cast`` nodes that only read constants)
  are folded to NumPy arrays first. ``ConstantOfShape`` becomes a read-only broadcast view, so
  graphs whose weights are generated that way (the ``light_*`` models shipped with onnx) cost no
  memory; such weights are read-only in ``network.params``.
* Only nodes that the graph output depends on are imported (dead branches are dropped). Every
  unsupported operator among them is listed in one :class:`NetworkError`, raised before any layer
  is built. Attribute values the layer types cannot express (asymmetric conv padding, dilations,
  non-square pooling windows, ...) raise a :class:`NetworkError` naming the node.
* One layer per operator, named after the ONNX node (sanitised, made unique; an unnamed node
  takes its operator type), wired by tensor names. A ``Flatten``/``Reshape`` to ``(N, -1)`` read
  only by ``Gemm``/``MatMul`` is folded away, so the fully-connected layer reads the feature map
  directly, as the zoo's networks do; otherwise it becomes a ``Flatten`` layer. ``MatMul`` + ``Add``
  of a constant becomes one ``FullyConnected`` with bias; ``Mul``/``Add`` of a per-channel constant
  after a ``BatchNormalization`` are folded into its ``gamma``/``beta``.
* The input shape is the graph input's ``(C, H, W)``; the batch dimension may be symbolic.
  Weights come from initializers when every parametrised layer has them; a graph whose weights
  are declared as graph inputs without values gives a network with shapes only.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from networks.errors import NetworkError
from networks.layers import (
    LRN,
    NETWORK_INPUT,
    Add,
    AvgPool,
    BatchNorm,
    Concat,
    Conv2D,
    Dropout,
    Flatten,
    FullyConnected,
    GlobalAvgPool,
    Layer,
    MaxPool,
    ReLU,
    Shape,
    Softmax,
    pool_output_size,
)
from networks.network import Network

logger = logging.getLogger(__name__)

# Operators that become layers (or are folded into a neighbouring layer).
LAYER_OPS = frozenset({
    "Conv", "Gemm", "MatMul", "Relu", "MaxPool", "AveragePool", "GlobalAveragePool", "LRN",
    "BatchNormalization", "Concat", "Add", "Sum", "Mul", "Flatten", "Reshape", "Dropout",
    "Softmax", "Identity",
})
# Operators evaluated in NumPy when all their inputs are constants.
FOLDABLE_OPS = frozenset({
    "Constant", "ConstantOfShape", "Identity", "Reshape", "Unsqueeze", "Squeeze", "Transpose", "Cast",
})
# Parameter operand slots: a graph input read only here is a weight without a value.
_PARAM_SLOTS = {"Conv": (1, 2), "Gemm": (1, 2), "MatMul": (1,), "BatchNormalization": (1, 2, 3, 4)}
_FC_OPS = ("Gemm", "MatMul")


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise NetworkError(
            'importing ONNX models needs the optional dependency onnx: pip install -e ".[onnx]"'
        ) from exc
    return onnx


def from_onnx(path: str | Path, *, name: str | None = None) -> Network:
    """The CNN in the ONNX file ``path`` as a Network named ``name`` (default: the file stem)."""
    onnx = _import_onnx()
    path = Path(path)
    if not path.is_file():
        raise NetworkError(f"ONNX file {str(path)!r} does not exist")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf raises several types for a corrupt file
        raise NetworkError(f"{path}: not a readable ONNX model ({exc})") from exc
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
    return _Importer(onnx, model.graph, path, opset).build(name or _sanitise(path.stem) or "onnx_model")


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------
def _sanitise(text: str) -> str:
    return re.sub(r"_+", "_", re.sub(r"[^0-9A-Za-z_]", "_", text)).strip("_")


def _attrs(onnx: Any, node: Any) -> dict[str, Any]:
    values = {}
    for attribute in node.attribute:
        value = onnx.helper.get_attribute_value(attribute)
        values[attribute.name] = value.decode() if isinstance(value, bytes) else value
    return values


def _onnx_pool_size(size: int, kernel: int, stride: int, begin: int, end: int, ceil_mode: bool) -> int:
    span = size + begin + end - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + begin:  # last window may not start in the end padding
        out -= 1
    return out


# ------------------------------------------------------------------------------------------------
# Constant folding
# ------------------------------------------------------------------------------------------------
def _fold_constant(onnx: Any, node: Any, inputs: list[np.ndarray | None], attrs: dict) -> np.ndarray:
    op = node.op_type
    if op == "Constant":
        if "value" in attrs:
            return onnx.numpy_helper.to_array(attrs["value"])
        for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                           ("value_int", np.int64), ("value_ints", np.int64)):
            if key in attrs:
                return np.asarray(attrs[key], dtype=dtype)
        raise ValueError(f"Constant without a supported value attribute ({sorted(attrs)})")
    if op == "ConstantOfShape":
        value = onnx.numpy_helper.to_array(attrs["value"]).ravel() if "value" in attrs else np.zeros(1, np.float32)
        return np.broadcast_to(value[:1].reshape(()), tuple(int(v) for v in inputs[0]))
    if op == "Identity":
        return inputs[0]
    if op == "Reshape":
        x, target = inputs[0], [int(v) for v in inputs[1]]
        target = [x.shape[i] if v == 0 and not attrs.get("allowzero", 0) else v for i, v in enumerate(target)]
        return x.reshape(target)
    if op in ("Unsqueeze", "Squeeze"):
        axes = attrs.get("axes")
        if axes is None and len(inputs) > 1 and inputs[1] is not None:
            axes = [int(v) for v in inputs[1]]
        x = inputs[0]
        if op == "Squeeze":
            return np.squeeze(x, axis=None if axes is None else tuple(a % x.ndim for a in axes))
        rank = x.ndim + len(axes)
        for axis in sorted(a % rank for a in axes):
            x = np.expand_dims(x, axis)
        return x
    if op == "Transpose":
        return np.transpose(inputs[0], attrs.get("perm"))
    if op == "Cast":
        return inputs[0].astype(onnx.helper.tensor_dtype_to_np_dtype(attrs["to"]))
    raise ValueError(f"no constant folding for {op}")


# ------------------------------------------------------------------------------------------------
# The importer
# ------------------------------------------------------------------------------------------------
class _Importer:
    """Reads one graph; ``build`` returns the Network. Used once, by ``from_onnx``."""

    def __init__(self, onnx: Any, graph: Any, path: Path, opset: int) -> None:
        self.onnx, self.graph, self.path, self.opset = onnx, graph, path, opset
        self.all_nodes = list(graph.node)  # one wrapper per node, so that id(node) is stable
        self.attrs = {id(node): _attrs(onnx, node) for node in self.all_nodes}
        self.constants: dict[str, np.ndarray] = {
            t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer
        }
        self.valueless: set[str] = set()  # constants standing in for weights the file does not hold
        self.data_input, self.input_shape = self._graph_input()
        self.nodes = self._needed_nodes()
        self._fold()
        self.compute = [n for n in self.nodes if not all(o in self.constants for o in n.output if o)]
        self.readers: Counter[str] = Counter()
        self.reader_ops: dict[str, set[str]] = {}
        for node in self.compute:
            for tensor in node.input:
                self.readers[tensor] += 1
                self.reader_ops.setdefault(tensor, set()).add(node.op_type)
        for output in graph.output:
            self.readers[output.name] += 1
            self.reader_ops.setdefault(output.name, set()).add("<graph output>")
        # built state
        self.layers: list[Layer] = []
        self.params: dict[str, dict[str, np.ndarray]] = {}
        self.missing_params: set[str] = set()
        self.shapes: dict[str, Shape] = {NETWORK_INPUT: self.input_shape}
        self.source: dict[str, str] = {self.data_input: NETWORK_INPUT}  # tensor -> layer
        self.rank: dict[str, int] = {self.data_input: 4}  # tensor -> rank of the ONNX tensor
        self.used_names: set[str] = {NETWORK_INPUT}

    # --- graph reading -----------------------------------------------------------------------
    def _error(self, message: str) -> NetworkError:
        return NetworkError(f"{self.path}: {message}")

    def _graph_input(self) -> tuple[str, Shape]:
        declared = [i for i in self.graph.input if i.name not in self.constants]
        param_only: set[str] = set()
        other_uses: set[str] = set()
        for node in self.all_nodes:
            for slot, tensor in enumerate(node.input):
                if slot in _PARAM_SLOTS.get(node.op_type, ()):
                    param_only.add(tensor)
                else:
                    other_uses.add(tensor)
        weights = [i for i in declared if i.name in param_only and i.name not in other_uses]
        data = [i for i in declared if i not in weights]
        if len(data) != 1:
            raise self._error(
                f"expected one data input, found {len(data)}: {[i.name for i in data]}"
            )
        for value_info in weights:  # declared weights without values: zeros, for the shapes
            dims = value_info.type.tensor_type.shape.dim
            if not dims or any(not d.HasField("dim_value") for d in dims):
                raise self._error(f"weight input {value_info.name!r} has no static shape and no value")
            self.constants[value_info.name] = np.broadcast_to(np.float32(0), tuple(d.dim_value for d in dims))
            self.valueless.add(value_info.name)
        dims = data[0].type.tensor_type.shape.dim
        sizes = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        self.batch = sizes[0] if sizes else None  # None when symbolic
        chw = sizes[1:]
        if len(dims) != 4 or any(v is None or v < 1 for v in chw):
            described = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
            raise self._error(
                f"input {data[0].name!r} must be (N, C, H, W) with static C, H, W; got {described}"
            )
        return data[0].name, tuple(chw)  # type: ignore[return-value]

    def _needed_nodes(self) -> list[Any]:
        if len(self.graph.output) != 1:
            raise self._error(f"expected one graph output, found {[o.name for o in self.graph.output]}")
        producer = {out: node for node in self.all_nodes for out in node.output if out}
        needed: set[int] = set()
        stack = [self.graph.output[0].name]
        while stack:
            node = producer.get(stack.pop())
            if node is None or id(node) in needed:
                continue
            needed.add(id(node))
            stack.extend(t for t in node.input if t)
        return [node for node in self.all_nodes if id(node) in needed]

    def _fold(self) -> None:
        for node in self.nodes:
            inputs = [t for t in node.input if t]
            if node.op_type not in FOLDABLE_OPS or not all(t in self.constants for t in inputs):
                continue
            values = [self.constants[t] if t else None for t in node.input]
            try:
                result = _fold_constant(self.onnx, node, values, self.attrs[id(node)])
            except Exception as exc:
                raise self._error(f"cannot fold constant node {node.name or node.op_type!r}: {exc}") from exc
            self.constants[node.output[0]] = result
            if any(t in self.valueless for t in inputs):
                self.valueless.add(node.output[0])

    # --- the unsupported-operator check ------------------------------------------------------
    def _unsupported(self) -> list[str]:
        found: Counter[str] = Counter()
        for node in self.compute:
            op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
            if op not in LAYER_OPS:
                found[op] += 1
            elif op == "Reshape":
                target = self.constants.get(node.input[1])
                if target is None or target.size != 2:
                    found["Reshape (to other than 2-D)"] += 1
            elif op == "Flatten" and self.attrs[id(node)].get("axis", 1) != 1:
                found["Flatten (axis other than 1)"] += 1
            elif op == "Mul" and not any(t in self.constants for t in node.input):
                found["Mul (of two activations)"] += 1
            elif op in ("Conv", "Gemm", "MatMul") and node.input[1] not in self.constants:
                found[f"{op} (weights computed at run time)"] += 1
        return [f"{op} ({count} node{'s' if count > 1 else ''})" for op, count in sorted(found.items())]

    # --- building ----------------------------------------------------------------------------
    def build(self, name: str) -> Network:
        unsupported = self._unsupported()
        if unsupported:
            raise self._error(
                f"unsupported ONNX operators: {', '.join(unsupported)}; supported: "
                f"{', '.join(sorted(LAYER_OPS))} (plus constant sub-graphs of {', '.join(sorted(FOLDABLE_OPS))})"
            )
        converters: dict[str, Callable[[Any, dict], None]] = {
            "Conv": self._conv, "Gemm": self._gemm, "MatMul": self._gemm, "Relu": self._simple,
            "MaxPool": self._pool, "AveragePool": self._pool, "GlobalAveragePool": self._simple,
            "LRN": self._lrn, "BatchNormalization": self._batchnorm, "Concat": self._concat,
            "Add": self._add, "Sum": self._add, "Mul": self._mul, "Flatten": self._flatten,
            "Reshape": self._flatten, "Dropout": self._dropout, "Softmax": self._softmax,
            "Identity": self._alias,
        }
        for node in self.compute:
            converters[node.op_type](node, self.attrs[id(node)])
        output = self.graph.output[0].name
        if self.source.get(output) != self.layers[-1].name:
            raise self._error(f"graph output {output!r} is not produced by the last imported layer")
        params = None
        if self.params and not self.missing_params:
            params = self.params
        elif self.params:
            logger.info("%s: weights missing for %s; importing shapes only", self.path, sorted(self.missing_params))
        return Network(name=name, input_shape=self.input_shape, layers=self.layers, params=params)

    def _layer_name(self, node: Any) -> str:
        base = _sanitise(node.name) or node.op_type.lower()
        name, index = base, 1
        while name in self.used_names:
            name, index = f"{base}_{index}", index + 1
        self.used_names.add(name)
        return name

    def _activation(self, node: Any, tensor: str) -> str:
        if tensor in self.constants:
            raise self._error(f"node {node.name or node.op_type!r} reads constant {tensor!r} where an activation is expected")
        if tensor not in self.source:
            raise self._error(f"node {node.name or node.op_type!r} reads {tensor!r}, which no imported node produces")
        return self.source[tensor]

    def _const(self, node: Any, tensor: str, what: str) -> np.ndarray:
        if tensor not in self.constants:
            raise self._error(f"node {node.name or node.op_type!r}: {what} ({tensor!r}) must be a constant")
        return self.constants[tensor]

    def _emit(self, node: Any, layer_type: type[Layer], sources: list[str], rank: int | None = None,
              params: dict[str, np.ndarray] | None = None, from_tensors: tuple[str, ...] = (), **fields: Any) -> Layer:
        layer = layer_type(name=self._layer_name(node), inputs=tuple(sources), **fields)
        self.shapes[layer.name] = layer.output_shape([self.shapes[s] for s in sources])
        self.layers.append(layer)
        if params is not None:
            self.params[layer.name] = params
            if any(t in self.valueless for t in from_tensors):
                self.missing_params.add(layer.name)
        self.source[node.output[0]] = layer.name
        self.rank[node.output[0]] = self.rank[node.input[0]] if rank is None else rank
        return layer

    def _alias(self, node: Any, attrs: dict) -> None:
        self.source[node.output[0]] = self._activation(node, node.input[0])
        self.rank[node.output[0]] = self.rank[node.input[0]]

    def _replace(self, old: Layer, new: Layer) -> None:
        self.layers[self.layers.index(old)] = new

    def _producer(self, tensor: str) -> Layer | None:
        name = self.source.get(tensor)
        return next((layer for layer in self.layers if layer.name == name), None)

    # --- converters --------------------------------------------------------------------------
    def _simple(self, node: Any, attrs: dict) -> None:
        layer_type = {"Relu": ReLU, "GlobalAveragePool": GlobalAvgPool}[node.op_type]
        self._emit(node, layer_type, [self._activation(node, node.input[0])])

    def _dropout(self, node: Any, attrs: dict) -> None:
        ratio = attrs.get("ratio", 0.5)
        if len(node.input) > 1 and node.input[1]:
            ratio = float(self._const(node, node.input[1], "the dropout ratio"))
        self._emit(node, Dropout, [self._activation(node, node.input[0])], p=float(ratio))

    def _conv(self, node: Any, attrs: dict) -> None:
        label = node.name or node.op_type
        source = self._activation(node, node.input[0])
        weight = self._const(node, node.input[1], "the weight")
        if weight.ndim != 4:
            raise self._error(f"Conv {label!r}: only 2-D convolutions are supported (weight rank {weight.ndim})")
        if any(d != 1 for d in attrs.get("dilations", (1, 1))):
            raise self._error(f"Conv {label!r}: dilations {list(attrs['dilations'])} are not supported (only 1)")
        kernel = tuple(attrs.get("kernel_shape", weight.shape[2:]))
        strides = tuple(attrs.get("strides", (1, 1)))
        if strides[0] != strides[1]:
            raise self._error(f"Conv {label!r}: strides {list(strides)} differ between height and width")
        _, h, w = self.shapes[source]
        pads = self._pads(label, attrs, kernel, strides[0], (h, w))
        if len(set(pads)) != 1:
            raise self._error(
                f"Conv {label!r}: pads {list(pads)} are not symmetric and equal in height and width "
                f"(Conv2D has one padding for all four sides)"
            )
        params = {"weight": weight.astype(np.float32, copy=False)}
        has_bias = len(node.input) > 2 and bool(node.input[2])
        if has_bias:
            params["bias"] = self._const(node, node.input[2], "the bias").astype(np.float32, copy=False)
        self._emit(
            node, Conv2D, [source], params=params, from_tensors=tuple(node.input[1:]),
            out_channels=int(weight.shape[0]), kernel=kernel, stride=int(strides[0]), padding=int(pads[0]),
            groups=int(attrs.get("group", 1)), bias=has_bias,
        )

    def _pads(self, label: str, attrs: dict, kernel: tuple[int, ...], stride: int, size: tuple[int, int]) -> tuple[int, ...]:
        """(h_begin, w_begin, h_end, w_end), with auto_pad resolved."""
        auto_pad = attrs.get("auto_pad", "NOTSET")
        if auto_pad in ("NOTSET", "VALID"):
            return tuple(int(p) for p in attrs.get("pads", (0, 0, 0, 0))) if auto_pad == "NOTSET" else (0, 0, 0, 0)
        if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
            raise self._error(f"{label!r}: unknown auto_pad {auto_pad!r}")
        totals = [max((math.ceil(n / stride) - 1) * stride + k - n, 0) for n, k in zip(size, kernel)]
        small = [t // 2 for t in totals]
        large = [t - t // 2 for t in totals]
        return (*small, *large) if auto_pad == "SAME_UPPER" else (*large, *small)

    def _pool(self, node: Any, attrs: dict) -> None:
        label = node.name or node.op_type
        if len(node.output) > 1 and node.output[1] and self.readers[node.output[1]]:
            raise self._error(f"MaxPool {label!r}: the Indices output is not supported")
        source = self._activation(node, node.input[0])
        _, h, w = self.shapes[source]
        kernel = tuple(int(k) for k in attrs["kernel_shape"])
        strides = tuple(int(s) for s in attrs.get("strides", (1, 1)))
        if len(kernel) != 2 or any(d != 1 for d in attrs.get("dilations", (1, 1))):
            raise self._error(f"{node.op_type} {label!r}: only 2-D pooling without dilation is supported")
        hb, wb, he, we = self._pads(label, attrs, kernel, strides[0], (h, w))
        ceil_mode = bool(attrs.get("ceil_mode", 0))
        out = (_onnx_pool_size(h, kernel[0], strides[0], hb, he, ceil_mode),
               _onnx_pool_size(w, kernel[1], strides[1], wb, we, ceil_mode))
        average = node.op_type == "AveragePool"
        include_pad = bool(attrs.get("count_include_pad", 0))
        whole_map = out == (1, 1) and kernel[0] - hb >= h and kernel[1] - wb >= w
        if average and whole_map and (not include_pad or (hb == wb == 0 and kernel == (h, w))):
            # one window over the whole map: the mean of every value, when padding does not count
            self._emit(node, GlobalAvgPool, [source])
            return
        if kernel[0] != kernel[1] or strides[0] != strides[1] or hb != wb:
            raise self._error(
                f"{node.op_type} {label!r}: kernel {list(kernel)}, strides {list(strides)}, pads "
                f"{[hb, wb, he, we]} need a square window, one stride and equal begin pads"
            )
        # End pads beyond the begin pads are what ceil mode adds: find the mode that gives ONNX's size
        for mode in (ceil_mode, not ceil_mode):
            ours = tuple(pool_output_size(n, kernel[0], strides[0], hb, mode) for n in (h, w))
            if ours == out:  # same window starts and count, so the same windows
                break
        else:
            raise self._error(
                f"{node.op_type} {label!r}: pads {[hb, wb, he, we]} give output {out}, which symmetric "
                f"padding with or without ceil mode does not reproduce"
            )
        padded = hb > 0 or (mode and any((n - 1) * strides[0] + kernel[0] > size + hb
                                          for n, size in zip(out, (h, w))))
        if average and padded and not include_pad:
            raise self._error(
                f"AveragePool {label!r}: padding with count_include_pad=0 is not supported (AvgPool "
                f"divides by the full window, counting padding as zeros)"
            )
        layer_type = AvgPool if average else MaxPool
        self._emit(node, layer_type, [source], kernel=kernel[0], stride=strides[0], padding=hb, ceil_mode=mode)

    def _lrn(self, node: Any, attrs: dict) -> None:
        size = int(attrs["size"])
        if size % 2 == 0:
            raise self._error(f"LRN {node.name or 'LRN'!r}: size {size} is even; only odd sizes are supported")
        self._emit(
            node, LRN, [self._activation(node, node.input[0])], size=size,
            alpha=float(attrs.get("alpha", 1e-4)), beta=float(attrs.get("beta", 0.75)), k=float(attrs.get("bias", 1.0)),
        )

    def _batchnorm(self, node: Any, attrs: dict) -> None:
        label = node.name or node.op_type
        if attrs.get("training_mode", 0) or any(self.readers[o] for o in node.output[1:] if o):
            raise self._error(f"BatchNormalization {label!r}: only the inference form is supported")
        names = ("gamma", "beta", "running_mean", "running_var")
        params = {
            key: np.asarray(self._const(node, tensor, key), dtype=np.float32)
            for key, tensor in zip(names, node.input[1:5])
        }
        self._emit(node, BatchNorm, [self._activation(node, node.input[0])], params=params,
                   from_tensors=tuple(node.input[1:5]), eps=float(attrs.get("epsilon", 1e-5)))

    def _concat(self, node: Any, attrs: dict) -> None:
        rank = self.rank[node.input[0]]
        axis = int(attrs.get("axis", 1))
        if axis % rank != 1:
            raise self._error(f"Concat {node.name or 'Concat'!r}: only axis 1 (channels) is supported, got {axis}")
        self._emit(node, Concat, [self._activation(node, t) for t in node.input], rank=rank)

    def _add(self, node: Any, attrs: dict) -> None:
        tensors = [t for t in node.input if t]
        constant = [t for t in tensors if t in self.constants]
        if not constant:
            if len(tensors) == 1:
                self._alias(node, attrs)
                return
            self._emit(node, Add, [self._activation(node, t) for t in tensors], rank=self.rank[tensors[0]])
            return
        (tensor,) = [t for t in tensors if t not in self.constants] or [None]
        if len(tensors) != 2 or tensor is None:
            raise self._error(f"{node.op_type} {node.name!r}: expected one activation and one constant")
        self._affine(node, tensor, shift=self.constants[constant[0]], scale=None)

    def _mul(self, node: Any, attrs: dict) -> None:
        constant = [t for t in node.input if t in self.constants]
        tensor = [t for t in node.input if t not in self.constants]
        if len(constant) != 1 or len(tensor) != 1:
            raise self._error(f"Mul {node.name!r}: expected one activation and one constant")
        self._affine(node, tensor[0], shift=None, scale=self.constants[constant[0]])

    def _affine(self, node: Any, tensor: str, *, shift: np.ndarray | None, scale: np.ndarray | None) -> None:
        """Fold ``x * scale`` or ``x + shift`` (per channel) into the layer producing ``x``."""
        label = node.name or node.op_type
        producer = self._producer(tensor)
        if producer is None or self.readers[tensor] != 1:
            raise self._error(
                f"{node.op_type} {label!r} with a constant operand must directly follow a BatchNormalization "
                f"or (for Add) a Gemm/MatMul that nothing else reads"
            )
        channels = self.shapes[producer.name][0]
        value = np.asarray(shift if shift is not None else scale, dtype=np.float32)
        rank = self.rank[tensor]
        shape = (1,) * (rank - value.ndim) + value.shape
        if value.ndim > rank or any(d != 1 for i, d in enumerate(shape) if i != 1) or shape[1] not in (1, channels):
            raise self._error(
                f"{node.op_type} {label!r}: constant of shape {value.shape} is not one value per channel "
                f"of a rank-{rank} tensor with {channels} channels"
            )
        per_channel = np.broadcast_to(value.reshape(-1), (channels,)).astype(np.float32)
        params = self.params.get(producer.name, {})
        if isinstance(producer, BatchNorm):
            if scale is not None:
                params = {**params, "gamma": params["gamma"] * per_channel, "beta": params["beta"] * per_channel}
            else:
                params = {**params, "beta": params["beta"] + per_channel}
        elif isinstance(producer, FullyConnected) and shift is not None and not producer.bias:
            self._replace(producer, dataclasses.replace(producer, bias=True))
            params = {**params, "bias": per_channel}
        else:
            raise self._error(
                f"{node.op_type} {label!r} with a constant operand follows {producer.kind} {producer.name!r}; it can "
                f"only be folded into a BatchNormalization (Mul, Add) or a bias-free Gemm/MatMul (Add)"
            )
        self.params[producer.name] = params
        if any(t in self.valueless for t in node.input):
            self.missing_params.add(producer.name)
        self.source[node.output[0]] = producer.name
        self.rank[node.output[0]] = self.rank[tensor]

    def _flatten(self, node: Any, attrs: dict) -> None:
        label = node.name or node.op_type
        source = self._activation(node, node.input[0])
        c, h, w = self.shapes[source]
        if node.op_type == "Reshape":
            target = [int(v) for v in self.constants[node.input[1]]]
            batch = (0, self.batch) if target[1] == -1 else (-1, 0, self.batch)
            if len(target) != 2 or target[1] not in (-1, c * h * w) or target[0] not in batch:
                raise self._error(f"Reshape {label!r}: target {target} is not (N, -1) of a (N, {c}, {h}, {w}) input")
        if self.reader_ops.get(node.output[0], set()) <= set(_FC_OPS):
            self._alias(node, attrs)  # the fully-connected layer reads the feature map directly
            self.rank[node.output[0]] = 2
            return
        self._emit(node, Flatten, [source], rank=2)

    def _softmax(self, node: Any, attrs: dict) -> None:
        label = node.name or node.op_type
        rank = self.rank[node.input[0]]
        source = self._activation(node, node.input[0])
        axis = int(attrs.get("axis", 1 if self.opset < 13 else -1)) % rank
        _, h, w = self.shapes[source]
        # before opset 13 the axis flattens every later dimension into the softmax
        if axis != 1 or (self.opset < 13 and rank == 4 and h * w != 1):
            raise self._error(f"Softmax {label!r}: only a softmax over channels is supported (axis {axis}, rank {rank})")
        self._emit(node, Softmax, [source], rank=rank)

    def _gemm(self, node: Any, attrs: dict) -> None:
        label = node.name or node.op_type
        source = self._activation(node, node.input[0])
        if self.rank[node.input[0]] != 2:
            raise self._error(f"{node.op_type} {label!r}: input must be 2-D (N, features); flatten it first")
        weight = self._const(node, node.input[1], "the weight")
        if weight.ndim != 2:
            raise self._error(f"{node.op_type} {label!r}: weight must be 2-D, got shape {weight.shape}")
        if attrs.get("transA", 0):
            raise self._error(f"Gemm {label!r}: transA=1 is not supported")
        weight = weight if attrs.get("transB", 0) else weight.T  # -> (M, K)
        alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
        params = {"weight": (weight * np.float32(alpha) if alpha != 1.0 else weight).astype(np.float32, copy=False)}
        has_bias = node.op_type == "Gemm" and len(node.input) > 2 and bool(node.input[2])
        if has_bias:
            bias = np.asarray(self._const(node, node.input[2], "the bias"), dtype=np.float32)
            if bias.size not in (1, weight.shape[0]):
                raise self._error(f"Gemm {label!r}: bias of shape {bias.shape} is not one per output")
            bias = np.broadcast_to(bias.reshape(-1), (weight.shape[0],))
            params["bias"] = bias * np.float32(beta) if beta != 1.0 else bias
        self._emit(node, FullyConnected, [source], rank=2, params=params, from_tensors=tuple(node.input[1:]),
                   out_features=int(weight.shape[0]), in_features=int(weight.shape[1]), bias=has_bias)
