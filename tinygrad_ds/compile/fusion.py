"""Elementwise fusion: which ops run together in one generated loop.

A fused group is a set of elementwise ops (ELEMENTWISE) that all produce one shape, the group's
iteration space; an operand of another shape that broadcasts into it ((C,), 0-d, (N, 1) ...)
comes from outside the group. Groups grow in execution order: an op joins the group of one of
its operands when

- that operand is elementwise with the op's shape, in a group still open;
- no other operand of the op depends on that group (the group would have to run both before and
  after that operand: a cycle);
- no `assign` happened since the group's last op (a group reads its inputs when it runs, so it
  must not straddle a write), unless the assign is folded into the group itself: an assign of a
  group value into a parameter or state of the group's shape becomes a store in the loop (the
  optimizer update is one loop per parameter), when nothing outside the group reads that memory
  between the group's first op and the write.

The result is a schedule: steps (a group, or one node run by its own forward) in an order that
respects every data dependence and every read-before-write of state.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np

from ..graph.ir import Graph
from .rewrite import roots

UNARY = ("neg", "exp", "log", "sqrt", "abs", "sign", "relu", "sigmoid", "tanh")
BINARY = ("add", "sub", "mul", "div", "maximum", "minimum")
COMPARE = ("less", "less_equal", "equal", "not_equal")
# copy: the identity into new memory (a gradient's own copy, written by the loop that makes it)
ELEMENTWISE = frozenset(UNARY + BINARY + COMPARE + ("where", "cast", "leaky_relu", "copy"))
DTYPES = frozenset({"float32", "float64", "int64", "bool"})


@dataclass
class Group:
    """One fused loop: `members` (node ids, execution order) over `shape`."""

    id: int
    shape: tuple[int, ...]
    members: list[int] = field(default_factory=list)
    epoch: int = 0
    stored_roots: set[int] = field(default_factory=set)  # memory written by folded assigns
    deps: set[int] = field(default_factory=set)  # groups its outside operands depend on
    # filled in by finish(): outside operands (arrays read), values needed outside, stores
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    # operands that are permuted views: read through their source (a C-ordered array) at
    # permuted indices, {permute node: source node}
    views: dict[int, int] = field(default_factory=dict)


@dataclass
class Fusion:
    """The groups, the order of steps (('group', Group) or ('node', id)), and for the report
    why some elementwise ops stand alone."""

    groups: list[Group]
    steps: list[tuple]
    group_of: dict[int, int]
    reasons: dict[int, str]


def _supported(graph: Graph, n) -> str | None:
    """None when node n can be part of a generated loop, else why not."""
    if n.kind == "op" and n.op == "batch_norm":  # the apply: elementwise with (C,) operands
        x = graph.nodes[n.inputs[0]]
        ok = len(n.shape) >= 2 and x.shape == n.shape and str(n.dtype) in ("float32", "float64")
        ok = ok and all(graph.nodes[i].shape == (n.shape[1],) and graph.nodes[i].dtype == n.dtype
                        for i in n.inputs[1:])
        return None if ok else "batch_norm with operands the generated loop does not take"
    if n.kind != "op" or n.op not in ELEMENTWISE:
        return "not elementwise"
    if str(n.dtype) not in DTYPES:
        return f"dtype {n.dtype}"
    for i in n.inputs:
        x = graph.nodes[i]
        if str(x.dtype) not in DTYPES:
            return f"operand dtype {x.dtype}"
        if len(x.shape) > len(n.shape) or any(
                a != b and a != 1 for a, b in zip(x.shape[::-1], n.shape[::-1])):
            return f"operand {x.shape} does not broadcast to {n.shape}"
    if n.op == "cast" and str(np.dtype(n.attrs["dtype"])) not in DTYPES:
        return "cast to an unsupported dtype"
    if len(n.shape) > 6:
        return "more than 6 axes"
    return None


def fuse(graph: Graph, min_size: int = 1) -> Fusion:
    """Group the graph's elementwise ops (see the module doc). Groups of fewer than `min_size`
    ops are dissolved (their ops run by their own forward)."""
    nodes = graph.nodes
    root = roots(graph)
    has_aux = {n.inputs[0] for n in nodes if n.kind == "aux"}
    readers: dict[int, list[int]] = {}
    for n in nodes:
        for i in set(n.inputs):
            readers.setdefault(root[i], []).append(n.id)
    groups: list[Group] = []
    group_of: dict[int, int] = {}
    dep: dict[int, set[int]] = {}  # node -> groups it depends on (through nodes)
    reasons: dict[int, str] = {}
    epoch = 0

    merged: dict[int, int] = {}  # group merged into another -> that group

    def find(g: int) -> int:
        while g in merged:
            g = merged[g]
        return g

    def reaches(start: set[int], target: int) -> bool:
        stack, seen = [find(g) for g in start], set()
        while stack:
            g = stack.pop()
            if g == target:
                return True
            if g not in seen:
                seen.add(g)
                stack.extend(find(x) for x in groups[g].deps)
        return False

    def merge(g: Group, h: Group) -> None:
        """h's ops join g (both open, same shape, neither depending on the other)."""
        merged[h.id] = g.id
        g.members = sorted(g.members + h.members)
        for m in h.members:
            group_of[m] = g.id
        h.members = []
        g.deps = {find(x) for x in g.deps | h.deps} - {g.id}

    for n in nodes:
        d: set[int] = set()
        for i in n.inputs:
            d |= dep.get(i, set())
        if n.kind != "op":
            dep[n.id] = d
            continue
        if n.op == "assign":
            epoch += 1
            g = _fold_assign(graph, n, groups, group_of, root, readers, epoch - 1)
            if g is not None:
                g.members.append(n.id)
                g.stored_roots.add(root[n.inputs[0]])
                g.epoch = epoch
                group_of[n.id] = g.id
                d.add(g.id)
            dep[n.id] = d
            continue
        why = _supported(graph, n) if n.id not in has_aux else "its backward reads a saved value"
        if why is not None:
            if n.op in ELEMENTWISE:
                reasons[n.id] = why
            dep[n.id] = d
            continue
        joined, why = None, None
        for i in n.inputs:
            gid = group_of.get(i)
            if gid is None:
                continue
            g = groups[gid]
            if g.shape != n.shape:
                why = f"operand #{i} is computed over shape {g.shape}, this op over {n.shape}"
                continue
            if g.epoch != epoch:
                why = f"an assign runs between operand #{i} and this op"
                continue
            outside = [j for j in n.inputs if group_of.get(j) != gid]
            if any(root[j] in g.stored_roots for j in outside):
                why = f"the group of operand #{i} writes memory this op reads"
                continue
            if any(reaches(dep.get(j, set()), gid) for j in outside):
                why = (f"another operand depends on the group of operand #{i} through ops "
                       "outside it (a cycle)")
                continue
            joined = g
            break
        if joined is None and why is not None:
            reasons[n.id] = why
        if joined is not None:  # operands in other open groups of this shape: one loop
            for i in n.inputs:
                h = groups[group_of[i]] if i in group_of else None
                if h is None or h.id == joined.id or h.shape != joined.shape or \
                        h.epoch != epoch or h.stored_roots or joined.stored_roots:
                    continue
                if reaches(joined.deps, h.id) or reaches(h.deps, joined.id):
                    continue
                rest = [j for j in n.inputs if group_of.get(j) not in (joined.id, h.id)]
                if any(reaches(dep.get(j, set()), h.id) for j in rest):
                    continue  # another operand of n is made from h's values outside the loop
                merge(joined, h)
        if joined is None:
            joined = Group(len(groups), tuple(n.shape), epoch=epoch)
            groups.append(joined)
        joined.members.append(n.id)
        group_of[n.id] = joined.id
        for j in n.inputs:
            if group_of.get(j) != joined.id:
                joined.deps |= {find(x) for x in dep.get(j, set())}
        joined.deps.discard(joined.id)
        d.add(joined.id)
        dep[n.id] = d

    # small groups run by their ops' own forward
    for g in groups:
        if len([m for m in g.members if nodes[m].op != "assign"]) < min_size:
            for m in g.members:
                group_of.pop(m, None)
            g.members = []
    groups = [g for g in groups if g.members]
    for k, g in enumerate(groups):
        g.id = k
        g.deps = set()  # (ids before renumbering: not read after fusion)
        for m in g.members:
            group_of[m] = k
    for g in groups:
        _finish(graph, g, group_of)
    try:
        steps = _schedule(graph, groups, group_of, root)
    except RuntimeError:  # NOTE: the join rules should make this impossible; never run wrong
        for g in groups:
            for m in g.members:
                reasons[m] = "fusion found no order for its groups: run unfused"
        return Fusion([], [("node", n.id) for n in nodes], {}, reasons)
    return Fusion(groups, steps, group_of, reasons)


def _fold_assign(graph, n, groups, group_of, root, readers, epoch):
    """The open group that can take assign node n as a store, or None."""
    dst, src = n.inputs
    gid = group_of.get(src)
    if gid is None:
        return None
    g = groups[gid]
    d = graph.nodes[dst]
    if g.epoch != epoch or tuple(d.shape) != g.shape or tuple(n.shape) != g.shape:
        return None
    if str(d.dtype) not in DTYPES:
        return None
    if d.kind not in ("param", "buffer", "state") and not (d.kind == "op" and d.op == "assign"):
        return None
    m = root[dst]
    first = g.members[0]
    members = set(g.members)
    for r in readers.get(m, ()):
        if first < r < n.id and r not in members:
            return None  # someone reads that memory between: it must see the old value
    for k in g.members:  # the loop may read that memory only at the element it writes
        for j in graph.nodes[k].inputs:
            if root[j] == m and j != dst and group_of.get(j) != gid:
                return None
    return g


def _finish(graph: Graph, g: Group, group_of: dict[int, int]) -> None:
    """The group's outside operands and the member values needed outside."""
    members = set(g.members)
    used_outside = set(graph.outputs) | {v for _, _, v in graph.effects}
    for n in graph.nodes:
        if n.id in members:
            continue
        used_outside |= {i for i in n.inputs if i in members}
    seen = set()
    for m in g.members:
        n = graph.nodes[m]
        for k, i in enumerate(n.inputs):  # (an assign's target is an operand: the loop writes it)
            if i in members or _baked(graph, i):
                continue
            x = graph.nodes[i]
            if x.kind == "op" and x.op == "permute" and not (n.op == "assign" and k == 0):
                g.views[i] = x.inputs[0]
                i = x.inputs[0]
            if i not in seen:
                seen.add(i)
                g.inputs.append(i)
    g.outputs = [m for m in g.members if m in used_outside and graph.nodes[m].op != "assign"]


def _baked(graph: Graph, i: int) -> bool:
    """0-d constants are written into the generated source as literals."""
    n = graph.nodes[i]
    return n.kind == "const" and n.shape == () and str(n.dtype) in DTYPES


def _schedule(graph: Graph, groups: list[Group], group_of: dict[int, int], root) -> list[tuple]:
    """Steps in an order that respects data edges and read-before-write of state memory."""
    nodes = graph.nodes
    step_of: dict[int, int] = {}
    group_step: dict[int, int] = {}
    steps: list[tuple] = []
    key: list[int] = []
    for n in nodes:
        gid = group_of.get(n.id)
        if gid is None:
            step_of[n.id] = len(steps)
            steps.append(("node", n.id))
            key.append(n.id)
            continue
        if gid not in group_step:
            group_step[gid] = len(steps)
            steps.append(("group", groups[gid]))
            key.append(groups[gid].members[-1])
        step_of[n.id] = group_step[gid]
    edges: list[set[int]] = [set() for _ in steps]
    readers: dict[int, list[int]] = {}
    for n in nodes:
        s = step_of[n.id]
        for i in n.inputs:
            if step_of[i] != s:
                edges[step_of[i]].add(s)
        for m in {root[i] for i in n.inputs}:
            readers.setdefault(m, []).append(n.id)
    # every write of a memory after the reads before it, and before the reads after it
    for w in nodes:
        if w.kind != "op" or w.op != "assign":
            continue
        ws = step_of[w.id]
        for r in readers.get(root[w.inputs[0]], ()):
            rs = step_of[r]
            if rs == ws or w.id in nodes[r].inputs:
                continue
            if r < w.id:
                edges[rs].add(ws)
            else:
                edges[ws].add(rs)
    indeg = [0] * len(steps)
    for e in edges:
        for t in e:
            indeg[t] += 1
    ready = [(key[s], s) for s in range(len(steps)) if indeg[s] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, s = heapq.heappop(ready)
        order.append(s)
        for t in edges[s]:
            indeg[t] -= 1
            if indeg[t] == 0:
                heapq.heappush(ready, (key[t], t))
    if len(order) != len(steps):
        raise RuntimeError("internal: the fused groups cannot be ordered (a cycle)")
    return [steps[s] for s in order]
