"""run_graph: execute a Graph's nodes in order on real arrays, with the traced call's effects.

Each op node calls its Function's `forward` on the arrays of its inputs (so on the kernels of the
arrays' backend), with a fresh context: the forward is the op's one definition, shared with eager
execution. State (parameters, buffers, optimizer buffers, the learning rate, the generator) is
read from its source when the graph runs; `assign` nodes write into that memory in place; the
gradients the traced call left in `.grad` are set again at the end (`graph.effects`).

A forward graph (a model's) run with gradients enabled records the tape as the model would, so
that `graph.run(x).sum().backward()` reaches the parameters; a program (a traced training step,
which holds its own backward) runs without a tape.

A graph traced at batch size B runs at batch size b when the batch axis is free: shape attributes
of ops that depend on the inputs (a reshape to (B, -1), a mask of (B, C, 1, 1)) are taken at b,
and every value's shape is checked against the traced one with B read as b. An op whose output
does not follow (a reshape that folds the batch into another axis) stops the run with an error
naming it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import autograd
from ..autograd import Context
from ..errors import ShapeError, TdsError, fmt_shape
from ..tensor import Tensor

_SHAPE_ATTRS = ("shape", "in_shape")


class GraphRunError(TdsError):
    """A graph could not run: a wrong input, or a value it cannot have."""


def _where(n) -> str:
    return f"op #{n.id} '{n.op}'" + (f" in module {n.module}" if n.module else "")


def _bind_inputs(graph, inputs) -> tuple[dict[int, Any], int | None, int | None]:
    """Input arrays by node id, and (traced batch size, new batch size) when they differ."""
    if len(inputs) != len(graph.inputs):
        raise GraphRunError(f"run(): the graph takes {len(graph.inputs)} input(s) ("
                            + ", ".join(graph.nodes[i].name for i in graph.inputs)
                            + f"), got {len(inputs)}")
    env: dict[int, Any] = {}
    batch = None
    for nid, x in zip(graph.inputs, inputs):
        node = graph.nodes[nid]
        data = x.data if isinstance(x, Tensor) else np.asarray(x)
        if data.dtype != node.dtype:
            if isinstance(x, Tensor) or data.dtype.kind != node.dtype.kind:
                raise GraphRunError(f"run(): input '{node.name}' is {data.dtype}, the graph was "
                                    f"traced for {node.dtype} (shape {fmt_shape(node.shape)})")
            data = data.astype(node.dtype)
        want = node.shape
        if tuple(data.shape) != tuple(want):
            same_rest = len(data.shape) == len(want) and data.ndim > 0 and \
                tuple(data.shape[1:]) == tuple(want[1:])
            if not same_rest or (batch is not None and batch != (want[0], data.shape[0])):
                raise GraphRunError(
                    f"run(): input '{node.name}' has shape {fmt_shape(data.shape)}, the graph was "
                    f"traced for {fmt_shape(want)} (only the batch axis, the first, may differ)")
            batch = (want[0], data.shape[0])
        env[nid] = data
    if batch is None and graph.inputs:  # inputs all as traced
        return env, None, None
    return env, batch[0], batch[1]


def _rebatched(attrs: dict, old: int, new: int) -> dict:
    out = dict(attrs)
    for key in _SHAPE_ATTRS:
        v = attrs.get(key)
        if isinstance(v, tuple) and v and all(isinstance(s, (int, np.integer)) for s in v):
            out[key] = tuple(new if s == old else s for s in v)
    return out


def _expected(shape: tuple, old: int, new: int) -> set[tuple]:
    """The shapes a batch-dependent value may have at batch size `new`: the traced shape with
    some of its axes of size `old` read as `new` (an axis that only happens to equal the batch
    size stays)."""
    out = {tuple(shape)}
    for i, s in enumerate(shape):
        if s == old:
            out |= {t[:i] + (new,) + t[i + 1:] for t in out}
    return out


def run_graph(graph, inputs, return_all: bool = False):
    if graph.kind not in ("forward", "program"):
        raise GraphRunError(f"run(): a {graph.kind} graph cannot run on its own (a backward "
                            "graph reads forward values): run the traced forward or program")
    env, old, new = _bind_inputs(graph, inputs)
    tape = graph.kind == "forward" and autograd.is_grad_enabled()
    tensors: dict[int, Tensor] = {}
    if tape:
        tensors = {nid: x if isinstance(x, Tensor) else Tensor._wrap(env[nid])
                   for nid, x in zip(graph.inputs, inputs)}
    rebatch = old is not None and old != new
    dependent: set[int] = set(graph.inputs) if rebatch else set()
    saved: dict[int, tuple] = {}
    for n in graph.nodes:
        if n.id in env:
            continue
        kind = n.kind
        if kind == "op":
            attrs = n.attrs
            if rebatch and any(i in dependent for i in n.inputs):
                dependent.add(n.id)
                attrs = _rebatched(attrs, old, new)
            try:
                if tape:
                    t = n.fn.apply(*[tensors[i] for i in n.inputs], **attrs)
                    tensors[n.id], out = t, t.data
                    ctx = t._node if t._node is not None else Context(n.fn, (), attrs)
                else:
                    ctx = Context(n.fn, (), attrs)
                    out = n.fn.forward(ctx, *[env[i] for i in n.inputs], **attrs)
            except (ShapeError, ValueError) as e:
                if not rebatch:
                    raise
                raise GraphRunError(f"run(): {_where(n)} does not run at batch size {new} (traced "
                                    f"at {old}): {e}") from None
            if isinstance(out, np.generic):
                out = np.asarray(out)
            if n.id in dependent and tuple(out.shape) not in _expected(n.shape, old, new):
                raise GraphRunError(
                    f"run(): {_where(n)} fixed the batch size: traced at batch {old} it gave "
                    f"{fmt_shape(n.shape)}, at batch {new} {fmt_shape(out.shape)}; the graph runs "
                    f"only at batch {old} (trace it again at {new})")
            env[n.id] = out
            saved[n.id] = ctx.saved
        elif kind == "aux":  # (a forward graph's aux values are read by no node of its own)
            values = saved[n.inputs[0]]
            env[n.id] = values[n.attrs["index"]] if values else None
            if tape and values:
                tensors[n.id] = Tensor._wrap(env[n.id])
            if n.inputs[0] in dependent:
                dependent.add(n.id)
        elif kind in ("param", "buffer", "state"):
            src = n.source()
            data = src.data
            if tape:
                tensors[n.id] = src
            if tuple(getattr(data, "shape", ())) != tuple(n.shape):
                raise GraphRunError(f"run(): {kind} '{n.name}' has shape "
                                    f"{fmt_shape(data.shape)} now, {fmt_shape(n.shape)} when "
                                    "traced: trace again")
            env[n.id] = data
        elif kind == "const":
            env[n.id] = n.value
            if tape:
                tensors[n.id] = Tensor._wrap(n.value)
        elif kind == "input":
            raise GraphRunError(f"run(): no value for input node {n.id}")
        else:
            raise GraphRunError(f"run(): node {n.id} ({n.kind}, {fmt_shape(n.shape)}) was made "
                                "outside tinygrad_ds ops while tracing, so it cannot be replayed")
    for kind, pid, vid in graph.effects:
        if kind == "grad":
            graph.nodes[pid].source().grad = Tensor._wrap(env[vid])
    def tensor(i):
        t = tensors.get(i)
        return t if t is not None else Tensor._wrap(env[i])

    outs = tuple(tensor(i) for i in graph.outputs)
    out = outs[0] if len(outs) == 1 else outs
    if return_all:
        return out, {k: tensor(k) for k, v in env.items() if hasattr(v, "shape")}
    return out
