"""The graph-to-graph passes: dead code, common subexpressions, constant folding, algebra.

Each pass is a function Graph -> Graph that returns a new, checked-well-formed graph (the old one
is not changed) and can be left out of `tds.compile(..., passes=[...])`. None of them removes,
merges or folds an op with effects (`assign`, a random mask, a check that raises on bad input).

    g2 = eliminate_dead_code(g)          # only what outputs, effects and writes need
    g2 = eliminate_common_subexpressions(g)   # one node per (op, attributes, inputs)
    g2 = fold_constants(g)               # ops of constants become constants
    g2 = simplify(g)                     # x*1, x+0, x-0, x/1, --x, reshape to its own shape ...
    g2 = fold_transposes(g)              # (A @ B).T -> B.T @ A.T: no transposing copy after
    g2 = elide_copies(g)                 # copy(v) -> v where v is an op's own new array
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from ..autograd import Context
from ..graph.ir import Graph, Node
from .rewrite import (
    EFFECT_OPS,
    VIEW_OPS,
    _remap_residual,
    attrs_key,
    live_roots,
    rebuild,
    resolve,
    roots,
    written,
)

FOLD_MAX_ELEMENTS = 1 << 16  # a folded constant larger than this would bloat the graph


def eliminate_dead_code(graph: Graph) -> Graph:
    """Keep the nodes that the outputs, the `.grad` effects and the ops with effects (writes
    into state, random draws, checks) need; drop the rest."""
    live = live_roots(graph)
    stack = list(live)
    while stack:
        for i in graph.nodes[stack.pop()].inputs:
            if i not in live:
                live.add(i)
                stack.append(i)
    return rebuild(graph, live)


def eliminate_common_subexpressions(graph: Graph) -> Graph:
    """Merge nodes that compute the same thing: the same op with the same attributes on the same
    inputs (and equal small constants). Ops with effects are never merged, and an op that reads
    memory an `assign` wrote in between is not merged with a read from before the write."""
    subst: dict[int, int] = {}
    seen: dict[tuple, int] = {}
    root = roots(graph)
    writes: dict[int, int] = {}  # memory root -> assigns to it so far
    changing = written(graph)
    for n in graph.nodes:
        ins = tuple(resolve(subst, i) for i in n.inputs)
        key = None
        if n.kind == "op" and n.op not in EFFECT_OPS:
            key = ("op", n.op, n.fn, attrs_key(n.attrs), ins, n.shape, str(n.dtype),
                   tuple(writes.get(root[i], 0) for i in ins))
        elif n.kind == "aux":
            key = ("aux", ins, n.attrs.get("index"))
        elif n.kind == "const" and isinstance(n.value, np.ndarray) and n.value.size <= 1024 \
                and n.id not in changing:
            key = ("const", n.shape, str(n.dtype), n.value.tobytes())
        if n.kind == "op" and n.op == "assign":
            writes[root[n.inputs[0]]] = writes.get(root[n.inputs[0]], 0) + 1
        if key is None:
            continue
        if key in seen:
            subst[n.id] = seen[key]
        else:
            seen[key] = n.id
    return rebuild(graph, None, subst)


def fold_constants(graph: Graph) -> Graph:
    """An op whose inputs are all constants (and `full_like`, whose value never depends on its
    input) becomes a constant computed now, by the op's own forward. Ops with effects, ops that
    save values for their backward which another node reads, and results larger than
    FOLD_MAX_ELEMENTS stay."""
    changing = written(graph)
    values: dict[int, np.ndarray] = {n.id: n.value for n in graph.nodes
                                     if n.kind == "const" and n.id not in changing}
    has_aux = {n.inputs[0] for n in graph.nodes if n.kind == "aux"}
    replace = {}
    for n in graph.nodes:
        if n.kind != "op" or n.op in EFFECT_OPS or n.id in has_aux:
            continue
        if int(np.prod(n.shape)) > FOLD_MAX_ELEMENTS:
            continue
        if n.op == "full_like":
            value = np.full(n.shape, n.attrs["value"], dtype=n.dtype)
        elif n.inputs and all(i in values for i in n.inputs):
            value = n.fn.forward(Context(n.fn, (), n.attrs), *[values[i] for i in n.inputs],
                                 **n.attrs)
            value = np.array(value)  # its own memory: a view of a constant would alias it
        else:
            continue
        if tuple(value.shape) != tuple(n.shape) or value.dtype != n.dtype:
            continue
        values[n.id] = value
        replace[n.id] = dataclasses.replace(n, kind="const", op="const", inputs=(), attrs={},
                                            fn=None, value=value, params=())
    if not replace:
        return graph
    # constants feeding only folded ops are dead now: drop them, keep everything else
    out = rebuild(graph, None, None, replace)
    used = {i for n in out.nodes for i in n.inputs} | set(out.outputs)
    used |= {v for _, _, v in out.effects}
    keep = {n.id for n in out.nodes if n.kind != "const" or n.id in used}
    return rebuild(out, keep)


def _is_const(graph: Graph, i: int, value: float) -> bool:
    """Is node i a constant equal to `value` everywhere (or the negation of one: x - c is
    traced as x + (-c))?"""
    n = graph.nodes[i]
    if n.kind == "op" and n.op == "neg" and value == 0:
        n = graph.nodes[n.inputs[0]]
    return n.kind == "const" and isinstance(n.value, np.ndarray) and n.value.size > 0 and \
        bool(np.all(n.value == value))


def simplify(graph: Graph) -> Graph:
    """Algebraic identities whose result is an existing value of the same shape and dtype:
    x*1, 1*x, x+0, 0+x, x-0, x/1, -(-x), reshape/expand to x's own shape, permute by the
    identity, cast to x's own dtype. (x*0 stays: it is nan where x is.)"""
    subst: dict[int, int] = {}
    changing = written(graph)
    for n in graph.nodes:
        if n.kind != "op":
            continue
        ins = [resolve(subst, i) for i in n.inputs]
        x = _identity_of(graph, n, ins, subst, changing)
        if x is not None and graph.nodes[x].shape == n.shape and \
                graph.nodes[x].dtype == n.dtype:
            subst[n.id] = x
    if not subst:
        return graph
    return rebuild(graph, None, subst)


def _identity_of(graph: Graph, n, ins: list[int], subst: dict[int, int],
                 changing: set[int]) -> int | None:
    def _const(graph, i, value):  # (a constant an assign writes into is not one)
        x = graph.nodes[i]
        j = x.inputs[0] if x.kind == "op" and x.op == "neg" else i
        return i not in changing and j not in changing and _is_const(graph, i, value)

    op = n.op
    if op == "mul":
        if _const(graph, ins[1], 1):
            return ins[0]
        if _const(graph, ins[0], 1):
            return ins[1]
    elif op == "add":
        if _const(graph, ins[1], 0):
            return ins[0]
        if _const(graph, ins[0], 0):
            return ins[1]
    elif (op == "sub" and _const(graph, ins[1], 0)) or (op == "div" and _const(graph, ins[1], 1)):
        return ins[0]
    elif op == "neg":
        inner = graph.nodes[ins[0]]
        if inner.kind == "op" and inner.op == "neg":
            return resolve(subst, inner.inputs[0])
    elif op in ("reshape", "expand", "cast"):
        return ins[0]  # the caller checks that shape and dtype are x's own
    elif op == "permute" and tuple(n.attrs.get("axes", ())) == tuple(range(len(n.shape))):
        return ins[0]
    return None


def fold_transposes(graph: Graph) -> Graph:
    """(A @ B).T becomes B.T @ A.T, when nothing else reads A @ B: the product is then made in
    the layout its reader wants (BLAS reads transposed operands in place), instead of being
    transposed by a copy afterwards (a weight gradient's `permute` + `copy`). A.T of an A that
    is itself x.T is x. Matrices (2-D) only."""
    nodes = graph.nodes
    readers: dict[int, int] = {}
    for n in nodes:
        for i in n.inputs:
            readers[i] = readers.get(i, 0) + 1
    for i in graph.outputs:
        readers[i] = readers.get(i, 0) + 1
    for _, _, v in graph.effects:
        readers[v] = readers.get(v, 0) + 1
    has_aux = {n.inputs[0] for n in nodes if n.kind == "aux"}

    def is_t(n) -> bool:
        return n.kind == "op" and n.op == "permute" and tuple(n.attrs.get("axes", ())) == (1, 0)

    todo = {}
    for n in nodes:
        if not is_t(n):
            continue
        m = nodes[n.inputs[0]]
        if m.kind == "op" and m.op == "matmul" and len(m.shape) == 2 and readers.get(m.id) == 1 \
                and m.id not in has_aux and all(len(nodes[i].shape) == 2 for i in m.inputs):
            todo[n.id] = m
    if not todo:
        return graph
    out: list[Node] = []
    new_id: dict[int, int] = {}

    def add(node: Node) -> int:
        node.id = len(out)
        out.append(node)
        return node.id

    def transposed(i: int, like: Node) -> int:
        x = nodes[i]
        if is_t(x):
            return new_id[x.inputs[0]]
        return add(dataclasses.replace(like, id=-1, inputs=(new_id[i],), shape=x.shape[::-1],
                                       dtype=x.dtype, attrs={"axes": (1, 0)}, params=()))

    for n in nodes:
        if n.id in {m.id for m in todo.values()}:
            continue  # made transposed by its one reader, below
        if n.id in todo:
            m = todo[n.id]
            a, b = m.inputs
            bt, at = transposed(b, n), transposed(a, n)
            new_id[n.id] = add(dataclasses.replace(m, id=-1, inputs=(bt, at), shape=n.shape,
                                                   module=n.module, scope=n.scope, params=()))
            continue
        new_id[n.id] = add(dataclasses.replace(
            n, inputs=tuple(new_id[i] for i in n.inputs),
            params=tuple(new_id[i] for i in n.params if i in new_id),
            residual=None if n.residual is None else _remap_residual(n.residual, {}, new_id)))
    g = Graph(out, [new_id[i] for i in graph.inputs], [new_id[i] for i in graph.outputs],
              graph.calls, kind=graph.kind, mode=graph.mode, model=graph.model,
              effects=[(k, new_id[p], new_id[v]) for k, p, v in graph.effects])
    return g


def elide_copies(graph: Graph) -> Graph:
    """copy(v) becomes v where v is the new array of an op (not an input, parameter, constant or
    state, nor a view of one), nothing writes into v or the copy, and neither v nor a view of it
    is an output or a `.grad` itself. Eager backward copies a gradient that an op returned as a
    view (a weight gradient's transpose, which fold_transposes has since made in place) so that
    each .grad has memory of its own; here v already is, and the plan gives every value that
    leaves the step memory of its own at each replay. The copy's loop and its writes go."""
    root = roots(graph)
    changing = written(graph)
    # memory that leaves the step (outputs, .grad, and what they are views of)
    leaving = {root[i] for i in graph.outputs} | {root[v] for _, _, v in graph.effects}
    subst: dict[int, int] = {}
    for n in graph.nodes:
        if n.kind != "op" or n.op != "copy":
            continue
        v = n.inputs[0]
        src = graph.nodes[v]
        if src.kind == "op" and src.op not in VIEW_OPS and src.op not in EFFECT_OPS \
                and root[v] == v and v not in changing and root[n.id] not in changing \
                and v not in leaving and src.shape == n.shape and src.dtype == n.dtype:
            subst[n.id] = v
    if not subst:
        return graph
    return rebuild(graph, None, subst)


# name -> pass, in the order tds.compile runs them
PASSES: dict[str, Callable[[Graph], Graph]] = {
    "fold_constants": fold_constants,
    "simplify": simplify,
    "fold_transposes": fold_transposes,
    "elide_copies": elide_copies,
    "cse": eliminate_common_subexpressions,
    "dce": eliminate_dead_code,
}
