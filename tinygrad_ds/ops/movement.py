"""Ops that move data without arithmetic: reshape, permute, expand, indexing, concat, pad."""
from __future__ import annotations

import numpy as np

from ..autograd import Function, is_tensor
from ..backend import kernels_for
from ..backend.meta import index_shape
from ..errors import ShapeError, fmt_shape


class Reshape(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return kernels_for(x).reshape(x, shape)

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.in_shape)


class Permute(Function):
    @staticmethod
    def forward(ctx, x, axes):
        return kernels_for(x).permute(x, axes)

    @staticmethod
    def backward(ctx, g):
        axes = ctx.attrs["axes"]
        return g.permute(*sorted(range(len(axes)), key=axes.__getitem__))


class Expand(Function):
    """Broadcast to a larger shape without copying; the gradient sums back."""

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return kernels_for(x).expand(x, shape)

    @staticmethod
    def backward(ctx, g):
        from .elementwise import unbroadcast

        return unbroadcast(g, ctx.in_shape)


class Copy(Function):
    """A copy in memory of its own (clone): the identity for gradients."""

    @staticmethod
    def forward(ctx, x):
        return kernels_for(x).copy(x)

    @staticmethod
    def backward(ctx, g):
        return g


class GetItem(Function):
    name = "getitem"

    @staticmethod
    def forward(ctx, x, index):
        ctx.in_shape = x.shape
        return kernels_for(x).getitem(x, index)

    @staticmethod
    def backward(ctx, g):
        return IndexAdd.apply(g, shape=ctx.in_shape, index=ctx.attrs["index"])


class IndexAdd(Function):
    """zeros(shape) with `g` added at `index` (repeated integer indices add up): getitem's VJP."""

    @staticmethod
    def forward(ctx, g, shape, index):
        return kernels_for(g).index_add(g, shape, index)

    @staticmethod
    def backward(ctx, gg):
        return gg[ctx.attrs["index"]]


class Gather(Function):
    """x's values at `index` (int64, x's rank) along `axis`: numpy's take_along_axis."""

    @staticmethod
    def forward(ctx, x, index, axis):
        ctx.size = x.shape[axis]
        return kernels_for(x, index).gather(x, index, axis)

    @staticmethod
    def backward(ctx, g):
        index = ctx.inputs[1]
        return ScatterAdd.apply(g, index, axis=ctx.attrs["axis"], size=ctx.size), None


class ScatterAdd(Function):
    """zeros with g added at `index` along `axis` (of length `size`): gather's adjoint."""

    @staticmethod
    def forward(ctx, g, index, axis, size):
        return kernels_for(g, index).scatter_add(g, index, axis, size)

    @staticmethod
    def backward(ctx, gg):
        return Gather.apply(gg, ctx.inputs[1], axis=ctx.attrs["axis"]), None


class Concat(Function):
    @staticmethod
    def forward(ctx, *xs, axis):
        ctx.sizes = [x.shape[axis] for x in xs]
        return kernels_for(*xs).concat(xs, axis)

    @staticmethod
    def backward(ctx, g):
        axis, out, start = ctx.attrs["axis"], [], 0
        for n, need in zip(ctx.sizes, ctx.needs_input_grad):
            index = (slice(None),) * axis + (slice(start, start + n),)
            out.append(g[index] if need else None)
            start += n
        return tuple(out)


class Pad(Function):
    """Constant padding; `pad_width` as numpy: one (before, after) pair per axis."""

    @staticmethod
    def forward(ctx, x, pad_width, value):
        return kernels_for(x).pad(x, pad_width, value)

    @staticmethod
    def backward(ctx, g):
        # the stop counts from the end (-a), not from g's length, so that a graph replayed at
        # another batch size slices the padded gradient of that size
        index = tuple(slice(b, -a if a else None) for b, a in ctx.attrs["pad_width"])
        return g[index]


# ---- user-facing functions ------------------------------------------------------------------
def _axis(op: str, axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise ShapeError(f"{op}: axis {axis} is out of range for a tensor with {ndim} dims")
    return axis % ndim


def reshape(x, shape: tuple):
    shape = tuple(int(s) for s in shape)
    known = int(np.prod([s for s in shape if s != -1]))
    if shape.count(-1) > 1 or any(s < -1 for s in shape):
        raise ShapeError(f"reshape: invalid shape {shape}")
    if -1 in shape:
        if known == 0 or x.size % known:
            raise ShapeError(f"reshape: cannot reshape {fmt_shape(x.shape)} ({x.size} elements) "
                             f"into {shape}")
        shape = tuple(x.size // known if s == -1 else s for s in shape)
    elif known != x.size:
        raise ShapeError(f"reshape: cannot reshape {fmt_shape(x.shape)} ({x.size} elements) into "
                         f"{fmt_shape(shape)} ({known} elements)")
    return x if shape == x.shape else Reshape.apply(x, shape=shape)


def flatten(x, start_dim: int = 0, end_dim: int = -1):
    """Merge axes start_dim..end_dim into one: (N, C, H, W) -> (N, C*H*W) for start_dim=1."""
    if x.ndim == 0:
        return reshape(x, (1,))
    s, e = _axis("flatten", start_dim, x.ndim), _axis("flatten", end_dim, x.ndim)
    if s > e:
        raise ShapeError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    return reshape(x, x.shape[:s] + (-1,) + x.shape[e + 1:]) if x.size else \
        reshape(x, x.shape[:s] + (int(np.prod(x.shape[s:e + 1])),) + x.shape[e + 1:])


def permute(x, axes: tuple):
    axes = tuple(_axis("permute", int(a), x.ndim) for a in axes)
    if sorted(axes) != list(range(x.ndim)):
        raise ShapeError(f"permute: {axes} is not a permutation of the {x.ndim} axes of "
                         f"{fmt_shape(x.shape)}")
    return x if axes == tuple(range(x.ndim)) else Permute.apply(x, axes=axes)


def transpose(x, dim0: int, dim1: int):
    axes = list(range(x.ndim))
    a, b = _axis("transpose", dim0, x.ndim), _axis("transpose", dim1, x.ndim)
    axes[a], axes[b] = axes[b], axes[a]
    return permute(x, tuple(axes))


def expand(x, shape: tuple):
    """Broadcast x to `shape`; -1 keeps that axis's size."""
    lead = len(shape) - x.ndim
    if lead < 0:
        raise ShapeError(f"expand: cannot expand {fmt_shape(x.shape)} to fewer dims {shape}")
    shape = tuple(x.shape[i - lead] if s == -1 else int(s) for i, s in enumerate(shape))
    for i, s in enumerate(x.shape):
        if s != 1 and s != shape[lead + i]:
            raise ShapeError(f"expand: cannot expand {fmt_shape(x.shape)} to {fmt_shape(shape)}: "
                             "only size-1 axes can grow")
    return x if shape == x.shape else Expand.apply(x, shape=shape)


def unsqueeze(x, dim: int):
    dim = _axis("unsqueeze", dim, x.ndim + 1)
    return reshape(x, x.shape[:dim] + (1,) + x.shape[dim:])


def squeeze(x, dim=None):
    if dim is None:
        return reshape(x, tuple(s for s in x.shape if s != 1))
    dim = _axis("squeeze", dim, x.ndim)
    return reshape(x, x.shape[:dim] + x.shape[dim + 1:]) if x.shape[dim] == 1 else x


def _index_arg(index):
    """Tensors inside an index become integer (or boolean) arrays; the rest passes through."""
    if is_tensor(index):
        return index.data
    if isinstance(index, list):
        return np.asarray(index)
    if isinstance(index, tuple):
        return tuple(_index_arg(i) for i in index)
    return index


def getitem(x, index):
    """Basic and advanced numpy indexing: ints, slices, None, Ellipsis, integer/boolean arrays."""
    index = _index_arg(index)
    try:
        index_shape(x.shape, index)  # validate cheaply, before recording anything
    except IndexError as e:
        raise ShapeError(f"getitem: index {index!r} does not fit shape {fmt_shape(x.shape)}: {e}") \
            from None
    return GetItem.apply(x, index=index)


def concat(tensors, axis: int = 0):
    """Join tensors along an existing axis; all other axes must match."""
    tensors = list(tensors)
    if not tensors:
        raise ShapeError("concat: needs at least one tensor")
    first = tensors[0]
    ax = _axis("concat", axis, first.ndim)
    for t in tensors[1:]:
        if t.ndim != first.ndim or any(
            a != b for i, (a, b) in enumerate(zip(t.shape, first.shape)) if i != ax
        ):
            raise ShapeError(f"concat: shapes {', '.join(fmt_shape(u.shape) for u in tensors)} "
                             f"differ outside axis {axis}")
    return Concat.apply(*tensors, axis=ax)


def stack(tensors, axis: int = 0):
    """Join same-shape tensors along a new axis."""
    tensors = list(tensors)
    if not tensors:
        raise ShapeError("stack: needs at least one tensor")
    if any(t.shape != tensors[0].shape for t in tensors):
        raise ShapeError(f"stack: all shapes must be equal, got "
                         f"{', '.join(fmt_shape(t.shape) for t in tensors)}")
    return concat([unsqueeze(t, axis) for t in tensors], axis)


def pad(x, padding, value: float = 0.0):
    """PyTorch's F.pad: `padding` pairs start from the LAST axis: (left, right, top, bottom,
    ...) for (..., H, W)."""
    padding = tuple(int(p) for p in padding)
    if len(padding) % 2 or len(padding) // 2 > x.ndim:
        raise ShapeError(f"pad: padding {padding} must hold (before, after) pairs for at most the "
                         f"{x.ndim} axes of {fmt_shape(x.shape)}")
    if any(p < 0 for p in padding):
        raise ShapeError(f"pad: negative padding {padding} is not supported")
    pairs = [(0, 0)] * x.ndim
    for k in range(len(padding) // 2):
        pairs[x.ndim - 1 - k] = (padding[2 * k], padding[2 * k + 1])
    return Pad.apply(x, pad_width=tuple(pairs), value=value)


def split(x, split_size_or_sections, axis: int = 0):
    """Chunks of `split_size` along axis (the last may be smaller), or sizes given as a list."""
    ax = _axis("split", axis, x.ndim)
    n = x.shape[ax]
    if isinstance(split_size_or_sections, int):
        if split_size_or_sections <= 0:
            raise ShapeError(f"split: split size must be positive, got {split_size_or_sections}")
        sizes = [min(split_size_or_sections, n - s) for s in range(0, n, split_size_or_sections)]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n:
            raise ShapeError(f"split: sections {sizes} add up to {sum(sizes)}, but axis {axis} of "
                             f"{fmt_shape(x.shape)} has {n}")
    out, start = [], 0
    for s in sizes:
        out.append(getitem(x, (slice(None),) * ax + (slice(start, start + s),)))
        start += s
    return out


def chunk(x, chunks: int, axis: int = 0):
    n = x.shape[_axis("chunk", axis, x.ndim)]
    return split(x, max(1, -(-n // chunks)), axis)


def gather(x, index, axis: int):
    """x's values at `index` along `axis` (torch.gather): index is an int64 Tensor of x's rank."""
    ax = _axis("gather", axis, x.ndim)
    if index.dtype.kind not in "iu" or index.ndim != x.ndim:
        raise ShapeError(f"gather: index must be an integer tensor with the {x.ndim} dims of "
                         f"{fmt_shape(x.shape)}, got {index.dtype} {fmt_shape(index.shape)}")
    return Gather.apply(x, index.astype(np.int64), axis=ax)
