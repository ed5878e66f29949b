"""max_pool2d, avg_pool2d and adaptive_avg_pool2d on (N, C, H, W), as PyTorch (ceil_mode and
count_include_pad included).

Each pooling op's backward is an op too (the *Backward classes), so the backward pass is a graph
of ops; average pooling is linear, so its backward's backward is the forward again, and max
pooling's backward is a scatter to the argmax whose adjoint is a gather from it.
"""
from __future__ import annotations

from ..autograd import Function
from ..backend import kernels_for
from ..errors import ShapeError, fmt_shape
from .conv import check_4d, check_float, contiguous, out_size, pair


class MaxPool2d(Function):
    """x (N, C, H, W) -> (N, C, OH, OW); keeps the argmax of each window for backward."""

    saved_names = ("argmax",)

    @staticmethod
    def forward(ctx, x, *, kernel, stride, padding, out_hw):
        x = contiguous(x)
        y, arg = kernels_for(x).max_pool2d_forward(x, *kernel, *stride, *padding, *out_hw)
        ctx.save_for_backward(arg)
        ctx.in_hw = x.shape[2:]
        return y

    @staticmethod
    def backward(ctx, g):
        (arg,) = ctx.saved_tensors
        return MaxPool2dBackward.apply(g, arg, in_hw=ctx.in_hw)


class MaxPool2dBackward(Function):
    """g (N, C, OH, OW), argmax (N, C, OH, OW) -> gx (N, C, H, W): each g to its window's max.
    Linear in g: its gradient is the gather below (and the gather's is this scatter), so max
    pooling has gradients of every order."""

    @staticmethod
    def forward(ctx, g, arg, *, in_hw):
        return kernels_for(g).max_pool2d_backward(contiguous(g), contiguous(arg), *in_hw)

    @staticmethod
    def backward(ctx, gg):
        arg = ctx.inputs[1]
        return MaxPool2dGather.apply(gg, arg), None


class MaxPool2dGather(Function):
    """gg (N, C, H, W), argmax (N, C, OH, OW) -> (N, C, OH, OW): gg at each window's max (the
    adjoint of MaxPool2dBackward's scatter)."""

    name = "max_pool2d_gather"

    @staticmethod
    def forward(ctx, gg, arg):
        n, c, h, w = gg.shape
        ctx.in_hw = (h, w)
        k = kernels_for(gg, arg)
        flat = k.reshape(contiguous(gg), (n, c, h * w))
        index = k.reshape(contiguous(arg), (n, c, arg.shape[2] * arg.shape[3]))
        return k.reshape(k.gather(flat, index, 2), arg.shape)

    @staticmethod
    def backward(ctx, g):
        return MaxPool2dBackward.apply(g, ctx.inputs[1], in_hw=ctx.in_hw), None


class AvgPool2d(Function):
    @staticmethod
    def forward(ctx, x, *, kernel, stride, padding, out_hw, count_include_pad=True):
        ctx.in_hw = x.shape[2:]
        return kernels_for(x).avg_pool2d_forward(contiguous(x), *kernel, *stride, *padding,
                                                 *out_hw, count_include_pad)

    @staticmethod
    def backward(ctx, g):
        a = ctx.attrs
        return AvgPool2dBackward.apply(g, kernel=a["kernel"], stride=a["stride"],
                                       padding=a["padding"], in_hw=ctx.in_hw,
                                       count_include_pad=a.get("count_include_pad", True))


class AvgPool2dBackward(Function):
    """g (N, C, OH, OW) -> gx (N, C, H, W): each g spread evenly over its window."""

    @staticmethod
    def forward(ctx, g, *, kernel, stride, padding, in_hw, count_include_pad=True):
        return kernels_for(g).avg_pool2d_backward(contiguous(g), *kernel, *stride, *padding,
                                                  *in_hw, count_include_pad)

    @staticmethod
    def backward(ctx, gg):
        a = ctx.attrs
        out_hw = ctx.inputs[0].shape[2:]
        return AvgPool2d.apply(gg, kernel=a["kernel"], stride=a["stride"], padding=a["padding"],
                               out_hw=out_hw,
                               count_include_pad=a.get("count_include_pad", True))


class AdaptiveAvgPool2d(Function):
    @staticmethod
    def forward(ctx, x, *, out_hw):
        ctx.in_hw = x.shape[2:]
        return kernels_for(x).adaptive_avg_pool2d_forward(contiguous(x), *out_hw)

    @staticmethod
    def backward(ctx, g):
        return AdaptiveAvgPool2dBackward.apply(g, in_hw=ctx.in_hw)


class AdaptiveAvgPool2dBackward(Function):
    @staticmethod
    def forward(ctx, g, *, in_hw):
        return kernels_for(g).adaptive_avg_pool2d_backward(contiguous(g), *in_hw)

    @staticmethod
    def backward(ctx, gg):
        return AdaptiveAvgPool2d.apply(gg, out_hw=ctx.inputs[0].shape[2:])


# ---- the functions users call -------------------------------------------------------------------
def _pooled_size(size: int, k: int, s: int, p: int, ceil_mode: bool) -> int:
    """Output length of a pooling axis, as PyTorch: with ceil_mode a last, partial window is
    kept if it starts inside the input or its left padding."""
    if not ceil_mode:
        return out_size(size, k, s, p, 1)
    out = -(-(size + 2 * p - k) // s) + 1
    return out - 1 if (out - 1) * s >= size + p else out


def _window(op: str, x, kernel_size, stride, padding, ceil_mode=False) -> dict:
    """Checks a pooling window against x and returns the op's attributes."""
    check_4d(op, "input", x, "(N, C, H, W)")
    check_float(op, input=x)
    kh, kw = pair(op, "kernel_size", kernel_size, 1)
    sh, sw = (kh, kw) if stride is None or stride == () else pair(op, "stride", stride, 1)
    ph, pw = pair(op, "padding", padding, 0)
    if 2 * ph > kh or 2 * pw > kw:
        raise ValueError(f"{op}: padding {(ph, pw)} must be at most half the kernel size "
                         f"{(kh, kw)}")
    h, w = x.shape[2:]
    if kh > h + 2 * ph or kw > w + 2 * pw:
        raise ShapeError(f"{op}: kernel_size {(kh, kw)} is larger than the padded input "
                         f"{h + 2 * ph}x{w + 2 * pw} (input {fmt_shape(x.shape)}, padding "
                         f"{(ph, pw)})")
    return dict(kernel=(kh, kw), stride=(sh, sw), padding=(ph, pw),
                out_hw=(_pooled_size(h, kh, sh, ph, ceil_mode),
                        _pooled_size(w, kw, sw, pw, ceil_mode)))


def _batched(x):
    return (x.unsqueeze(0), True) if x.ndim == 3 else (x, False)


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """Max over kh x kw windows. x: (N, C, H, W) or (C, H, W); stride defaults to kernel_size;
    padding counts as -inf. Returns (N, C, OH, OW), OH = (H + 2 ph - kh) // sh + 1, or with
    ceil_mode rounded up (a last, partial window, kept if it starts inside the input or its
    left padding), as PyTorch."""
    x, unbatched = _batched(x)
    y = MaxPool2d.apply(x, **_window("max_pool2d", x, kernel_size, stride, padding, ceil_mode))
    return y.squeeze(0) if unbatched else y


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Mean over kh x kw windows; padding counts as zeros. x: (N, C, H, W) or (C, H, W). The
    divisor, as PyTorch: with count_include_pad the window's size within the padded input (kh*kw
    unless a ceil_mode window hangs past it), else the number of x's own values in the window.
    ceil_mode as max_pool2d."""
    x, unbatched = _batched(x)
    attrs = _window("avg_pool2d", x, kernel_size, stride, padding, ceil_mode)
    y = AvgPool2d.apply(x, **attrs, count_include_pad=bool(count_include_pad))
    return y.squeeze(0) if unbatched else y


def adaptive_avg_pool2d(x, output_size):
    """Average pooling to a fixed output size: window i spans floor(i H / OH) to
    ceil((i + 1) H / OH). x: (N, C, H, W) or (C, H, W); output_size: int or (OH, OW), None keeps
    that axis. Global average pooling is output_size=1: (N, C, 1, 1)."""
    op = "adaptive_avg_pool2d"
    x, unbatched = _batched(x)
    check_4d(op, "input", x, "(N, C, H, W)")
    check_float(op, input=x)
    h, w = x.shape[2:]
    size = (output_size, output_size) if not isinstance(output_size, (tuple, list)) \
        else tuple(output_size)
    if len(size) != 2:
        raise ValueError(f"{op}: output_size must be an int or a pair, got {output_size!r}")
    size = (h if size[0] is None else size[0], w if size[1] is None else size[1])
    oh, ow = pair(op, "output_size", size, 1)
    if h < 1 or w < 1:
        raise ShapeError(f"{op}: input {fmt_shape(x.shape)} has an empty spatial axis")
    y = AdaptiveAvgPool2d.apply(x, out_hw=(oh, ow))
    return y.squeeze(0) if unbatched else y
