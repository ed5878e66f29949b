"""module_graph(): a Graph with module calls collapsed into single nodes, at any depth.

Each call of a leaf module (depth None), or each call at a given depth of the module tree and each
leaf-module call above that depth, becomes one node of kind 'module' (op: the module's type,
module: its path, members: the op ids inside); ops outside such calls (the add of a residual
block, a flatten written in a forward) stay.
Residual marks carry over to the collapsed producers, so skip edges are still known.
"""
from __future__ import annotations

from .ir import Graph, Node


def _group_of(graph: Graph, n: Node, depth: int | None) -> int | None:
    """The call a node collapses into, or None when it stays a node of its own."""
    if n.kind not in ("op", "aux") or not n.scope:  # an aux value goes with its op
        return None
    if depth is None:
        leaf = n.scope[-1]
        return leaf if graph.calls[leaf].leaf else None
    for cid in n.scope:  # outermost first: the call at `depth`, or a leaf module above it
        call = graph.calls[cid]
        if call.depth >= depth or call.leaf:
            return cid
    return None


def module_graph(graph: Graph, depth: int | None = None) -> Graph:
    if depth is not None and depth < 1:
        raise ValueError(f"module_graph: depth must be 1 or more (or None for leaf modules), "
                         f"got {depth}")
    groups: dict[int, list[Node]] = {}
    key_of: dict[int, tuple] = {}
    for n in graph.nodes:
        g = _group_of(graph, n, depth)
        if g is None:
            key_of[n.id] = ("node", n.id)
        else:
            key_of[n.id] = ("call", g)
            groups.setdefault(g, []).append(n)

    consumers = graph.consumers()
    outputs = set(graph.outputs)
    new_id: dict[tuple, int] = {}
    nodes: list[Node] = []
    for n in graph.nodes:  # execution order: the first member of a call places its node
        key = key_of[n.id]
        if key in new_id:
            continue
        nid = len(nodes)
        new_id[key] = nid
        if key[0] == "node":
            nodes.append(Node(nid, n.kind, n.op, n.shape, n.dtype, attrs=n.attrs, fn=n.fn,
                              module=n.module, scope=n.scope, name=n.name, value=n.value,
                              ref=n.ref, members=(n.id,)))
            continue
        call = graph.calls[key[1]]
        members = groups[key[1]]
        ids = {m.id for m in members}
        # the call's output: its last value used outside it (or the last one)
        outs = [m for m in members if m.id in outputs or any(c not in ids for c in consumers[m.id])]
        last = (outs or members)[-1]
        nodes.append(Node(nid, "module", call.type, last.shape, last.dtype, module=call.path,
                          scope=last.scope[:last.scope.index(call.id) + 1], name=call.path,
                          members=tuple(sorted(ids)), attrs={"call": call.id}))

    # edges, parameters and residual marks, in the new ids
    for n in graph.nodes:
        me = nodes[new_id[key_of[n.id]]]
        for i in n.inputs:
            src = nodes[new_id[key_of[i]]]
            if src.id == me.id:
                continue
            if src.kind in ("param", "buffer") and me.kind == "module":
                if src.id not in me.params:
                    me.params = me.params + (src.id,)
                continue
            if src.kind == "const" and me.kind == "module":
                continue
            if src.id not in me.inputs:
                me.inputs = me.inputs + (src.id,)
        if n.residual and me.kind != "module":
            me.residual = {"skip": new_id[key_of[n.residual["skip"]]],
                           "branch": new_id[key_of[n.residual["branch"]]],
                           "block": n.residual["block"]}
        elif me.kind != "module":
            me.params = tuple(new_id[key_of[i]] for i in n.params)
    # unused constants feeding only module nodes are dropped from view by the drawer; keep ids
    out = Graph(nodes, [new_id[key_of[i]] for i in graph.inputs],
                [new_id[key_of[i]] for i in graph.outputs], graph.calls, kind="module",
                mode=graph.mode, model=graph.model)
    out.source = graph
    return out
