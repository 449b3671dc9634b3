"""Training-form forward pass and backward pass (reverse-mode gradients) for every trainable
layer type of :mod:`networks.layers`.

The inference ``Layer.forward`` methods cast to float32 and know nothing of batch statistics or
dropout, so training runs its own forward here: it keeps the dtype of its input (float64 for
gradient checks, float32 for training), keeps what the backward pass needs (im2col columns,
max-pool arg-maxes, batch-norm statistics, dropout masks) in a per-layer cache, and in training
mode uses batch statistics for BatchNorm and random masks for Dropout. In eval mode it computes
what ``Network.forward`` computes.

Two levels:

* ``layer_forward`` / ``layer_backward`` work on one layer with explicit parameter dicts (what
  the finite-difference tests exercise);
* ``forward_train`` / ``backward`` run a whole ``Network`` (a DAG) and return gradients keyed like
  ``network.params``. Gradients of pruned weights are zero: the forward pass uses weight x mask,
  so the gradient with respect to the stored weight is the effective-weight gradient x mask.

A network whose output layer is a Softmax is trained on the Softmax's input (the logits), so
that softmax and cross-entropy combine into the numerically stable ``softmax_cross_entropy``.
LRN has no backward pass here: ``layer_backward`` raises NotImplementedError naming the layer.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from networks.errors import NetworkError
from networks.layers import (
    NETWORK_INPUT, Add, AvgPool, BatchNorm, Concat, Conv2D, Dropout, Flatten, FullyConnected,
    GlobalAvgPool, Layer, LRN, MaxPool, ReLU, Softmax, _Pool,
)
from networks.network import PRUNABLE_PARAM, Network

logger = logging.getLogger(__name__)

# Fraction of the batch statistics mixed into BatchNorm's running averages each training step
# (PyTorch's default, so weights trained here behave like weights trained there).
BN_MOMENTUM = 0.1

# Parameters that are state, not trained: no gradient, updated by the training forward pass.
STATE_PARAMS = frozenset({"running_mean", "running_var"})

Params = dict[str, np.ndarray]


# ------------------------------------------------------------------------------------------------
# Convolution helpers
# ------------------------------------------------------------------------------------------------
def _conv_out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def im2col_offsets(
    x: np.ndarray, kernel: tuple[int, int], *, stride: int, padding: int, groups: int
) -> np.ndarray:
    """``layers.im2col`` (same layout: (G, C/G * R * S, N * P * Q)), built one kernel offset at a
    time: R * S strided 4-D copies are several times faster here than one 7-D transpose of a
    sliding-window view, which walks memory badly for wide layers."""
    n, c, h, w = x.shape
    r, s = kernel
    p = _conv_out_size(h, r, stride, padding)
    q = _conv_out_size(w, s, stride, padding)
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding))) if padding else x
    channel_major = padded.transpose(1, 0, 2, 3)  # a view: C, N, H, W
    cols = np.empty((c, r, s, n, p, q), dtype=x.dtype)
    for i in range(r):
        for j in range(s):
            cols[:, i, j] = channel_major[:, :, i : i + stride * (p - 1) + 1 : stride, j : j + stride * (q - 1) + 1 : stride]
    return cols.reshape(groups, (c // groups) * r * s, n * p * q)


def col2im(
    cols: np.ndarray, x_shape: tuple[int, ...], kernel: tuple[int, int], *, stride: int, padding: int, groups: int
) -> np.ndarray:
    """Adjoint of ``layers.im2col``: scatter-add columns (G, C/G * R * S, N * P * Q) back into an
    input-shaped array (N, C, H, W). Overlapping windows (stride < kernel) add up."""
    n, c, h, w = x_shape
    r, s = kernel
    p = _conv_out_size(h, r, stride, padding)
    q = _conv_out_size(w, s, stride, padding)
    cols = cols.reshape(groups, c // groups, r, s, n, p, q)
    # Accumulate channel-major so that each kernel offset adds one (C, N, P, Q) slab without a
    # transpose; one transpose at the end restores (N, C, H, W).
    padded = np.zeros((c, n, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    for i in range(r):
        for j in range(s):
            padded[:, :, i : i + stride * (p - 1) + 1 : stride, j : j + stride * (q - 1) + 1 : stride] += (
                cols[:, :, i, j].reshape(c, n, p, q)
            )
    return np.ascontiguousarray(padded[:, :, padding : padding + h, padding : padding + w].transpose(1, 0, 2, 3))


# ------------------------------------------------------------------------------------------------
# Per-layer forward (training or eval form) and backward
# ------------------------------------------------------------------------------------------------
@dataclass
class LayerContext:
    """What one layer's forward pass hands to its backward pass."""

    training: bool
    input_shapes: list[tuple[int, ...]]
    saved: dict[str, Any] = field(default_factory=dict)
    # New values for state parameters (BatchNorm running statistics), applied by the caller.
    state_updates: Params = field(default_factory=dict)


def _conv_forward(layer: Conv2D, xs: list[np.ndarray], params: Params, ctx: LayerContext) -> np.ndarray:
    x = xs[0]
    weight = params["weight"]
    m, cg, r, s = weight.shape
    g = layer.groups
    n = x.shape[0]
    p = _conv_out_size(x.shape[2], r, layer.stride, layer.padding)
    q = _conv_out_size(x.shape[3], s, layer.stride, layer.padding)
    cols = im2col_offsets(x, (r, s), stride=layer.stride, padding=layer.padding, groups=g)
    out = np.matmul(weight.reshape(g, m // g, cg * r * s), cols)
    out = out.reshape(m, n, p, q).transpose(1, 0, 2, 3)
    if "bias" in params:
        out = out + params["bias"][None, :, None, None]
    ctx.saved["cols"] = cols
    return np.ascontiguousarray(out)


def _conv_backward(
    layer: Conv2D, ctx: LayerContext, params: Params, grad: np.ndarray, need_input_grad: bool
) -> tuple[list[np.ndarray | None], Params]:
    weight = params["weight"]
    m, cg, r, s = weight.shape
    g = layer.groups
    cols = ctx.saved["cols"]
    grad_g = np.ascontiguousarray(grad.transpose(1, 0, 2, 3)).reshape(g, m // g, -1)  # G, Mg, NPQ
    grads = {"weight": np.matmul(grad_g, cols.transpose(0, 2, 1)).reshape(weight.shape)}
    if "bias" in params:
        grads["bias"] = grad.sum(axis=(0, 2, 3))
    grad_x = None
    if need_input_grad:
        grad_cols = np.matmul(weight.reshape(g, m // g, cg * r * s).transpose(0, 2, 1), grad_g)
        grad_x = col2im(
            grad_cols, ctx.input_shapes[0], (r, s), stride=layer.stride, padding=layer.padding, groups=g
        )
    return [grad_x], grads


def _fc_forward(layer: FullyConnected, xs: list[np.ndarray], params: Params, ctx: LayerContext) -> np.ndarray:
    x = xs[0]
    flat = x.reshape(x.shape[0], -1)
    out = flat @ params["weight"].T
    if "bias" in params:
        out += params["bias"]
    ctx.saved["flat"] = flat
    return out.reshape(x.shape[0], -1, 1, 1)


def _fc_backward(layer, ctx, params, grad, need_input_grad):
    grad2 = grad.reshape(grad.shape[0], -1)
    grads = {"weight": grad2.T @ ctx.saved["flat"]}
    if "bias" in params:
        grads["bias"] = grad2.sum(axis=0)
    grad_x = (grad2 @ params["weight"]).reshape(ctx.input_shapes[0]) if need_input_grad else None
    return [grad_x], grads


def _pool_geometry(layer: _Pool, x_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Output size (P, Q) and the padded input size the pooling windows cover."""
    _, p, q = layer.output_shape([tuple(x_shape[1:])])
    span_h = (p - 1) * layer.stride + layer.kernel
    span_w = (q - 1) * layer.stride + layer.kernel
    # _windows pads ``padding`` before and max(0, span - size - padding) after.
    padded_h = x_shape[2] + layer.padding + max(0, span_h - x_shape[2] - layer.padding)
    padded_w = x_shape[3] + layer.padding + max(0, span_w - x_shape[3] - layer.padding)
    return p, q, padded_h, padded_w


def _pool_scatter(layer: _Pool, ctx: LayerContext, weights_per_offset: Callable[[int], np.ndarray]) -> np.ndarray:
    """Sum each window offset's share of the output gradient back onto the input (windows may
    overlap), then crop the padding."""
    n, c, h, w = ctx.input_shapes[0]
    p, q, padded_h, padded_w = _pool_geometry(layer, (n, c, h, w))
    k, st = layer.kernel, layer.stride
    padded = None
    for i in range(k):
        for j in range(k):
            share = weights_per_offset(i * k + j)
            if padded is None:
                padded = np.zeros((n, c, padded_h, padded_w), dtype=share.dtype)
            padded[:, :, i : i + st * (p - 1) + 1 : st, j : j + st * (q - 1) + 1 : st] += share
    pad = layer.padding
    return padded[:, :, pad : pad + h, pad : pad + w]


def _maxpool_forward(layer: MaxPool, xs, params, ctx) -> np.ndarray:
    x = xs[0]
    n, c, h, w = x.shape
    p, q, padded_h, padded_w = _pool_geometry(layer, x.shape)
    pad, k, st = layer.padding, layer.kernel, layer.stride
    padded = x
    if (padded_h, padded_w) != (h, w):
        padded = np.pad(
            x, ((0, 0), (0, 0), (pad, padded_h - h - pad), (pad, padded_w - w - pad)), constant_values=-np.inf
        )
    # A running maximum over the k*k window offsets (strided slices) is much cheaper than
    # materialising every window; the strict ">" keeps the first maximum, as argmax would.
    best = argmax = None
    for i in range(k):
        for j in range(k):
            candidate = padded[:, :, i : i + st * (p - 1) + 1 : st, j : j + st * (q - 1) + 1 : st]
            if best is None:
                best = candidate.copy()
                argmax = np.zeros(best.shape, dtype=np.int16)
                continue
            better = candidate > best
            np.copyto(best, candidate, where=better)
            np.copyto(argmax, i * k + j, where=better)  # much faster than boolean indexing
    ctx.saved["argmax"] = argmax
    return best


def _maxpool_backward(layer, ctx, params, grad, need_input_grad):
    argmax = ctx.saved["argmax"]
    if not need_input_grad:
        return [None], {}
    return [_pool_scatter(layer, ctx, lambda offset: grad * (argmax == offset))], {}


def _avgpool_forward(layer: AvgPool, xs, params, ctx) -> np.ndarray:
    x = xs[0]
    return layer._windows(x, 0.0).mean(axis=(4, 5), dtype=x.dtype)


def _avgpool_backward(layer, ctx, params, grad, need_input_grad):
    if not need_input_grad:
        return [None], {}
    share = grad / (layer.kernel * layer.kernel)
    return [_pool_scatter(layer, ctx, lambda offset: share)], {}


def _gap_forward(layer, xs, params, ctx) -> np.ndarray:
    x = xs[0]
    return x.mean(axis=(2, 3), keepdims=True, dtype=x.dtype)


def _gap_backward(layer, ctx, params, grad, need_input_grad):
    n, c, h, w = ctx.input_shapes[0]
    return [np.broadcast_to(grad / (h * w), (n, c, h, w)).copy()], {}


def _relu_forward(layer, xs, params, ctx) -> np.ndarray:
    out = np.maximum(xs[0], 0)
    ctx.saved["active"] = out > 0
    return out


def _relu_backward(layer, ctx, params, grad, need_input_grad):
    return [grad * ctx.saved["active"]], {}


def _bn_forward(layer: BatchNorm, xs, params, ctx) -> np.ndarray:
    x = xs[0]
    gamma = params["gamma"].astype(x.dtype, copy=False)
    beta = params["beta"].astype(x.dtype, copy=False)
    if ctx.training:
        mean = x.mean(axis=(0, 2, 3))
        centred = x - mean[None, :, None, None]
        var = np.einsum("nchw,nchw->c", centred, centred) / (x.size // x.shape[1])  # one fused pass
        count = x.shape[0] * x.shape[2] * x.shape[3]
        # Running variance is the unbiased estimate (as PyTorch keeps it); normalisation uses
        # the biased batch variance.
        unbiased = var * (count / max(count - 1, 1))
        ctx.state_updates = {
            "running_mean": (1 - BN_MOMENTUM) * params["running_mean"] + BN_MOMENTUM * mean,
            "running_var": (1 - BN_MOMENTUM) * params["running_var"] + BN_MOMENTUM * unbiased,
        }
    else:
        mean = params["running_mean"].astype(x.dtype, copy=False)
        var = params["running_var"].astype(x.dtype, copy=False)
        centred = x - mean[None, :, None, None]
    inv_std = 1.0 / np.sqrt(var + layer.eps)
    x_hat = centred * inv_std[None, :, None, None]
    ctx.saved.update(x_hat=x_hat, inv_std=inv_std, gamma=gamma)
    return x_hat * gamma[None, :, None, None] + beta[None, :, None, None]


def _bn_backward(layer, ctx, params, grad, need_input_grad):
    x_hat, inv_std, gamma = ctx.saved["x_hat"], ctx.saved["inv_std"], ctx.saved["gamma"]
    grad_beta = grad.sum(axis=(0, 2, 3))
    grad_gamma = (grad * x_hat).sum(axis=(0, 2, 3))
    grads = {"gamma": grad_gamma, "beta": grad_beta}
    if not need_input_grad:
        return [None], grads
    scale = (gamma * inv_std)[None, :, None, None]
    if ctx.training:
        # The batch mean and variance depend on x too; their gradient terms are the mean of the
        # output gradient and its projection on x_hat.
        count = grad.shape[0] * grad.shape[2] * grad.shape[3]
        grad_x = scale * (
            grad
            - (grad_beta / count)[None, :, None, None]
            - x_hat * (grad_gamma / count)[None, :, None, None]
        )
    else:
        grad_x = grad * scale
    return [grad_x], grads


def _dropout_forward(layer: Dropout, xs, params, ctx) -> np.ndarray:
    x = xs[0]
    if not ctx.training or layer.p == 0:
        return x
    rng = ctx.saved.pop("rng", None)
    if rng is None:
        raise NetworkError(
            f"Dropout layer {layer.name!r}: training mode needs a numpy.random.Generator (pass rng=)"
        )
    if not 0 <= layer.p < 1:
        raise NetworkError(f"Dropout layer {layer.name!r}: p={layer.p} must be in [0, 1) for training")
    # Inverted dropout: scale the kept units at training time so inference is the identity.
    keep = (rng.random(x.shape, dtype=np.float32) >= layer.p).astype(x.dtype) / (1 - layer.p)
    ctx.saved["keep"] = keep
    return x * keep


def _dropout_backward(layer, ctx, params, grad, need_input_grad):
    keep = ctx.saved.get("keep")
    return [grad if keep is None else grad * keep], {}


def _flatten_forward(layer, xs, params, ctx) -> np.ndarray:
    x = xs[0]
    return x.reshape(x.shape[0], -1, 1, 1)


def _flatten_backward(layer, ctx, params, grad, need_input_grad):
    return [grad.reshape(ctx.input_shapes[0])], {}


def _softmax_forward(layer, xs, params, ctx) -> np.ndarray:
    z = xs[0] - xs[0].max(axis=1, keepdims=True)
    e = np.exp(z)
    out = e / e.sum(axis=1, keepdims=True)
    ctx.saved["out"] = out
    return out


def _softmax_backward(layer, ctx, params, grad, need_input_grad):
    y = ctx.saved["out"]
    return [y * (grad - (grad * y).sum(axis=1, keepdims=True))], {}


def _concat_forward(layer, xs, params, ctx) -> np.ndarray:
    return np.concatenate(xs, axis=1)


def _concat_backward(layer, ctx, params, grad, need_input_grad):
    bounds = np.cumsum([shape[1] for shape in ctx.input_shapes])[:-1]
    return list(np.split(grad, bounds, axis=1)), {}


def _add_forward(layer, xs, params, ctx) -> np.ndarray:
    out = xs[0].copy()
    for x in xs[1:]:
        out += x
    return out


def _add_backward(layer, ctx, params, grad, need_input_grad):
    return [grad] * len(ctx.input_shapes), {}


def _lrn_forward(layer: LRN, xs, params, ctx) -> np.ndarray:
    return layer.forward(xs, params).astype(xs[0].dtype, copy=False)


def _lrn_not_implemented(layer: Layer) -> NotImplementedError:
    return NotImplementedError(
        f"LRN layer {layer.name!r}: the backward pass of local response normalisation is not "
        f"implemented; train a variant of the network without LRN (e.g. with BatchNorm instead)"
    )


def _lrn_backward(layer, ctx, params, grad, need_input_grad):
    raise _lrn_not_implemented(layer)


_KERNELS: dict[type[Layer], tuple[Callable, Callable]] = {
    Conv2D: (_conv_forward, _conv_backward),
    FullyConnected: (_fc_forward, _fc_backward),
    MaxPool: (_maxpool_forward, _maxpool_backward),
    AvgPool: (_avgpool_forward, _avgpool_backward),
    GlobalAvgPool: (_gap_forward, _gap_backward),
    ReLU: (_relu_forward, _relu_backward),
    BatchNorm: (_bn_forward, _bn_backward),
    Dropout: (_dropout_forward, _dropout_backward),
    Flatten: (_flatten_forward, _flatten_backward),
    Softmax: (_softmax_forward, _softmax_backward),
    Concat: (_concat_forward, _concat_backward),
    Add: (_add_forward, _add_backward),
    LRN: (_lrn_forward, _lrn_backward),
}

def _kernels(layer: Layer) -> tuple[Callable, Callable]:
    try:
        return _KERNELS[type(layer)]
    except KeyError:
        raise NotImplementedError(
            f"layer {layer.name!r}: no training kernels for layer kind {layer.kind!r}; "
            f"supported kinds: {sorted(cls.kind for cls in _KERNELS)}"
        ) from None


def layer_forward(
    layer: Layer,
    inputs: list[np.ndarray],
    params: Params,
    *,
    training: bool,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, LayerContext]:
    """One layer's forward pass in training (batch statistics, dropout) or eval form, in the
    dtype of its inputs. Returns the output and the context its backward pass needs."""
    ctx = LayerContext(training=training, input_shapes=[x.shape for x in inputs])
    if rng is not None:
        ctx.saved["rng"] = rng
    forward, _ = _kernels(layer)
    out = forward(layer, inputs, params, ctx)
    ctx.saved.pop("rng", None)
    return out, ctx


def layer_backward(
    layer: Layer, ctx: LayerContext, params: Params, grad_output: np.ndarray, *, need_input_grad: bool = True
) -> tuple[list[np.ndarray | None], Params]:
    """Gradients of the loss with respect to the layer's inputs and parameters, given the
    gradient with respect to its output. State parameters (running statistics) get none."""
    _, backward = _kernels(layer)
    return backward(layer, ctx, params, grad_output, need_input_grad)


# ------------------------------------------------------------------------------------------------
# Whole networks
# ------------------------------------------------------------------------------------------------
def logits_layer(network: Network) -> str:
    """The layer whose output training treats as logits: the input of a final Softmax, or the
    output layer itself when the network does not end in a Softmax."""
    output = network.layer(network.output_name)
    if isinstance(output, Softmax):
        return network.input_names(output.name)[0]
    return network.output_name


def check_trainable(network: Network) -> None:
    """Fail before any work when a layer between the input and the logits has no backward pass."""
    last = logits_layer(network)
    for layer in network.layers:
        if isinstance(layer, LRN):
            raise _lrn_not_implemented(layer)
        _kernels(layer)  # raises for a layer kind without training kernels
        if layer.name == last:
            break


@dataclass
class Tape:
    """Everything ``backward`` needs from one ``forward_train`` call."""

    logits: np.ndarray
    logits_name: str
    contexts: dict[str, LayerContext]
    params: dict[str, Params]  # the effective (masked) parameters the forward pass used


def forward_train(
    network: Network,
    x: np.ndarray,
    *,
    training: bool = True,
    rng: np.random.Generator | None = None,
    update_state: bool = True,
) -> Tape:
    """Run ``network`` up to its logits (a final Softmax is left to the loss).

    In training form BatchNorm uses batch statistics and, with ``update_state``, updates its
    running averages in ``network.params``; Dropout draws its masks from ``rng``. The dtype of
    ``x`` is kept, so float64 inputs and parameters give a float64 pass (gradient checks).
    """
    network.check_input(x)
    last = logits_layer(network)
    activations: dict[str, np.ndarray] = {NETWORK_INPUT: x}
    contexts: dict[str, LayerContext] = {}
    used_params: dict[str, Params] = {}
    for layer in network.layers:
        params = network.layer_params(layer.name)
        if x.dtype != np.float32:  # float64 gradient checks: keep the whole pass in x's dtype
            params = {k: v.astype(x.dtype, copy=False) for k, v in params.items()}
        out, ctx = layer_forward(
            layer, [activations[s] for s in network.input_names(layer.name)], params,
            training=training, rng=rng,
        )
        if update_state and ctx.state_updates:
            stored = network.params[layer.name]
            for key, value in ctx.state_updates.items():
                stored[key] = value.astype(stored[key].dtype)
        activations[layer.name] = out
        contexts[layer.name] = ctx
        used_params[layer.name] = params
        if layer.name == last:
            break
    return Tape(logits=activations[last], logits_name=last, contexts=contexts, params=used_params)


def backward(network: Network, tape: Tape, grad_logits: np.ndarray) -> dict[str, Params]:
    """Gradients with respect to ``network.params`` (trained parameters only), given the
    gradient of the loss with respect to the logits. Pruned weights get a zero gradient."""
    grads_out: dict[str, np.ndarray] = {tape.logits_name: grad_logits}
    param_grads: dict[str, Params] = {}
    names = list(tape.contexts)
    for name in reversed(names):
        grad = grads_out.pop(name, None)
        if grad is None:  # the layer does not reach the logits
            continue
        layer = network.layer(name)
        sources = network.input_names(name)
        need_input_grad = any(s != NETWORK_INPUT for s in sources)
        grad_inputs, grads = layer_backward(
            layer, tape.contexts[name], tape.params[name], grad, need_input_grad=need_input_grad
        )
        if grads:
            if name in network.masks:
                grads[PRUNABLE_PARAM] = grads[PRUNABLE_PARAM] * network.masks[name]
            param_grads[name] = grads
        for source, g in zip(sources, grad_inputs):
            if source == NETWORK_INPUT or g is None:
                continue
            # Sum over consumers; never in place, since a gradient array may be shared (Add).
            grads_out[source] = g if source not in grads_out else grads_out[source] + g
    return param_grads


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean cross-entropy of integer ``labels`` under softmax(``logits``).

    ``logits`` is (N, K) or (N, K, 1, 1). Returns the loss, its gradient with respect to the
    logits (shaped like ``logits``) and the class probabilities (N, K).
    """
    n = logits.shape[0]
    z = logits.reshape(n, -1)
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"labels have shape {labels.shape}, expected ({n},) to match the logits")
    if labels.min(initial=0) < 0 or labels.max(initial=0) >= z.shape[1]:
        raise ValueError(
            f"labels must lie in [0, {z.shape[1]}) for {z.shape[1]} classes; got "
            f"[{labels.min()}, {labels.max()}]"
        )
    shifted = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_probs = shifted - log_norm
    rows = np.arange(n)
    loss = float(-log_probs[rows, labels].mean())
    probs = np.exp(log_probs)
    grad = probs.copy()
    grad[rows, labels] -= 1
    grad /= n
    return loss, grad.reshape(logits.shape), probs
