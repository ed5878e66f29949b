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


def _class_index_target(op: str, input, target, ignore_index: int) -> None:
    if target.dtype.kind not in "iu":
        raise DTypeError(f"{op}: class-index targets must be integers, got {target.dtype}")
    if input.ndim < 2 or target.shape != input.shape[:1] + input.shape[2:]:
        raise ShapeError(f"{op}: input {fmt_shape(input.shape)} (N, C, ...) needs a target of "
                         f"shape {fmt_shape(input.shape[:1] + input.shape[2:])}, got "
                         f"{fmt_shape(target.shape)}")
    c = input.shape[1]
    t = target.data
    bad = (t < 0) | (t >= c)
    bad &= t != ignore_index
    if bad.any():
        raise ShapeError(f"{op}: target class {t[bad].flat[0]} is out of range for {c} classes "
                         f"(input {fmt_shape(input.shape)})")


def _pick(logp, target, valid: np.ndarray):
    """logp[n, target[n], ...] for every n (and spatial position) where `valid`, else 0:
    (N, C, ...) -> (N, ...)."""
    from ..tensor import Tensor

    onehot = np.zeros(logp.shape, dtype=logp.dtype)
    index = np.expand_dims(np.where(valid, target.data, 0), 1)
    np.put_along_axis(onehot, index, np.expand_dims(valid, 1).astype(logp.dtype), axis=1)
    return (logp * Tensor._wrap(onehot)).sum(axis=1)


def _class_loss(op: str, logp, target, reduction: str, ignore_index: int, label_smoothing: float):
    """-logp[n, target[n]] (smoothed), with ignored targets giving 0 and left out of the mean."""
    from ..tensor import Tensor

    _class_index_target(op, logp, target, ignore_index)
    valid = target.data != ignore_index
    loss = -_pick(logp, target, valid)
    if label_smoothing:
        smooth = -logp.mean(axis=1)
        if not valid.all():
            smooth = smooth * Tensor._wrap(valid.astype(logp.dtype))
        loss = loss * (1 - label_smoothing) + smooth * label_smoothing
    if reduction == "mean" and not valid.all():
        return loss.sum() / float(valid.sum())  # 0 / 0 = nan when every target is ignored
    return _reduce(op, loss, reduction)


def _unbatched(input, target, class_indices: bool):
    """PyTorch also takes one sample: input (C,) with a 0-d class (or a (C,) soft target)."""
    if input.ndim == 1 and target.ndim == (0 if class_indices else 1):
        return input.unsqueeze(0), target.unsqueeze(0), True
    return input, target, False


def nll_loss(input, target, reduction: str = "mean", ignore_index: int = -100):
    """input: (N, C) or (N, C, d1, ...) log-probabilities; target: (N,) or (N, d1, ...) class
    indices. Targets equal to `ignore_index` add 0 and do not count in the mean."""
    input, target, single = _unbatched(input, target, True)
    loss = _class_loss("nll_loss", input, target, reduction, ignore_index, 0.0)
    return loss.reshape(()) if single and reduction == "none" else loss


def cross_entropy(input, target, reduction: str = "mean", label_smoothing: float = 0.0,
                  ignore_index: int = -100):
    """input: (N, C) logits (or (N, C, d1, ...), or one sample (C,)); target: class indices
    (N, ...) or class probabilities of the input's shape (soft targets, as MixUp and CutMix make).
    With label smoothing e the target becomes (1 - e) * target + e / C (PyTorch's definition).
    Class-index targets equal to `ignore_index` add 0 and do not count in the mean."""
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    soft = target.dtype.kind == "f"
    input, target, single = _unbatched(input, target, not soft)
    if input.ndim < 2:
        raise ShapeError(f"cross_entropy: input must be (N, C) logits, got "
                         f"{fmt_shape(input.shape)}")
    if not soft and input.ndim == 2 and target.ndim == 1 and input.dtype.kind == "f":
        _class_index_target("cross_entropy", input, target, ignore_index)
        if not (target.data == ignore_index).any():  # the fused kernel: (N, C), all counted
            from .fused_loss import softmax_cross_entropy

            loss = _reduce("cross_entropy", softmax_cross_entropy(input, target, label_smoothing),
                           reduction)
            return loss.reshape(()) if single and reduction == "none" else loss
    logp = log_softmax(input, axis=1)
    if soft:
        _same_shape("cross_entropy (soft targets)", input, target)
        c = input.shape[1]
        if label_smoothing:
            target = target * (1 - label_smoothing) + label_smoothing / c
        loss = _reduce("cross_entropy", -(logp * target).sum(axis=1), reduction)
    else:
        loss = _class_loss("cross_entropy", logp, target, reduction, ignore_index, label_smoothing)
    return loss.reshape(()) if single and reduction == "none" else loss
