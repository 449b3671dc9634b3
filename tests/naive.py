"""Slow, obviously correct reference implementations (loops over every index) for the tests."""
from __future__ import annotations

import math

import numpy as np


def conv2d(x, weight, bias, *, stride, padding, groups):
    n, c, h, w = x.shape
    m, cg, r, s = weight.shape
    p = (h + 2 * padding - r) // stride + 1
    q = (w + 2 * padding - s) // stride + 1
    mg = m // groups
    out = np.zeros((n, m, p, q), np.float64)
    for b in range(n):
        for k in range(m):
            g = k // mg
            for i in range(p):
                for j in range(q):
                    acc = 0.0 if bias is None else float(bias[k])
                    for ch in range(cg):
                        for u in range(r):
                            for v in range(s):
                                y = i * stride + u - padding
                                z = j * stride + v - padding
                                if 0 <= y < h and 0 <= z < w:
                                    acc += float(weight[k, ch, u, v]) * float(x[b, g * cg + ch, y, z])
                    out[b, k, i, j] = acc
    return out


def fully_connected(x, weight, bias):
    flat = x.reshape(x.shape[0], -1)
    out = np.zeros((x.shape[0], weight.shape[0]))
    for b in range(flat.shape[0]):
        for k in range(weight.shape[0]):
            out[b, k] = sum(float(weight[k, i]) * float(flat[b, i]) for i in range(flat.shape[1]))
            out[b, k] += 0.0 if bias is None else float(bias[k])
    return out.reshape(x.shape[0], -1, 1, 1)


def pool(x, *, kernel, stride, padding, ceil_mode, reduce):
    """reduce = 'max' (padding is -inf) or 'avg' (padding is zero, divisor kernel*kernel)."""
    n, c, h, w = x.shape

    def size(extent):
        span = extent + 2 * padding - kernel
        out = (math.ceil(span / stride) if ceil_mode else span // stride) + 1
        if ceil_mode and (out - 1) * stride >= extent + padding:
            out -= 1
        return out

    p, q = size(h), size(w)
    out = np.zeros((n, c, p, q))
    for b in range(n):
        for k in range(c):
            for i in range(p):
                for j in range(q):
                    values = []
                    for u in range(kernel):
                        for v in range(kernel):
                            y, z = i * stride + u - padding, j * stride + v - padding
                            inside = 0 <= y < h and 0 <= z < w
                            if inside:
                                values.append(float(x[b, k, y, z]))
                            elif reduce == "avg":
                                values.append(0.0)
                    out[b, k, i, j] = max(values) if reduce == "max" else sum(values) / kernel**2
    return out


def lrn(x, *, size, alpha, beta, k):
    n, c, h, w = x.shape
    out = np.zeros_like(x, dtype=np.float64)
    for ch in range(c):
        lo, hi = max(0, ch - size // 2), min(c, ch + (size - 1) // 2 + 1)
        total = (x[:, lo:hi].astype(np.float64) ** 2).sum(axis=1)
        out[:, ch] = x[:, ch] / (k + alpha / size * total) ** beta
    return out
