"""Rebuilding a Graph after a pass: dropping nodes, redirecting uses, renumbering.

A pass decides which nodes stay and which node stands for a removed one (`subst`); `rebuild`
makes the new Graph: nodes copied in their old order, ids renumbered to positions (Graph.check
requires that), inputs, outputs and effects redirected. The old graph is not changed.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..graph.ir import Graph, Node

# Ops that do something besides computing their value: writing state, advancing the random
# generator, raising on bad input. No pass removes, merges or folds them.
EFFECT_OPS = frozenset({"assign", "bernoulli_mask", "check_class_index"})
# Ops whose value may share memory with their first input (a view, or the input itself).
VIEW_OPS = frozenset({"reshape", "permute", "expand", "getitem", "contiguous", "cast", "assign"})


def resolve(subst: dict[int, int], i: int) -> int:
    """Follow `subst` (old id -> the id standing for it) to the end of the chain."""
    while i in subst:
        i = subst[i]
    return i


def rebuild(graph: Graph, keep: set[int] | None, subst: dict[int, int] | None = None,
            replace: dict[int, Node] | None = None) -> Graph:
    """A new Graph of the nodes in `keep` (None: all not substituted), in their order, with every
    use of a substituted id redirected (`subst`), nodes swapped for `replace[id]` (same id, other
    content: a folded constant), and ids renumbered to positions."""
    subst = subst or {}
    replace = replace or {}
    new_id: dict[int, int] = {}
    nodes: list[Node] = []
    for n in graph.nodes:
        if n.id in subst or (keep is not None and n.id not in keep):
            continue
        src = replace.get(n.id, n)
        new_id[n.id] = len(nodes)
        nodes.append(dataclasses.replace(
            src, id=len(nodes), inputs=tuple(new_id[resolve(subst, i)] for i in src.inputs),
            params=tuple(new_id[resolve(subst, i)] for i in src.params
                         if resolve(subst, i) in new_id),
            residual=None if src.residual is None else _remap_residual(src.residual, subst,
                                                                       new_id)))

    def nid(i: int) -> int:
        return new_id[resolve(subst, i)]

    out = Graph(nodes, [nid(i) for i in graph.inputs], [nid(i) for i in graph.outputs],
                graph.calls, kind=graph.kind, mode=graph.mode, model=graph.model,
                effects=[(k, nid(p), nid(v)) for k, p, v in graph.effects])
    return out


def _remap_residual(res: dict, subst: dict, new_id: dict) -> dict | None:
    out = dict(res)
    for key in ("skip", "branch"):
        if key in out and isinstance(out[key], int):
            j = new_id.get(resolve(subst, out[key]))
            if j is None:
                return None
            out[key] = j
    return out


def roots(graph: Graph) -> list[int]:
    """For each node, the node whose memory its value may share (through views and assigns)."""
    out = list(range(len(graph.nodes)))
    for n in graph.nodes:
        if n.kind == "op" and n.op in VIEW_OPS and n.inputs:
            out[n.id] = out[n.inputs[0]]
    return out


def written(graph: Graph) -> set[int]:
    """Nodes whose memory an `assign` writes (a constant among them is not constant: a tensor
    the traced function captured and then wrote into is recorded as one)."""
    root = roots(graph)
    return {root[n.inputs[0]] for n in graph.nodes if n.kind == "op" and n.op == "assign"}


def live_roots(graph: Graph) -> set[int]:
    """Nodes the program must compute whatever the outputs: outputs, effects, ops with effects."""
    need = set(graph.outputs)
    for _, p, v in graph.effects:
        need |= {p, v}
    need |= {n.id for n in graph.nodes if n.kind == "op" and n.op in EFFECT_OPS}
    need |= set(graph.inputs)
    return need


def attrs_key(attrs: dict):
    """A hashable form of an op's attributes (arrays by their bytes)."""
    return tuple(sorted((k, _key(v)) for k, v in attrs.items()))


def _key(v):
    if isinstance(v, np.ndarray):
        return ("array", v.shape, str(v.dtype), v.tobytes())
    if isinstance(v, (list, tuple)):
        return (type(v).__name__,) + tuple(_key(x) for x in v)
    if isinstance(v, dict):
        return attrs_key(v)
    if isinstance(v, slice):
        return ("slice", v.start, v.stop, v.step)
    if isinstance(v, np.dtype):
        return ("dtype", str(v))
    try:
        hash(v)
    except TypeError:
        return ("id", id(v))
    return (type(v).__name__, v)
