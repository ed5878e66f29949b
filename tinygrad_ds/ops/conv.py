"""conv2d and conv_transpose2d: three ops that are each other's gradients.

    Conv2d(x, w)                  y = x * w                        (a correlation, as PyTorch)
    ConvTranspose2d(g, w)         the adjoint in x: d<g, x * w>/dx (= conv2d's input gradient)
    Conv2dBackwardWeight(g, x)    the adjoint in w: d<g, x * w>/dw (= conv2d's weight gradient)

Each is linear in both inputs, so each one's backward is made of the other two, and gradients of
gradients come for free. Arguments are checked and output sizes computed here, in Python, before
any kernel runs; the kernels (tinygrad_ds.backend) only loop.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..backend import kernels_for
from ..errors import DTypeError, ShapeError, fmt_shape


# ---- argument checks shared by conv and pool ------------------------------------------------
def pair(op: str, name: str, value, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each >= minimum -> (h, w)."""
    vals = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(vals) != 2 or not all(isinstance(v, (int, np.integer)) for v in vals):
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    if any(v < minimum for v in vals):
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value!r}")
    return int(vals[0]), int(vals[1])


def check_float(op: str, **tensors) -> None:
    """Every given tensor is floating point and all share one dtype."""
    given = {k: t for k, t in tensors.items() if t is not None}
    for k, t in given.items():
        if t.dtype.kind != "f":
            raise DTypeError(f"{op}: {k} must be float32 or float64, got {t.dtype}")
    dtypes = {str(t.dtype) for t in given.values()}
    if len(dtypes) > 1:
        names = ", ".join(f"{k} {t.dtype}" for k, t in given.items())
        raise DTypeError(f"{op}: all inputs must share one dtype, got {names} (use .float() or "
                         ".double())")


def check_4d(op: str, name: str, t, layout: str) -> None:
    if t.ndim != 4:
        raise ShapeError(f"{op}: {name} must be 4-D {layout}, got shape {fmt_shape(t.shape)}")


def out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def contiguous(a):
    """The array itself when it is already C-contiguous (kernels compile once per layout)."""
    return kernels_for(a).contiguous(a)


def as_shape(a, shape: tuple):
    """The array, made C-contiguous, viewed in `shape` (a kernel's layout, such as (N, C, L))."""
    k = kernels_for(a)
    return k.reshape(k.contiguous(a), shape)


def _geometry(attrs) -> tuple:
    (sh, sw), (ph, pw), (dh, dw) = attrs["stride"], attrs["padding"], attrs["dilation"]
    return sh, sw, ph, pw, dh, dw, attrs["groups"]


def _shared_attrs(attrs) -> dict:
    """The attributes the three conv ops share: each one's backward calls the other two."""
    return {k: attrs[k] for k in ("stride", "padding", "dilation", "groups")}


# ---- the three ops ----------------------------------------------------------------------------
class Conv2d(Function):
    """x (N, C, H, W), w (O, C/G, KH, KW) [, b (O,)] -> y (N, O, OH, OW)."""

    @staticmethod
    def forward(ctx, x, w, *b, stride, padding, dilation, groups, out_hw):
        ctx.save_for_backward(x, w)
        x, w = contiguous(x), contiguous(w)
        ctx.has_bias = bool(b)
        sh, sw, ph, pw, dh, dw, g = _geometry(ctx.attrs)
        return kernels_for(x).conv2d_forward(x, w, b[0] if b else None, sh, sw, ph, pw, dh, dw,
                                             g, *out_hw)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        geo = _shared_attrs(ctx.attrs)
        gx = ConvTranspose2d.apply(g, w, **geo, out_hw=x.shape[2:]) if x.requires_grad else None
        gw = Conv2dBackwardWeight.apply(g, x, **geo, kernel_hw=w.shape[2:]) \
            if w.requires_grad else None
        if not ctx.has_bias:
            return gx, gw
        return gx, gw, g.sum(axis=(0, 2, 3))


class ConvTranspose2d(Function):
    """g (N, O, OH, OW), w (O, C/G, KH, KW) -> (N, C, H, W) with (H, W) = out_hw: the gradient
    of conv2d with respect to its input, which is also conv_transpose2d's forward."""

    name = "conv_transpose2d"

    @staticmethod
    def forward(ctx, g, w, *, stride, padding, dilation, groups, out_hw):
        ctx.save_for_backward(g, w)
        g, w = contiguous(g), contiguous(w)
        sh, sw, ph, pw, dh, dw, gr = _geometry(ctx.attrs)
        return kernels_for(g).conv2d_backward_input(g, w, sh, sw, ph, pw, dh, dw, gr, *out_hw)

    @staticmethod
    def backward(ctx, gg):
        g, w = ctx.saved_tensors
        geo = _shared_attrs(ctx.attrs)
        # <gg, T(g, w)> = <conv(gg, w), g> = <dW(g, gg), w>
        gg_in = Conv2d.apply(gg, w, **geo, out_hw=g.shape[2:]) if g.requires_grad else None
        gw = Conv2dBackwardWeight.apply(g, gg, **geo, kernel_hw=w.shape[2:]) \
            if w.requires_grad else None
        return gg_in, gw


class Conv2dBackwardWeight(Function):
    """g (N, O, OH, OW), x (N, C, H, W) -> gw (O, C/G, KH, KW): conv2d's weight gradient."""

    @staticmethod
    def forward(ctx, g, x, *, stride, padding, dilation, groups, kernel_hw):
        ctx.save_for_backward(g, x)
        g, x = contiguous(g), contiguous(x)
        sh, sw, ph, pw, dh, dw, gr = _geometry(ctx.attrs)
        return kernels_for(x).conv2d_backward_weight(g, x, sh, sw, ph, pw, dh, dw, gr, *kernel_hw)

    @staticmethod
    def backward(ctx, gw):
        g, x = ctx.saved_tensors
        geo = _shared_attrs(ctx.attrs)
        # <gw, dW(g, x)> = <g, conv(x, gw)> = <T(g, gw), x>
        g_in = Conv2d.apply(x, gw, **geo, out_hw=g.shape[2:]) if g.requires_grad else None
        gx = ConvTranspose2d.apply(g, gw, **geo, out_hw=x.shape[2:]) if x.requires_grad else None
        return g_in, gx


# ---- the functions users call -------------------------------------------------------------------
def _positive_groups(op: str, groups) -> int:
    if not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    return int(groups)


def _check_groups(op: str, groups, c_in: int, c_out: int, x, weight) -> int:
    groups = _positive_groups(op, groups)
    if c_in % groups or c_out % groups:
        raise ShapeError(f"{op}: in_channels {c_in} and out_channels {c_out} must both be "
                         f"divisible by groups={groups} (input {fmt_shape(x.shape)}, weight "
                         f"{fmt_shape(weight.shape)})")
    return int(groups)


def _check_bias(op: str, bias, c_out: int) -> None:
    if bias is not None and bias.shape != (c_out,):
        raise ShapeError(f"{op}: bias must have shape ({c_out},) (one per output channel), got "
                         f"{fmt_shape(bias.shape)}")


def _unbatched(x):
    """conv on (C, H, W) as PyTorch allows: add the batch axis, remember to drop it."""
    return (x.unsqueeze(0), True) if x.ndim == 3 else (x, False)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation, as PyTorch).

    x: (N, C, H, W) or (C, H, W); weight: (O, C/groups, KH, KW); bias: (O,) or None.
    padding: int, (ph, pw), 'valid' or 'same' (stride 1 only; an odd total pads one more on
    the bottom and right, as PyTorch). Returns (N, O, OH, OW) with
    OH = (H + 2 ph - dh (KH - 1) - 1) // sh + 1.
    """
    op = "conv2d"
    x, unbatched = _unbatched(x)
    check_4d(op, "input", x, "(N, C, H, W)")
    check_4d(op, "weight", weight, "(out_channels, in_channels/groups, kH, kW)")
    check_float(op, input=x, weight=weight, bias=bias)
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    groups = _check_groups(op, groups, c, o, x, weight)
    if cg * groups != c:
        raise ShapeError(f"{op}: weight {fmt_shape(weight.shape)} expects {cg * groups} input "
                         f"channels ({cg} per group x {groups} groups), but the input "
                         f"{fmt_shape(x.shape)} has {c}")
    _check_bias(op, bias, o)
    sh, sw = pair(op, "stride", stride, 1)
    dh, dw = pair(op, "dilation", dilation, 1)
    if isinstance(padding, str):
        if padding == "valid":
            padding = 0
        elif padding == "same":
            if (sh, sw) != (1, 1):
                raise ValueError(f"{op}: padding='same' needs stride 1, got stride {stride!r}")
            th, tw = dh * (kh - 1), dw * (kw - 1)
            if th % 2 or tw % 2:  # the extra row/column goes at the bottom/right
                x = x.pad((0, tw % 2, 0, th % 2))
                h, w = x.shape[2:]
            padding = (th // 2, tw // 2)
        else:
            raise ValueError(f"{op}: padding must be an int, a pair, 'valid' or 'same', got "
                             f"{padding!r}")
    ph, pw = pair(op, "padding", padding, 0)
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    if eh > h + 2 * ph or ew > w + 2 * pw:
        raise ShapeError(f"{op}: kernel {kh}x{kw} (dilated to {eh}x{ew}) is larger than the "
                         f"padded input {h + 2 * ph}x{w + 2 * pw} (input {fmt_shape(x.shape)}, "
                         f"padding {(ph, pw)}, weight {fmt_shape(weight.shape)})")
    out_hw = (out_size(h, kh, sh, ph, dh), out_size(w, kw, sw, pw, dw))
    inputs = (x, weight) if bias is None else (x, weight, bias)
    y = Conv2d.apply(*inputs, stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw),
                     groups=groups, out_hw=out_hw)
    return y.squeeze(0) if unbatched else y


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Transposed convolution (the gradient of conv2d with respect to its input), as PyTorch.

    x: (N, C_in, H, W) or (C_in, H, W); weight: (C_in, C_out/groups, KH, KW); bias: (C_out,).
    Returns (N, C_out, OH, OW), OH = (H - 1) sh - 2 ph + dh (KH - 1) + output_padding + 1.
    """
    op = "conv_transpose2d"
    x, unbatched = _unbatched(x)
    check_4d(op, "input", x, "(N, C_in, H, W)")
    check_4d(op, "weight", weight, "(in_channels, out_channels/groups, kH, kW)")
    check_float(op, input=x, weight=weight, bias=bias)
    n, c, h, w = x.shape
    ci, cog, kh, kw = weight.shape
    if ci != c:
        raise ShapeError(f"{op}: weight {fmt_shape(weight.shape)} expects {ci} input channels, "
                         f"but the input {fmt_shape(x.shape)} has {c}")
    c_out = cog * _positive_groups(op, groups)
    groups = _check_groups(op, groups, c, c_out, x, weight)
    _check_bias(op, bias, c_out)
    sh, sw = pair(op, "stride", stride, 1)
    dh, dw = pair(op, "dilation", dilation, 1)
    ph, pw = pair(op, "padding", padding, 0)
    oph, opw = pair(op, "output_padding", output_padding, 0)
    if oph >= max(sh, dh) or opw >= max(sw, dw):
        raise ValueError(f"{op}: output_padding {(oph, opw)} must be smaller than stride "
                         f"{(sh, sw)} or dilation {(dh, dw)}")
    oh = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    ow = (w - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    if oh < 1 or ow < 1:
        raise ShapeError(f"{op}: padding {(ph, pw)} leaves no output for input "
                         f"{fmt_shape(x.shape)} and weight {fmt_shape(weight.shape)} "
                         f"(output {oh}x{ow})")
    y = ConvTranspose2d.apply(x, weight, stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw),
                              groups=groups, out_hw=(oh, ow))
    if bias is not None:
        y = y + bias.reshape(1, c_out, 1, 1)
    return y.squeeze(0) if unbatched else y
