"""The graph a compiled plan runs, drawn: each fused group (one generated loop) as a box around
its ops, labelled with its kernel name and op count; the ops the compiler has no loop for
(convolutions, matrix products, pooling, views) outside the boxes, run by their own forward.

    c = tds.compile(model)
    with tds.no_grad():
        c(x)                                   # compiles the plan for x's shape
    dot = draw_compiled(c)                     # a graphviz.Digraph of c's most recent plan

Reads the compiled entry's public fields only: the optimised Graph (nodes, op, inputs, shape,
module, residual), the plan's kernels (name, members) and fallback counts, and which arena
buffer each loop output lives in (`plan.buffers_by_node()`): one fill colour and number per
buffer, so values that reuse one piece of memory at different times share a colour.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import graphviz

from tinygrad_ds.errors import TdsError, fmt_shape
from viz.draw import EDGE_COLOR, SKIP_COLOR, DrawingTooLarge

MAX_OPS = 300  # beyond this an op-level drawing is no longer readable
GROUP_FILL, GROUP_BORDER, FUSED_FILL = "#fff4e6", "#e8590c", "#ffd8a8"
# fill colours of the arena buffers (a buffer's number is in the label too: past 12 buffers
# the colours repeat)
BUFFER_FILLS = ("#ffc9c9", "#e599f7", "#a5d8ff", "#ffec99", "#d0bfff", "#99e9f2", "#fcc2d7",
                "#c0eb75", "#ffd8a8", "#bac8ff", "#96f2d7", "#e9ecef")
HEAVY = ("conv2d", "matmul", "conv_transpose2d")  # blue: the products (most of the time)
VIEWS = ("reshape", "permute", "expand", "getitem", "contiguous", "pad", "flatten")


@dataclass
class CompiledCounts:
    """What a plan does instead of the eager ops: `ops` traced ops (eager launches) become
    `loops` generated loops plus `forward` ops run by their own forward."""

    ops: int
    loops: int
    forward: int
    optimized_ops: int   # ops left after the passes (drawn)

    @property
    def line(self) -> str:
        return (f"compiled: {self.ops} ops -> {self.loops} generated loops + {self.forward} ops "
                "by their forward")


def compiled_counts(entry) -> CompiledCounts:
    """The counts of one compiled entry (`compiled.last`), as explain() reports them."""
    plan = entry.plan
    return CompiledCounts(len(entry.graph.op_nodes()), len(plan.kernels),
                          sum(plan.fallback.values()), len(entry.optimized.op_nodes()))


def draw_compiled(compiled, note: str = "", max_ops: int = MAX_OPS) -> graphviz.Digraph:
    """Draw the most recent plan of `compiled` (a tds.compile result called at least once).

    Boxes (graphviz clusters): fused groups, one generated loop each, labelled with the kernel's
    name, its op count and the shape it loops over. Outside them: the ops run by their own
    forward (blue: convolutions and matrix products; grey, dashed: views). Parameters, buffers
    and constants are not drawn. note: a line added to the title (the model, the input).
    """
    entry = compiled.last
    if entry is None:
        raise TdsError("draw_compiled: the compiled function has not been called yet (it "
                       "compiles on its first call)")
    g, plan = entry.optimized, entry.plan
    counts = compiled_counts(entry)
    if counts.optimized_ops > max_ops:
        raise DrawingTooLarge(f"the compiled graph has {counts.optimized_ops} ops, too many to "
                              f"draw readably (limit {max_ops}); compiled.explain() lists its "
                              "fused groups as text")
    group_of = {m: k for k, kern in enumerate(plan.kernels) for m in kern.members}
    title = counts.line
    if counts.optimized_ops != counts.ops:
        title += f" (the passes left {counts.optimized_ops} of the {counts.ops} ops)"
    if note:
        title += "\n" + note
    buffers = plan.buffers_by_node()  # (node ids of g: the plan runs the optimised graph)
    title += ("\norange box: one generated loop (kernel name, ops fused, shape it loops over); "
              "white and blue: ops run by their own forward (blue: convolution, matrix product)"
              "\n'reads': the parameters and buffers an op reads (not drawn as nodes)")
    if buffers:
        title += (f"\ncoloured, 'buffer k': a loop's output in arena buffer k; {len(buffers)} "
                  f"values share {len(set(buffers.values()))} buffers (one colour, one piece of "
                  "memory, reused by values alive at different times)")
    else:
        title += "\nbuffer reuse: no loop output shares memory in this plan"
    if any(n.residual for n in g.nodes):
        title += "\n(+) residual addition; dashed red edge: its skip connection"
    dot = graphviz.Digraph("compiled", graph_attr={
        "rankdir": "TB", "fontname": "Helvetica", "fontsize": "12", "nodesep": "0.2",
        "ranksep": "0.25", "label": title, "labelloc": "t", "newrank": "true"},
        node_attr={"fontname": "Helvetica", "fontsize": "9", "style": "filled",
                   "shape": "box", "color": "#495057", "penwidth": "1", "height": "0.3"},
        edge_attr={"color": EDGE_COLOR, "arrowsize": "0.5", "penwidth": "1.0"})

    shown = [n for n in g.nodes if n.kind in ("input", "op")]
    outputs = set(g.outputs)
    groups: dict[int, list] = {}
    for n in shown:
        attrs = _attrs(n, n.id in group_of)
        state = [g.nodes[i].name.rsplit(".", 1)[-1] for i in dict.fromkeys(n.inputs)
                 if g.nodes[i].kind in ("param", "buffer", "state") and not n.residual]
        if state:  # what it reads that is not drawn: parameters and buffers, by name
            attrs["label"] += "\nreads " + ", ".join(state)
        if n.id in buffers:
            k = buffers[n.id]
            attrs["fillcolor"] = BUFFER_FILLS[k % len(BUFFER_FILLS)]
            attrs["label"] += f"\nbuffer {k}"
        if n.id in outputs:
            attrs["penwidth"] = "2.5"
            attrs["label"] += "\n(output)"
        if n.id in group_of:
            groups.setdefault(group_of[n.id], []).append((f"n{n.id}", attrs))
        else:
            dot.node(f"n{n.id}", **attrs)
    for k, members in groups.items():
        kern = plan.kernels[k]
        ops = [g.nodes[m] for m in kern.members]
        shape = max((n.shape for n in ops), key=len)
        where = _common_module(ops)
        with dot.subgraph(name=f"cluster_{k}") as sub:
            sub.attr(label=f"{kern.name}: {len(ops)} op{'s' if len(ops) != 1 else ''} in one "
                     f"loop over {fmt_shape(shape)}" + (f"\n{where}" if where else ""),
                     style="rounded,filled", fillcolor=GROUP_FILL, color=GROUP_BORDER,
                     penwidth="1.5", fontsize="9", fontcolor="#7c2d12", labeljust="l",
                     tooltip=f"{kern.name}: " + ", ".join(
                         f"{op} x{c}" if c > 1 else op
                         for op, c in Counter(n.op for n in ops).items()))
            for name, attrs in members:
                sub.node(name, **attrs)
    ids = {n.id for n in shown}
    for n in shown:
        for i in dict.fromkeys(n.inputs):
            if i not in ids:
                continue  # a parameter, buffer or constant
            # the activations' path drawn straight down; small side values (a batch norm's
            # per-channel scale) join it from the side
            attrs = {"weight": "8"} if len(g.nodes[i].shape) > 1 else {}
            if n.residual and i == n.residual.get("skip"):
                attrs = {"color": SKIP_COLOR, "style": "dashed", "penwidth": "2",
                         "tooltip": f"skip connection of {n.residual['block']}"}
            dot.edge(f"n{i}", f"n{n.id}", **attrs)
    return dot


def _attrs(n, fused: bool) -> dict:
    shape = fmt_shape(n.shape)
    tip = f"#{n.id} {n.op} {shape} in {n.module or '(top level)'}"
    if n.kind == "input":
        return {"label": f"{n.name or 'input'}\n{shape}", "fillcolor": "#b2f2bb", "tooltip": tip}
    if n.residual:
        return {"label": "+", "shape": "circle", "fillcolor": "#ffdeeb", "color": SKIP_COLOR,
                "fontsize": "12", "width": "0.3", "fixedsize": "true", "tooltip": tip}
    if fused:
        return {"label": n.op, "fillcolor": FUSED_FILL, "shape": "ellipse", "tooltip": tip}
    if n.op in HEAVY:
        return {"label": f"{n.op}\n{shape}", "fillcolor": "#cfe2ff", "tooltip": tip}
    if n.op in VIEWS:
        return {"label": f"{n.op}\n{shape}", "fillcolor": "#f1f3f5", "style": "filled,dashed",
                "tooltip": tip}
    return {"label": f"{n.op}\n{shape}", "fillcolor": "#ffffff", "tooltip": tip}


def _common_module(ops) -> str:
    """The module path all the group's ops are in ('layer1.0'), or ''."""
    paths = [n.module.split(".") for n in ops if n.module]
    if not paths:
        return ""
    common = []
    for parts in zip(*paths):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return ".".join(common)
