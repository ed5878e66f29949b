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
from ..ops.elementwise import Binary, Where
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


def _reshaped(n, x_traced: tuple, x_now: tuple, old: int, new: int) -> tuple:
    """The shape reshape node n gives at another batch size, its input now `x_now` (traced as
    `x_traced`): each input axis whose size changed must stay one axis of the output (the same
    elements before it, the same size when traced), which then takes the new size. Otherwise
    the reshape mixes the batch with other axes: GraphRunError."""
    out = list(n.shape)
    if tuple(x_now) == tuple(x_traced):
        return tuple(out)
    before_in = np.cumprod((1,) + tuple(x_traced[:-1])) if x_traced else ()
    before_out = np.cumprod((1,) + tuple(n.shape[:-1])) if n.shape else ()
    for i, (was, now) in enumerate(zip(x_traced, x_now)):
        if was == now:
            continue
        same = [j for j, s in enumerate(n.shape) if s == was and before_out[j] == before_in[i]]
        if not same or len(x_now) != len(x_traced):
            raise GraphRunError(
                f"run(): {_where(n)} fixed the batch size: it reshapes {fmt_shape(x_traced)} to "
                f"{fmt_shape(n.shape)}, which merges or splits the axis of size {was} that now "
                f"has size {now}; the graph runs only at batch {old} (trace it again at {new})"
                + ("; traced at batch 1, a graph cannot tell the batch axis from other axes of "
                   "size 1: trace at batch 2 or more" if old == 1 else ""))
        out[same[0]] = now
    return tuple(out)


def _rebatched(n, attrs: dict, old: int, new: int, env: dict, graph) -> dict:
    """n's attributes at batch size `new`. A reshape's shape follows its input's axes, a random
    mask's the axes of the value it is like, an expand's the axes it does not broadcast. Another
    shape attribute (a gradient's shape, an axis an expand broadcasts to) whose first axis is
    the traced batch size takes the new one: the batch axis comes first, and a later axis of
    that size is another axis that happens to have it."""
    out = dict(attrs)
    if n.op == "reshape" and "shape" in attrs:
        x = n.inputs[0]
        out["shape"] = _reshaped(n, graph.nodes[x].shape, env[x].shape, old, new)
        return out
    if n.op == "bernoulli_mask":
        like = n.inputs[1]
        was, now, shape = graph.nodes[like].shape, env[like].shape, attrs["shape"]
        if tuple(was) != tuple(now) and len(shape) == len(was):
            out["shape"] = tuple(z if s == w else s for s, w, z in zip(shape, was, now))
        return out
    if n.op == "expand" and "shape" in attrs:
        x = n.inputs[0]
        was, now, shape = graph.nodes[x].shape, env[x].shape, list(attrs["shape"])
        lead = len(shape) - len(was)
        for i, (w, z) in enumerate(zip(was, now)):
            if w != 1:  # an axis the expand keeps: as it is now
                shape[lead + i] = z
        if shape and shape[0] == old and (lead > 0 or was[0] == 1):
            shape[0] = new
        out["shape"] = tuple(shape)
        return out
    for key in _SHAPE_ATTRS:
        v = attrs.get(key)
        if isinstance(v, tuple) and v and all(isinstance(s, (int, np.integer)) for s in v) \
                and v[0] == old:
            out[key] = (new,) + tuple(v[1:])
    return out


def _broadcasts_anew(n, env: dict, graph, out) -> bool:
    """A differentiated elementwise op one of whose operands that needs a gradient had the
    output's shape when traced but broadcasts now (a graph traced at batch 1, where a size-1
    axis looked like the batch): its traced backward does not sum the gradient over that axis.
    (A broadcast in an op no gradient flows through, such as a backward op, is harmless.)"""
    if not (isinstance(n.fn, type) and (issubclass(n.fn, Binary) or n.fn is Where)):
        return False
    traced = getattr(graph, "_tensors", {})

    def needs_grad(i) -> bool:
        t = traced.get(i)
        return t is not None and bool(t.requires_grad)

    return needs_grad(n.id) and any(
        graph.nodes[i].shape == n.shape and tuple(env[i].shape) != tuple(out.shape)
        and needs_grad(i) for i in n.inputs)


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
            if rebatch:
                # also an op none of whose inputs depends on the batch, whose shape attribute
                # does (a class weight expanded to the input's shape)
                changed = _rebatched(n, attrs, old, new, env, graph)
                if any(i in dependent for i in n.inputs) or \
                        any(changed.get(k) != attrs.get(k) for k in _SHAPE_ATTRS):
                    dependent.add(n.id)
                    attrs = changed
            try:
                if tape:
                    t = n.fn.apply(*[tensors[i] for i in n.inputs], **attrs)
                    tensors[n.id], out = t, t.data
                    ctx = t._node if t._node is not None else Context(n.fn, (), attrs)
                else:
                    ctx = Context(n.fn, (), attrs)
                    out = n.fn.forward(ctx, *[env[i] for i in n.inputs], **attrs)
            except (ShapeError, ValueError, IndexError) as e:
                if not rebatch:
                    raise
                raise GraphRunError(f"run(): {_where(n)} does not run at batch size {new} (traced "
                                    f"at {old}): {e}") from None
            if isinstance(out, np.generic):
                out = np.asarray(out)
            if n.id in dependent and graph.kind == "program" and _broadcasts_anew(n, env, graph,
                                                                                    out):
                raise GraphRunError(
                    f"run(): {_where(n)} broadcasts an operand at batch {new} that had the "
                    f"output's shape {fmt_shape(n.shape)} at the traced batch {old}, so the "
                    "traced backward lacks the sum over that axis: trace at batch 2 or more to "
                    "run at other batch sizes")
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
