"""trace_scalar(): a small tensor model lowered to the scalar engine, each multiply and add a Value.

    import tinygrad_ds as tds
    st = tds.trace_scalar(model, x, target=y, loss="mse")   # x, y: real Tensors or arrays
    st.loss.backward()           # the scalar engine's backward, one number at a time
    st.grads()                   # {'0.weight': array, ...}: equal to the tensor engine's .grad
    print(st.count, "Values")    # every multiply, add, tanh ... is one node

The model is traced (`tds.trace`), then each op node of the Graph is rebuilt from `Value`s on
numpy object arrays: a Linear layer becomes `x0*w0 + x1*w1 + ... + b` for every output, a
convolution the same sum over its window (padding adds no terms), max pooling passes the
window's largest Value through (the gradient goes to it, as the tensor engine's does).
The parameters are read from the model by name, so a gradient belongs to a state_dict key.

Past `max_nodes` Values (default 2,000) it stops before building anything, with the count.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import Any, Callable

import numpy as np

from ..errors import TdsError, fmt_shape
from ..scalar import Value
from .ir import Graph, Node
from .paths import _norm

MAX_SCALAR_NODES = 2000


class ScalarTooLarge(TdsError):
    """The model lowered to scalars would have more Values than a drawing holds."""


@dataclass
class ScalarTrace:
    """A model lowered to Values. inputs: object array of the input's Values; outputs: of the
    output's; loss: the Value backward starts from (the loss, or the output itself when it is
    one number, else the sum of the outputs); params: {state_dict key: object array}."""

    graph: Graph
    inputs: np.ndarray
    outputs: np.ndarray
    loss: Value
    loss_name: str
    params: dict[str, np.ndarray] = field(default_factory=dict)
    count: int = 0

    def grads(self) -> dict[str, np.ndarray]:
        """{parameter name: its gradient as a float64 array} after `loss.backward()`."""
        return {k: _grad_array(v) for k, v in self.params.items()}

    def input_grad(self) -> np.ndarray:
        return _grad_array(self.inputs)


def _grad_array(a: np.ndarray) -> np.ndarray:
    return np.vectorize(lambda v: v.grad, otypes=[np.float64])(a) if a.size else \
        np.zeros(a.shape)


def trace_scalar(model, x, target=None, loss: str | None = None,
                 max_nodes: int = MAX_SCALAR_NODES) -> ScalarTrace:
    """Lower `model(x)` (and a loss) to scalar Values.

    x: the input, a Tensor or array with real numbers (N, ...). loss: None (backward starts at
    the output, or at the sum of the outputs when there are several numbers), 'mse'
    (mean((y - target)^2), target of y's shape) or 'cross_entropy' (mean over the batch of
    logsumexp(y_i) - y_i[target_i], target: (N,) class indices). max_nodes: refuse, with the
    count, a model that would need more Values than this."""
    from ..tensor import Tensor
    from .trace import trace

    data = x.data if isinstance(x, Tensor) else x
    xa = np.asarray(data, dtype=np.float64)
    graph = trace(model, Tensor(xa.astype(np.float32)))
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise TdsError("trace_scalar: the model must take one input and return one Tensor")
    out_shape = graph.nodes[graph.outputs[0]].shape
    ta = None
    if loss not in (None, "mse", "cross_entropy"):
        raise TdsError(f"trace_scalar: loss must be None, 'mse' or 'cross_entropy'; got {loss!r}")
    if loss is not None:
        if target is None:
            raise TdsError(f"trace_scalar: loss={loss!r} needs a target")
        ta = np.asarray(target.data if isinstance(target, Tensor) else target)
    need = scalar_count(graph) + (3 * prod(out_shape) + 2 if loss else prod(out_shape))
    if need > max_nodes:
        name = type(model).__name__
        small = (1,) + xa.shape[1:2] + tuple(min(d, 4) for d in xa.shape[2:])
        hint = f"a smaller input (--input-shape {','.join(map(str, small))}), " \
            if small != xa.shape else ""
        raise ScalarTooLarge(
            f"{name} on an input of shape {fmt_shape(xa.shape)} lowered to scalars would have "
            f"about {need:,} Values, over the limit of {max_nodes:,}: every multiply and add is "
            f"one node, so try {hint}fewer units or channels, or raise the limit "
            "(--max-scalars) knowing the drawing will not read")

    start = Value(0.0).id
    params = {}
    if graph.model is not None and hasattr(graph.model, "named_parameters"):
        params = {k: np.asarray(p.data, dtype=np.float64)
                  for k, p in graph.model.named_parameters()}
    buffers = {}
    if graph.model is not None and hasattr(graph.model, "named_buffers"):
        buffers = {k: np.asarray(b.data, dtype=np.float64)
                   for k, b in graph.model.named_buffers()}
    vals: dict[int, np.ndarray] = {}
    pvals: dict[str, np.ndarray] = {}
    ends = _layer_outputs(graph)
    for n in graph.nodes:
        if n.id in graph.inputs:
            vals[n.id] = _values(xa, "x")
        elif n.kind == "param":
            if n.name not in params:
                raise TdsError(f"trace_scalar: parameter {n.name!r} is not the model's own")
            pvals[n.name] = vals[n.id] = _values(params[n.name], n.name)
        elif n.kind == "buffer":
            vals[n.id] = _consts(buffers[n.name])
        elif n.kind == "const":
            vals[n.id] = _consts(np.asarray(getattr(n, "value", None), dtype=np.float64))
        elif n.kind == "op":
            vals[n.id] = _lower(graph, n, [vals[i] for i in n.inputs])
            if n.id in ends and n.id not in graph.outputs:  # a layer output: "0.out[0,1]"
                _name(vals[n.id], f"{n.module}.out")
        elif n.kind == "aux":  # a value an op saved for its backward: no forward node reads it
            continue
        else:  # a kind this lowering does not know (optimizer state, ...): not in a model's forward
            raise TdsError(f"trace_scalar: node {n.id} is a {n.kind!r} value, which has no scalar "
                           "form")
    out = vals[graph.outputs[0]]
    for idx in np.ndindex(out.shape):
        if not out[idx].label:
            out[idx].label = "y" + _index(idx)
    root, name = _loss(out, ta, loss)
    count = root.id - start
    return ScalarTrace(graph, vals[graph.inputs[0]], out, root, name, pvals, count)


# ---- building blocks ----------------------------------------------------------------------------
def _values(a: np.ndarray, name: str) -> np.ndarray:
    out = np.empty(a.shape, dtype=object)
    for idx in np.ndindex(a.shape):
        out[idx] = Value(float(a[idx]), label=name + _index(idx))
    return out


def _layer_outputs(graph: Graph) -> set[int]:
    """The op nodes whose value leaves the module call that made them (a layer's output)."""
    consumers = graph.consumers()
    out = set()
    for n in graph.nodes:
        if n.kind == "op" and n.module and (n.id in graph.outputs or any(
                graph.nodes[c].module != n.module for c in consumers[n.id])):
            out.add(n.id)
    return out


def _name(a: np.ndarray, name: str) -> None:
    for idx in np.ndindex(a.shape):
        v = a[idx]
        if isinstance(v, Value) and not v.label:
            v.label = name + _index(idx)


def _consts(a: np.ndarray) -> np.ndarray:
    """Numbers that are not Values (buffers, constants): ops treat them as constants."""
    out = np.empty(a.shape, dtype=object)
    for idx in np.ndindex(a.shape):
        out[idx] = float(a[idx])
    return out


def _index(idx: tuple) -> str:
    return "[" + ",".join(str(i) for i in idx) + "]" if idx else ""


def _sum(terms: list):
    """A left fold t0 + t1 + ... : one '+' node per term after the first."""
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def _map(a: np.ndarray, f: Callable) -> np.ndarray:
    out = np.empty(a.shape, dtype=object)
    for idx in np.ndindex(a.shape):
        out[idx] = f(a[idx])
    return out


def _as_value(v) -> Value:
    return v if isinstance(v, Value) else Value(float(v), label=f"{float(v):g}")


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.ndim != 2 or b.ndim != 2:
        raise TdsError(f"trace_scalar: matmul of {fmt_shape(a.shape)} and {fmt_shape(b.shape)}: "
                       "only 2-d products have a scalar form here")
    out = np.empty((a.shape[0], b.shape[1]), dtype=object)
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            out[i, j] = _sum([a[i, k] * b[k, j] for k in range(a.shape[1])])
    return out


def _conv2d(x: np.ndarray, w: np.ndarray, b, attrs: dict) -> np.ndarray:
    (sh, sw), (ph, pw) = attrs["stride"], attrs["padding"]
    (dh, dw), groups = attrs.get("dilation", (1, 1)), attrs.get("groups", 1)
    N, C, H, W = x.shape
    F, Cg, KH, KW = w.shape
    OH = (H + 2 * ph - dh * (KH - 1) - 1) // sh + 1
    OW = (W + 2 * pw - dw * (KW - 1) - 1) // sw + 1
    out = np.empty((N, F, OH, OW), dtype=object)
    per = F // groups
    for n in range(N):
        for f in range(F):
            g0 = (f // per) * Cg
            for i in range(OH):
                for j in range(OW):
                    terms = []
                    for c in range(Cg):
                        for ki in range(KH):
                            r = i * sh - ph + ki * dh
                            if not 0 <= r < H:
                                continue  # zero padding: no term
                            for kj in range(KW):
                                s = j * sw - pw + kj * dw
                                if 0 <= s < W:
                                    terms.append(x[n, g0 + c, r, s] * w[f, c, ki, kj])
                    if b is not None:
                        terms.append(b[f])
                    out[n, f, i, j] = _sum(terms) if terms else 0.0
    return out


def _max_pool2d(x: np.ndarray, attrs: dict) -> np.ndarray:
    (kh, kw), (sh, sw) = attrs["kernel"], attrs["stride"]
    ph, pw = attrs.get("padding", (0, 0))
    N, C, H, W = x.shape
    OH, OW = attrs["out_hw"] if "out_hw" in attrs else \
        ((H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1)
    out = np.empty((N, C, OH, OW), dtype=object)
    for idx in np.ndindex(N, C, OH, OW):
        n, c, i, j = idx
        window = [x[n, c, r, s] for r in range(i * sh - ph, i * sh - ph + kh)
                  for s in range(j * sw - pw, j * sw - pw + kw) if 0 <= r < H and 0 <= s < W]
        # the largest Value passes through: the gradient goes to it alone (first one on ties)
        out[idx] = max(window, key=lambda v: float(v))
    return out


def _reduce_sum(a: np.ndarray, axis, keepdims: bool) -> np.ndarray:
    axes = tuple(range(a.ndim)) if axis is None else \
        tuple(ax % a.ndim for ax in ((axis,) if isinstance(axis, int) else axis))
    keep = [ax for ax in range(a.ndim) if ax not in axes]
    moved = np.moveaxis(a, keep + list(axes), range(a.ndim))
    flat = moved.reshape(tuple(a.shape[k] for k in keep) + (-1,))
    out = np.empty(flat.shape[:-1], dtype=object)
    for idx in np.ndindex(out.shape):
        out[idx] = _sum(list(flat[idx]))
    if keepdims:
        out = out.reshape(tuple(1 if ax in axes else a.shape[ax] for ax in range(a.ndim)))
    return out


def _binary(f: Callable) -> Callable:
    def apply(node: Node, ins: list) -> np.ndarray:
        a, b = np.broadcast_arrays(*ins)
        out = np.empty(a.shape, dtype=object)
        for idx in np.ndindex(a.shape):
            out[idx] = f(a[idx], b[idx])  # a number with a number stays a number (a constant)
        return out
    return apply


def _unary(f: Callable) -> Callable:
    return lambda node, ins: _map(ins[0], lambda v: f(_as_value(v)))


# The ops that have a scalar form, in one place: keys compared after _norm ('max_pool2d' and
# 'maxpool2d' are one name).
LOWERINGS: dict[str, Callable[[Node, list], np.ndarray]] = {
    "add": _binary(lambda a, b: a + b),
    "sub": _binary(lambda a, b: a - b),
    "mul": _binary(lambda a, b: a * b),
    "div": _binary(lambda a, b: a / b),
    "neg": _unary(lambda v: -v),
    "exp": _unary(lambda v: v.exp()),
    "log": _unary(lambda v: v.log()),
    "relu": _unary(lambda v: v.relu()),
    "tanh": _unary(lambda v: v.tanh()),
    "sigmoid": _unary(lambda v: v.sigmoid()),
    "matmul": lambda n, ins: _matmul(*ins),
    "conv2d": lambda n, ins: _conv2d(ins[0], ins[1], ins[2] if len(ins) > 2 else None, n.attrs),
    "maxpool2d": lambda n, ins: _max_pool2d(ins[0], n.attrs),
    "reshape": lambda n, ins: ins[0].reshape(n.shape),
    "permute": lambda n, ins: ins[0].transpose(n.attrs["axes"]),
    "expand": lambda n, ins: np.broadcast_to(ins[0], n.shape),
    "sum": lambda n, ins: _reduce_sum(ins[0], n.attrs.get("axis"), n.attrs.get("keepdims",
                                                                              False)),
}
_MOVES = {"reshape", "permute", "expand", "maxpool2d"}  # no new Values


def _lower(graph: Graph, n: Node, ins: list) -> np.ndarray:
    f = LOWERINGS.get(_norm(n.op))
    if f is None:
        where = f" in module {n.module}" if n.module else ""
        raise TdsError(f"trace_scalar: op '{n.op}'{where} has no scalar form; the scalar "
                       f"lowering knows {', '.join(sorted(LOWERINGS))}")
    out = f(n, ins)
    if out.shape != tuple(n.shape):
        raise TdsError(f"trace_scalar: op '{n.op}' gave shape {fmt_shape(out.shape)}, the graph "
                       f"says {fmt_shape(n.shape)} (internal)")
    return out


def scalar_count(graph: Graph) -> int:
    """About how many Values lowering the graph makes: the inputs' and parameters' numbers, a
    multiply and an add per term of each product or convolution, one per element of the rest."""
    total = 0
    for n in graph.nodes:
        size = prod(n.shape)
        op = _norm(n.op)
        if n.kind in ("input", "param") or n.id in graph.inputs:
            total += size
        elif n.kind != "op" or op in _MOVES:
            continue
        elif op == "matmul":
            total += size * (2 * graph.nodes[n.inputs[0]].shape[-1] - 1)
        elif op == "conv2d":
            w = graph.nodes[n.inputs[1]].shape
            total += size * 2 * prod(w[1:])
        elif op == "sum":
            total += prod(graph.nodes[n.inputs[0]].shape)
        else:
            total += size
    return total


def _loss(out: np.ndarray, target: Any, loss: str | None) -> tuple[Value, str]:
    flat = [_as_value(v) for v in out.reshape(-1)]
    if loss is None:
        if len(flat) == 1:
            return flat[0], flat[0].label or "y"
        root = _sum(flat)
        root.label = "L"
        return root, "L = sum of the outputs"
    if loss == "mse":
        t = np.broadcast_to(np.asarray(target, dtype=np.float64), out.shape).reshape(-1)
        sq = [(v - float(tv)) * (v - float(tv)) for v, tv in zip(flat, t)]
        root = _sum(sq) * (1.0 / len(sq))
        root.label = "L"
        return root, "L = mean squared error"
    if out.ndim != 2:
        raise TdsError(f"trace_scalar: cross_entropy needs (N, classes) logits, got "
                       f"{fmt_shape(out.shape)}")
    t = np.asarray(target).reshape(-1).astype(int)
    terms = []
    for i in range(out.shape[0]):
        row = [_as_value(v) for v in out[i]]
        # logsumexp with the row's max taken out (a constant): exp never overflows
        m = max(float(v) for v in row)
        lse = _sum([(v - m).exp() for v in row]).log() + m
        terms.append(lse - row[t[i]])
    root = _sum(terms) * (1.0 / len(terms))
    root.label = "L"
    return root, "L = cross-entropy"
