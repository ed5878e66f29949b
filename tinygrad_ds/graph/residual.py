"""Which adds are residual: the add of an nn.Residual, and hand-written `f(x) + x` in a block.

Marks are set on the add node (`node.residual = {'skip': id, 'branch': id, 'block': path}`): the
path analysis and the drawings read them.
"""
from __future__ import annotations

from .ir import Graph, Node


def _mark_residual_module(rec, node: Node) -> None:
    """The add in the forward of an nn.Residual (y = f(x) + shortcut(x)): the input made inside
    f is the residual branch, the other one the skip."""
    cid = node.scope[-1]
    module = rec.call_modules[cid]
    f = getattr(module, "f", None)
    if type(module).__name__ != "Residual" or f is None or not hasattr(module, "shortcut"):
        return
    a, b = node.inputs
    in_f = [_inside(rec, rec.nodes[i], cid, f) for i in (a, b)]
    if in_f[0] == in_f[1]:
        return
    branch, skip = (a, b) if in_f[0] else (b, a)
    node.residual = {"skip": skip, "branch": branch, "block": rec.calls[cid].path}


def _inside(rec, n: Node, cid: int, child) -> bool:
    """Was n made inside a call of `child` made by call cid?"""
    if cid not in n.scope:
        return False
    k = n.scope.index(cid)
    return k + 1 < len(n.scope) and rec.call_modules[n.scope[k + 1]] is child


def _mark_residual_generic(graph: Graph) -> None:
    """Residual adds written by hand (`out = self.bn2(...) + x` in a block's forward): an add,
    in a block's own scope, of two same-shape values where one was made by a sub-module of
    the block and the other outside the block or by another sub-module. The skip is the input
    fewer ops away from the graph's input."""
    depth: dict[int, int] = {}
    for n in graph.nodes:
        depth[n.id] = 1 + max((depth[i] for i in n.inputs), default=-1) if n.kind == "op" else 0
    for n in graph.nodes:
        if n.kind != "op" or n.op != "add" or n.residual or len(n.inputs) != 2 or not n.scope:
            continue
        cid = n.scope[-1]
        a, b = (graph.nodes[i] for i in n.inputs)
        if a.kind != "op" or b.kind != "op" or not (a.shape == b.shape == n.shape):
            continue
        where = []
        for x in (a, b):
            if cid not in x.scope:
                where.append("outside")
            else:
                k = x.scope.index(cid)
                where.append(x.scope[k + 1] if k + 1 < len(x.scope) else "own")
        if "own" in where or where[0] == where[1] or where.count("outside") == 2:
            continue
        if "outside" in where:
            skip = (a, b)[where.index("outside")]
        else:
            skip = a if depth[a.id] < depth[b.id] else b
        branch = b if skip is a else a
        n.residual = {"skip": skip.id, "branch": branch.id, "block": graph.calls[cid].path}
