"""Losses, derived from primitive ops: mse, binary cross-entropy with logits, nll, cross-entropy.

`reduction` is 'mean' (default), 'sum' or 'none', as in PyTorch.
"""
from __future__ import annotations

import numpy as np

from ..errors import DTypeError, ShapeError, fmt_shape
from .softmax import log_softmax


def _reduce(op: str, loss, reduction: str):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _same_shape(op: str, a, b) -> None:
    if a.shape != b.shape:
        raise ShapeError(f"{op}: input {fmt_shape(a.shape)} and target {fmt_shape(b.shape)} must "
                         "have the same shape")


def mse_loss(input, target, reduction: str = "mean"):
    """Mean squared error; input and target: same shape."""
    _same_shape("mse_loss", input, target)
    d = input - target
    return _reduce("mse_loss", d * d, reduction)


def binary_cross_entropy_with_logits(input, target, reduction: str = "mean"):
    """-[y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))], written as
    max(x, 0) - x y + log(1 + exp(-|x|)) so that it never overflows."""
    _same_shape("binary_cross_entropy_with_logits", input, target)
    loss = input.relu() - input * target + ((-input.abs()).exp() + 1.0).log()
    return _reduce("binary_cross_entropy_with_logits", loss, reduction)


def _class_index_target(op: str, input, target):
    if target.dtype.kind not in "iu":
        raise DTypeError(f"{op}: class-index targets must be integers, got {target.dtype}")
    if input.ndim < 1 or target.shape != input.shape[:1] + input.shape[2:]:
        raise ShapeError(f"{op}: input {fmt_shape(input.shape)} (N, C, ...) needs a target of "
                         f"shape {fmt_shape(input.shape[:1] + input.shape[2:])}, got "
                         f"{fmt_shape(target.shape)}")
    c = input.shape[1] if input.ndim > 1 else input.shape[0]
    t = target.data
    if t.size and (t.min() < 0 or t.max() >= c):
        bad = t[(t < 0) | (t >= c)].flat[0]
        raise ShapeError(f"{op}: target class {bad} is out of range for {c} classes")


def _pick(logp, target):
    """logp[n, target[n], ...] for every n (and spatial position): (N, C, ...) -> (N, ...)."""
    from ..tensor import Tensor

    onehot = np.zeros(logp.shape, dtype=logp.dtype)
    np.put_along_axis(onehot, np.expand_dims(target.data, 1), 1, axis=1)
    return (logp * Tensor._wrap(onehot)).sum(axis=1)


def nll_loss(input, target, reduction: str = "mean"):
    """input: (N, C) or (N, C, d1, ...) log-probabilities; target: (N,) or (N, d1, ...) classes."""
    _class_index_target("nll_loss", input, target)
    return _reduce("nll_loss", -_pick(input, target), reduction)


def cross_entropy(input, target, reduction: str = "mean", label_smoothing: float = 0.0):
    """input: (N, C) logits (or (N, C, d1, ...)); target: class indices (N,) or class
    probabilities (N, C) (soft targets, as MixUp and CutMix make). With label smoothing e the
    target becomes (1 - e) * target + e / C."""
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if input.ndim < 2:
        raise ShapeError(f"cross_entropy: input must be (N, C) logits, got {fmt_shape(input.shape)}")
    logp = log_softmax(input, axis=1)
    c = input.shape[1]
    if target.dtype.kind == "f":
        _same_shape("cross_entropy (soft targets)", input, target)
        soft = target if label_smoothing == 0 else target * (1 - label_smoothing) + label_smoothing / c
        return _reduce("cross_entropy", -(logp * soft).sum(axis=1), reduction)
    _class_index_target("cross_entropy", input, target)
    loss = -_pick(logp, target)
    if label_smoothing:
        loss = loss * (1 - label_smoothing) - logp.mean(axis=1) * label_smoothing
    return _reduce("cross_entropy", loss, reduction)
