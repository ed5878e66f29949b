"""Losses, derived from primitive ops: mse, binary cross-entropy with logits, nll, cross-entropy.

`reduction` is 'mean' (default), 'sum' or 'none', as in PyTorch. Class weights (`weight`) and
BCE's `pos_weight` are constants (no gradient flows to them), with PyTorch's semantics: a
weighted mean over class-index targets divides by the targets' total weight.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, is_tensor, wrap
from ..backend import kernels_for
from ..errors import DTypeError, ShapeError, fmt_shape
from .elementwise import Where, scalar_like
from .movement import gather
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


def _constant(op: str, name: str, value, input, shape=None):
    """weight-like argument -> a constant Tensor of input's dtype, checked against `shape` (or
    to broadcast to input's shape); None stays None."""
    if value is None:
        return None
    a = np.asarray(value.data if is_tensor(value) else value)
    if a.dtype.kind not in "fiub":
        raise DTypeError(f"{op}: {name} must be numbers, got {a.dtype}")
    if shape is not None and a.shape != shape:
        raise ShapeError(f"{op}: {name} must have shape {fmt_shape(shape)} (one per class of "
                         f"input {fmt_shape(input.shape)}), got {fmt_shape(a.shape)}")
    if shape is None:
        try:
            ok = np.broadcast_shapes(a.shape, input.shape) == tuple(input.shape)
        except ValueError:
            ok = False
        if not ok:
            raise ShapeError(f"{op}: {name} {fmt_shape(a.shape)} must broadcast to the input's "
                             f"shape {fmt_shape(input.shape)}")
    return wrap(a.astype(input.dtype))


def mse_loss(input, target, reduction: str = "mean"):
    """Mean squared error; input and target: same shape."""
    _same_shape("mse_loss", input, target)
    d = input - target
    return _reduce("mse_loss", d * d, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction: str = "mean",
                                     pos_weight=None):
    """-w [p y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))], written as
    w [(1 - y) x + (1 + (p - 1) y) (max(-x, 0) + log(1 + exp(-|x|)))] so that it never
    overflows. weight w: broadcast to the input (default 1); pos_weight p: the positives' weight
    per class, broadcast along the last axis (default 1), as PyTorch."""
    op = "binary_cross_entropy_with_logits"
    _same_shape(op, input, target)
    w, pw = _constant(op, "weight", weight, input), _constant(op, "pos_weight", pos_weight, input)
    log1p_exp = ((-input.abs()).exp() + 1.0).log()  # log(1 + exp(-|x|))
    if pw is None:
        loss = input.relu() - input * target + log1p_exp
    else:  # (-input).relu() + log1p_exp is -log sigmoid(x)
        loss = (1.0 - target) * input + ((pw - 1.0) * target + 1.0) * ((-input).relu() + log1p_exp)
    if w is not None:
        loss = loss * w
    return _reduce(op, loss, reduction)


class CheckClassIndex(Function):
    """Targets against [0, classes) (ignore_index allowed), as an op: a replayed graph checks
    its targets too. Returns [bad count, first bad value]; raises when a count is real and > 0."""

    differentiable = False

    @staticmethod
    def forward(ctx, target, classes, ignore_index, op, input_shape):
        errors = kernels_for(target).index_errors(target, 0, classes, ignore_index)
        if isinstance(errors, np.ndarray) and errors[0]:
            raise ShapeError(f"{op}: target class {errors[1]} is out of range for {classes} "
                             f"classes (input {fmt_shape(input_shape)})")
        return errors


def _class_index_target(op: str, input, target, ignore_index: int) -> None:
    if target.dtype.kind not in "iu":
        raise DTypeError(f"{op}: class-index targets must be integers, got {target.dtype}")
    if input.ndim < 2 or target.shape != input.shape[:1] + input.shape[2:]:
        raise ShapeError(f"{op}: input {fmt_shape(input.shape)} (N, C, ...) needs a target of "
                         f"shape {fmt_shape(input.shape[:1] + input.shape[2:])}, got "
                         f"{fmt_shape(target.shape)}")
    CheckClassIndex.apply(target, classes=input.shape[1], ignore_index=int(ignore_index), op=op,
                          input_shape=tuple(input.shape))


def _valid(target, ignore_index: int, dtype):
    """(target with ignored entries set to class 0, 1.0 where counted else 0.0 in dtype)."""
    valid = target != ignore_index
    return Where.apply(valid, target, scalar_like(target, 0)), valid.astype(dtype)


def _weighted_mean(loss, scale):
    """sum(loss) / sum(scale), the mean over the targets counted. With none counted (every
    target ignored) the value is nan and the gradient 0, as PyTorch's."""
    total = scale.sum()
    none = total == 0
    nan = Where.apply(none, scalar_like(total, np.nan), scalar_like(total, 0))
    return loss.sum() / total.maximum(scalar_like(total, 1)) + nan


def _along_classes(v, like):
    """A (C,) tensor laid along axis 1 of `like` (N, C, ...) and expanded to its shape."""
    return v.reshape((1, -1) + (1,) * (like.ndim - 2)).expand(like.shape)


def _pick(x, index):
    """x[n, index[n], ...] for every n (and spatial position): (N, C, ...) -> (N, ...)."""
    return gather(x, index.unsqueeze(1), 1).squeeze(1)


def _class_loss(op: str, logp, target, reduction: str, ignore_index: int, label_smoothing: float,
                weight=None):
    """-weight[t] logp[n, t] with t = target[n] (smoothed), ignored targets giving 0; the mean
    divides by the total weight of the targets counted (their number without weights)."""
    _class_index_target(op, logp, target, ignore_index)
    w = _constant(op, "weight", weight, logp, (logp.shape[1],))
    safe, counted = _valid(target, ignore_index, logp.dtype)
    scale = counted if w is None else counted * _pick(_along_classes(w, logp), safe)
    loss = -_pick(logp, safe) * scale
    if label_smoothing:
        # PyTorch: (1 - e) nll + e / C * sum_c (-w[c] logp[n, c]), both over the same total
        wide = logp if w is None else logp * _along_classes(w, logp)
        smooth = -wide.mean(axis=1) * counted
        loss = loss * (1 - label_smoothing) + smooth * label_smoothing
    return _weighted_mean(loss, scale) if reduction == "mean" else _reduce(op, loss, reduction)


def _unbatched(input, target, class_indices: bool):
    """PyTorch also takes one sample: input (C,) with a 0-d class (or a (C,) soft target)."""
    if input.ndim == 1 and target.ndim == (0 if class_indices else 1):
        return input.unsqueeze(0), target.unsqueeze(0), True
    return input, target, False


def nll_loss(input, target, weight=None, reduction: str = "mean", ignore_index: int = -100):
    """input: (N, C) or (N, C, d1, ...) log-probabilities; target: (N,) or (N, d1, ...) class
    indices; weight: (C,) class weights or None. Targets equal to `ignore_index` add 0 and do
    not count in the mean, which divides by the counted targets' total weight."""
    input, target, single = _unbatched(input, target, True)
    loss = _class_loss("nll_loss", input, target, reduction, ignore_index, 0.0, weight)
    return loss.reshape(()) if single and reduction == "none" else loss


def cross_entropy(input, target, weight=None, reduction: str = "mean",
                  label_smoothing: float = 0.0, ignore_index: int = -100):
    """input: (N, C) logits (or (N, C, d1, ...), or one sample (C,)); target: class indices
    (N, ...) or class probabilities of the input's shape (soft targets, as MixUp and CutMix make).
    With label smoothing e the target becomes (1 - e) * target + e / C (PyTorch's definition).
    Class-index targets equal to `ignore_index` add 0 and do not count in the mean. weight: (C,)
    class weights; with class indices the mean divides by the targets' total weight, with soft
    targets by N (both as PyTorch)."""
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    soft = target.dtype.kind == "f"
    input, target, single = _unbatched(input, target, not soft)
    if input.ndim < 2:
        raise ShapeError(f"cross_entropy: input must be (N, C) logits, got "
                         f"{fmt_shape(input.shape)}")
    if not soft and input.ndim == 2 and target.ndim == 1 and input.dtype.kind == "f" \
            and weight is None:  # the fused kernel: (N, C) logits
        from .fused_loss import softmax_cross_entropy

        _class_index_target("cross_entropy", input, target, ignore_index)
        safe, counted = _valid(target, ignore_index, input.dtype)
        loss = softmax_cross_entropy(input, safe, label_smoothing) * counted
        loss = _weighted_mean(loss, counted) if reduction == "mean" else \
            _reduce("cross_entropy", loss, reduction)
        return loss.reshape(()) if single and reduction == "none" else loss
    logp = log_softmax(input, axis=1)
    if soft:
        _same_shape("cross_entropy (soft targets)", input, target)
        c = input.shape[1]
        if label_smoothing:
            target = target * (1 - label_smoothing) + label_smoothing / c
        w = _constant("cross_entropy", "weight", weight, input, (c,))
        if w is not None:
            target = target * w.reshape((1, -1) + (1,) * (input.ndim - 2))
        loss = _reduce("cross_entropy", -(logp * target).sum(axis=1), reduction)
    else:
        loss = _class_loss("cross_entropy", logp, target, reduction, ignore_index, label_smoothing,
                           weight)
    return loss.reshape(()) if single and reduction == "none" else loss
