"""Which axis of each value is the batch axis, so that an ONNX export can leave it free ('N').

ONNX ops take their shapes from their inputs at run time, except where the exporter writes a
shape down: a reshape's or an expand's target, a slice's bounds, a constant. So the batch axis
can be left free when each op either carries it along (elementwise, conv, pooling, norms), moves
it to a known axis (permute, a reshape that keeps it whole), or reduces it away, and no constant
made at trace time stands in its place. `batch_axes` follows it from the inputs (axis 0) through
the graph; an op that folds it into another axis, slices it, or meets a batch-sized constant
fixes the batch size, and the export is then static.
"""
from __future__ import annotations

import math

import numpy as np

from .ir import Graph, Node

# ops whose output's batch axis is their first input's (other inputs: weights, statistics)
CARRY_FIRST = frozenset((
    "neg", "exp", "log", "sqrt", "abs", "sign", "relu", "sigmoid", "tanh", "erf", "leaky_relu",
    "cast", "copy", "full_like", "softmax", "log_softmax",
))
SPATIAL = frozenset((  # (N, C, H, W) ops: the batch axis must be axis 0
    "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
    "batch_norm", "group_norm",
))
BROADCAST = frozenset((
    "add", "mul", "div", "pow", "maximum", "minimum", "less", "less_equal", "equal",
    "not_equal", "where",
))
REDUCE = frozenset(("sum", "mean", "max", "logsumexp"))


class _Fixed(Exception):
    """The batch size is fixed at this node: `why` says how."""

    def __init__(self, why: str):
        super().__init__(why)
        self.why = why


def _reshape_axis(a: int, src: tuple, dst: tuple) -> int:
    """The axis of `dst` that holds src's axis `a` whole (the same elements before and after
    it), or _Fixed."""
    before, after = math.prod(src[:a]), math.prod(src[a + 1:])
    for j, s in enumerate(dst):
        if s == src[a] and math.prod(dst[:j]) == before and math.prod(dst[j + 1:]) == after:
            return j
    raise _Fixed(f"it reshapes {src} to {dst}, folding the batch axis {a} into another axis")


def _broadcast_axis(n: Node, shapes: list, axes: list) -> int | None:
    """Elementwise ops: every batch-dependent operand's batch axis lands on one output axis,
    and no trace-time operand is batch-sized there."""
    return _shared_axis(shapes, axes, len(n.shape))


def _getitem_axis(a: int, shape: tuple, index) -> int | None:
    """Basic indexing: where axis `a` goes (None: an int took one sample), or _Fixed when the
    batch axis is sliced."""
    items = index if isinstance(index, tuple) else (index,)
    if not all(i is None or i is Ellipsis or isinstance(i, (slice, int, np.integer))
               for i in items):
        raise _Fixed("it indexes with an array")
    if Ellipsis in items:
        k = items.index(Ellipsis)
        used = sum(1 for i in items if i is not None and i is not Ellipsis)
        items = items[:k] + (slice(None),) * (len(shape) - used) + items[k + 1:]
    src = out = 0
    for i in items:
        if i is None:
            out += 1
            continue
        if src == a:
            if isinstance(i, slice):
                if i.indices(shape[a]) != (0, shape[a], 1):
                    raise _Fixed(f"it slices the batch axis with {i}")
                return out
            return None  # x[k]: one sample, whatever the batch size
        out += 0 if isinstance(i, (int, np.integer)) else 1
        src += 1
    return out + (a - src)  # an axis after the last index item


def _op_axis(n: Node, shapes: list, axes: list) -> int | None:
    op, attrs = n.op, n.attrs
    if all(a is None for a in axes):
        return None
    a = axes[0]
    if op in CARRY_FIRST or op in SPATIAL or op == "layer_norm":
        if any(x is not None for x in axes[1:]):
            raise _Fixed("its weights or statistics depend on the batch")
        if a is None:
            raise _Fixed("its weights depend on the batch")
        if op in SPATIAL and a != 0:
            raise _Fixed(f"its input carries the batch on axis {a}, not 0")
        if op == "layer_norm" and a >= len(shapes[0]) - attrs["ndim"]:
            raise _Fixed("it normalizes over the batch axis")
        return a
    if op in BROADCAST:
        return _broadcast_axis(n, shapes, axes)
    if op in REDUCE or op == "argmax":
        red = attrs["axis"]
        red = tuple(range(len(shapes[0]))) if red is None else \
            ((red,) if isinstance(red, int) else tuple(red))
        if a in red:
            return None
        return a if attrs.get("keepdims") else a - sum(1 for r in red if r < a)
    if op == "reshape":
        return _reshape_axis(a, shapes[0], tuple(attrs["shape"]))
    if op == "permute":
        return tuple(attrs["axes"]).index(a)
    if op == "expand":
        return a + len(n.shape) - len(shapes[0])
    if op == "getitem":
        return _getitem_axis(a, shapes[0], attrs["index"])
    if op == "pad":
        if tuple(attrs["pad_width"][a]) != (0, 0):
            raise _Fixed("it pads the batch axis")
        return a
    if op == "concat":
        if len(set(axes)) != 1 or attrs["axis"] == a:
            raise _Fixed("it joins values along the batch axis, or with values made without it")
        return a
    if op == "matmul":
        return _matmul_axis(shapes, axes, len(n.shape))
    if op == "gather":
        if axes[0] != axes[1] or attrs["axis"] == a:
            raise _Fixed("it gathers along the batch axis")
        return a
    raise _Fixed("the exporter does not follow the batch axis through it")


def _matmul_axis(shapes: list, axes: list, r: int) -> int:
    """(..., n, k) @ (..., k, m): the batch may ride on a batch axis (broadcast) or on n or m,
    never on k (contracted)."""
    for s, a, k in zip(shapes, axes, (len(shapes[0]) - 1, len(shapes[1]) - 2)):
        if a is not None and a == k:
            raise _Fixed("it sums over the batch axis")
    return _shared_axis(shapes, axes, r, core=2)


def _shared_axis(shapes: list, axes: list, r: int, core: int = 0) -> int:
    """The one axis of an r-axis output that every batch-dependent operand's batch axis lands on
    (operands aligned at their ends); an operand made without the batch must be 1 there, unless
    that axis is among its last `core` axes (a product's matrix axes)."""
    placed = {a + r - len(s) for s, a in zip(shapes, axes) if a is not None}
    if len(placed) != 1:
        raise _Fixed("its operands carry the batch on different axes")
    (m,) = placed
    for s, a in zip(shapes, axes):
        k = m - (r - len(s))
        if a is None and 0 <= k < len(s) - core and s[k] != 1:
            raise _Fixed(f"an operand of shape {s} made without the batch has size {s[k]} on "
                         "the batch axis")
    return m


def batch_axes(graph: Graph, live: list[Node]) -> tuple[dict[int, int | None], str | None]:
    """{node id: batch axis or None} for the live nodes, or ({}, why) when an op fixes the
    batch size (why names it)."""
    axes: dict[int, int | None] = {}
    for n in live:
        if n.kind == "input":
            axes[n.id] = 0 if n.shape else None
        elif n.kind == "op":
            try:
                axes[n.id] = _op_axis(n, [graph.nodes[i].shape for i in n.inputs],
                                      [axes.get(i) for i in n.inputs])
            except _Fixed as e:
                where = f" in module {n.module}" if n.module else ""
                return {}, f"op #{n.id} '{n.op}'{where} fixes the batch size: {e.why}"
        else:
            axes[n.id] = None
    return axes, None
