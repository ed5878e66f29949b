"""Graph -> graphviz drawing: module level (default) or op level, clusters per module, skip edges
in their own colour, optional parameter nodes, forward or backward, coloured by gradient norm.

    from viz.draw import draw
    dot = draw(tds.trace(model, (1, 3, 32, 32)))          # a graphviz.Digraph
    dot.render("model", format="png")                       # needs Graphviz's `dot` program

Reads the graph's public attributes only (nodes, kind, op, inputs, shape, module, residual).
"""
from __future__ import annotations

import math

import graphviz

from tinygrad_ds.errors import TdsError, fmt_shape
from tinygrad_ds.graph import Graph, Node

SKIP_COLOR = "#d6336c"      # skip connections: magenta-red, dashed, thick
EDGE_COLOR = "#5f6b7a"
MAX_NODES = {"op": 300, "module": 600}  # beyond these a drawing is no longer readable

# fill colours by layer family, light enough for black text
_FAMILY = [
    (("Conv",), "#cfe2ff"), (("Linear",), "#d3f0e8"), (("BatchNorm", "LayerNorm", "GroupNorm",
     "InstanceNorm"), "#fff3bf"), (("ReLU", "GELU", "Sigmoid", "Tanh", "LeakyReLU", "Softmax"),
     "#ffe0cc"), (("Pool", "Upsample"), "#e5dbff"), (("Dropout", "DropConnect"), "#eeeeee"),
]
# gradient-norm palette, small to large (viridis stops)
_PALETTE = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"]


class DrawingTooLarge(TdsError):
    """More nodes than a readable drawing holds."""


def _fill(type_name: str) -> str:
    for keys, color in _FAMILY:
        if any(k in type_name for k in keys):
            return color
    return "#f8f9fa"


def _mix(a: str, b: str, t: float) -> str:
    ca = [int(a[i:i + 2], 16) for i in (1, 3, 5)]
    cb = [int(b[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(ca, cb))


def grad_color(norm: float, lo: float, hi: float) -> str:
    """Colour of a gradient norm on a log scale from lo (dark purple) to hi (yellow)."""
    if norm <= 0 or not math.isfinite(norm):
        return "#000000"
    t = 0.0 if hi <= lo else (math.log10(norm) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
    t = min(max(t, 0.0), 1.0) * (len(_PALETTE) - 1)
    k = min(int(t), len(_PALETTE) - 2)
    return _mix(_PALETTE[k], _PALETTE[k + 1], t - k)


def _view(graph: Graph, level: str, depth: int | None) -> Graph:
    if level not in ("module", "op"):
        raise ValueError(f"draw: level must be 'module' or 'op', got {level!r}")
    if level == "module":
        return graph.module_graph(depth)
    if depth is not None:
        return graph.module_graph(depth)
    return graph


def draw(graph: Graph, level: str = "module", depth: int | None = None, params: bool = False,
         backward: bool = False, grads: dict[int, float] | None = None,
         max_nodes: int | None = None, rankdir: str = "TB") -> graphviz.Digraph:
    """Draw a traced graph.

    level: 'module' (each leaf-module call is one node) or 'op' (every op). depth: collapse each
    module call at that depth of the module tree into one node (1: the model's children), with
    either level. params: draw parameter nodes. backward: draw graph.backward() instead.
    grads: {forward node id: gradient norm} (viz.grads.gradient_norms) colours the nodes.
    """
    if backward and grads is not None:
        raise ValueError("draw: gradient colours are drawn on the forward graph; leave out "
                         "backward=True (or grads)")
    if backward and graph.kind == "forward":
        graph = graph.backward()
    view = _view(graph, level, depth)
    shown = [n for n in view.nodes if _visible(n, params)]
    max_nodes = MAX_NODES[level] if max_nodes is None else max_nodes
    if len(shown) > max_nodes:
        hint = ("draw it with level='module' (--level module) or collapse blocks with depth "
                "(--depth 2)" if level == "op" or depth is None else "use a smaller depth")
        raise DrawingTooLarge(f"the drawing would have {len(shown)} nodes, too many to read "
                              f"(limit {max_nodes}): {hint}")

    title = f"{'backward' if graph.kind == 'backward' else 'forward'} graph, {level} level" + \
        (f", depth {depth}" if depth is not None else "")
    if any(n.residual for n in shown):  # say what the dashed edges are: not every reader knows
        title += "\n(+) residual addition; dashed red edge: its skip connection"
    dot = graphviz.Digraph("graph", graph_attr={
        "rankdir": rankdir, "fontname": "Helvetica", "fontsize": "12", "nodesep": "0.25",
        "ranksep": "0.3", "label": title, "labelloc": "t", "newrank": "true"},
        node_attr={"fontname": "Helvetica", "fontsize": "10", "style": "filled,rounded",
                   "shape": "box", "color": "#495057", "penwidth": "1"},
        edge_attr={"color": EDGE_COLOR, "arrowsize": "0.6", "penwidth": "1.1"})

    lo = hi = None
    if grads:
        vals = [v for v in grads.values() if v > 0 and math.isfinite(v)]
        if vals:
            lo, hi = min(vals), max(vals)

    clusters: dict[int | None, list[str]] = {}
    outputs = set(view.outputs)
    for n in shown:
        attrs = _node_attrs(view, n, n.id in outputs)
        if grads is not None and lo is not None:
            norm = _norm_of(view, n, grads)
            if norm is not None:
                attrs["fillcolor"] = grad_color(norm, lo, hi)
                attrs["fontcolor"] = "white" if norm < math.sqrt(lo * hi) else "black"
                attrs["label"] += f"\n|grad| {norm:.2e}"
        line = f"n{n.id}"
        clusters.setdefault(_cluster_of(view, n), []).append((line, attrs))

    _emit_clusters(dot, view, clusters)

    for n in shown:
        for i in n.inputs:
            src = view.nodes[i]
            if not _visible(src, params):
                continue
            attrs = {}
            if n.residual and i == n.residual["skip"]:
                attrs = {"color": SKIP_COLOR, "style": "dashed", "penwidth": "2.2",
                         "class": "skip", "tooltip": f"skip connection of {n.residual['block']}"}
            elif n.residual and i == n.residual["branch"]:
                attrs = {"class": "branch"}
            elif src.kind in ("param", "buffer"):
                attrs = {"style": "dotted", "arrowhead": "none", "color": "#adb5bd"}
            dot.edge(f"n{i}", f"n{n.id}", **attrs)
        if params and n.kind == "module":
            for p in n.params:
                dot.edge(f"n{p}", f"n{n.id}", style="dotted", arrowhead="none", color="#adb5bd")
    if grads is not None and lo is not None:
        dot.node("legend", f"|grad|: gradient norm of d loss / d (node output)\nloss = sum(output * "
                 f"random), one pass on random input\n{lo:.1e} (dark) to {hi:.1e} (yellow)",
                 shape="note",
                 fillcolor="#ffffff", style="filled")
    return dot


def _visible(n: Node, params: bool) -> bool:
    if n.kind in ("param", "buffer"):
        return params
    if n.kind == "const":
        return False
    if n.kind == "ref":
        return n.value is None or params  # forward params read by the backward: with params only
    return True


def _shape(n: Node) -> str:
    return fmt_shape(n.shape)


def _node_attrs(view: Graph, n: Node, is_output: bool) -> dict:
    if n.kind == "input":
        a = {"label": f"{n.name}\n{_shape(n)}", "fillcolor": "#b2f2bb", "shape": "box"}
    elif n.kind == "module":
        a = {"label": f"{n.module}\n{n.op}  {_shape(n)}", "fillcolor": _fill(n.op),
             "tooltip": f"{n.module} ({n.op}): {len(n.members)} ops, output {_shape(n)}"}
    elif n.kind in ("param", "buffer"):
        a = {"label": f"{n.name}\n{_shape(n)}", "shape": "note", "fillcolor": "#f1f3f5",
             "fontsize": "8", "style": "filled"}
    elif n.kind == "ref":
        a = {"label": f"{n.name}\n{_shape(n)}", "fillcolor": "#e9ecef", "style": "filled,dashed",
             "fontsize": "8"}
    elif n.residual:
        a = {"label": "+", "shape": "circle", "fillcolor": "#ffdeeb", "color": SKIP_COLOR,
             "fontsize": "14", "width": "0.3", "fixedsize": "true", "style": "filled",
             "tooltip": f"residual add of {n.residual['block']}: {_shape(n)}",
             "xlabel": _shape(n) if view.kind != "module" else ""}
    else:
        where = f"{n.module}\n" if n.module and view.kind != "module" and not n.scope else ""
        a = {"label": f"{where}{n.op}\n{_shape(n)}", "shape": "ellipse", "style": "filled",
             "fillcolor": "#ffffff", "tooltip": f"{n.module or '(top level)'}: {n.op}"}
    if is_output:
        a["penwidth"] = "2.5"
        a["label"] = a["label"] + ("" if n.residual else "\n(output)")
    return a


def _norm_of(view: Graph, n: Node, grads: dict[int, float]) -> float | None:
    if n.kind == "module":
        # the module's output value: its last member of the module node's shape
        src = view.source
        for m in reversed(n.members):
            if src.nodes[m].shape == n.shape and m in grads:
                return grads[m]
        return None
    for m in n.members or (n.id,):
        if m in grads:
            return grads[m]
    return None


def _cluster_of(view: Graph, n: Node) -> int | None:
    """The innermost module call drawn as a cluster around n (the model's own call is not)."""
    scope = n.scope
    if n.kind == "module":
        scope = scope[:-1]
    scope = [c for c in scope if view.calls[c].depth > 0]
    return scope[-1] if scope else None


def _emit_clusters(dot: graphviz.Digraph, view: Graph, clusters: dict) -> None:
    children: dict[int | None, list[int]] = {}
    needed = set()
    for cid in clusters:
        c = cid
        while c is not None and c not in needed:
            needed.add(c)
            parent = view.calls[c].parent
            parent = parent if parent is not None and view.calls[parent].depth > 0 else None
            children.setdefault(parent, []).append(c)
            c = parent

    def emit(target, cid):
        for line, attrs in clusters.get(cid, []):
            target.node(line, **attrs)
        for kid in children.get(cid, []):
            call = view.calls[kid]
            shade = ["#f8f9fa", "#f1f3f5", "#e9ecef", "#dee2e6"][min(call.depth - 1, 3)]
            with target.subgraph(name=f"cluster_{kid}") as sub:
                sub.attr(label=f"{call.path} ({call.type})", style="rounded,filled",
                         fillcolor=shade, color="#ced4da", fontsize="10", fontcolor="#495057",
                         labeljust="l")
                emit(sub, kid)

    emit(dot, None)


def draw_svg(graph: Graph) -> str:
    """The module-level drawing as SVG text (Jupyter's inline display of a Graph)."""
    return draw(graph).pipe(format="svg").decode("utf-8")
