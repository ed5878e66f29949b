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
from tinygrad_ds.graph.paths import paths_within

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
         max_nodes: int | None = None, rankdir: str = "TB", fold: bool = False,
         edge_shapes: bool = False, note: str = "") -> graphviz.Digraph:
    """Draw a traced graph.

    level: 'module' (each leaf-module call is one node) or 'op' (every op). depth: collapse each
    module call at that depth of the module tree into one node (1: the model's children), with
    either level; a collapsed block with a skip inside keeps it (a dashed loop and 'N paths').
    params: draw parameter nodes. backward: draw graph.backward() instead. grads: {forward node
    id: gradient norm} (viz.grads.gradient_norms) colours the nodes on a log scale, forward or
    backward (a backward node by the gradient its rule receives). fold: a run of identical
    blocks, one after the other, becomes one node 'x N'. edge_shapes: print each value's shape
    on its edge. note: a line added to the title (where the weights came from, say).
    """
    forward = graph
    if backward and graph.kind == "forward":
        graph = graph.backward()
    view = _view(graph, level, depth)
    shown = [n for n in view.nodes if _visible(n, params)]
    alias, runs = _fold_runs(view, shown) if fold else ({}, {})
    count = len(shown) - sum(len(r) - 1 for r in runs.values())
    max_nodes = MAX_NODES[level] if max_nodes is None else max_nodes
    if count > max_nodes:
        hint = ("draw it with level='module' (--level module) or collapse blocks with depth "
                "(--depth 2)" if level == "op" or depth is None else "use a smaller depth")
        raise DrawingTooLarge(f"the drawing would have {count} nodes, too many to read "
                              f"(limit {max_nodes}): {hint}")

    is_bw = graph.kind == "backward"
    title = f"{'backward' if is_bw else 'forward'} graph, {level} level" + \
        (f", depth {depth}" if depth is not None else "") + (", repeated blocks folded" if runs
                                                              else "")
    if is_bw:
        title += ("\ngradients flow from grad_output (top) to the gradients of the parameters "
                  "and of the input (bottom, thick border)")
    if note:
        title += "\n" + note
    inner = _inner_paths(forward if not is_bw else graph.forward, view) \
        if view.kind == "module" and not is_bw else {}
    if any(n.residual for n in shown):
        title += "\n(+) residual addition; dashed red edge: its skip connection"
    if any(c > 1 for c in inner.values()):
        title += ("\ndashed red loop beside a block: the skip connection inside it "
                  "(the block is a sum of its branch and the skip)")
    dot = graphviz.Digraph("graph", graph_attr={
        "rankdir": rankdir, "fontname": "Helvetica", "fontsize": "12", "nodesep": "0.25",
        "ranksep": "0.3", "label": title, "labelloc": "t", "newrank": "true"},
        node_attr={"fontname": "Helvetica", "fontsize": "10", "style": "filled,rounded",
                   "shape": "box", "color": "#495057", "penwidth": "1"},
        edge_attr={"color": EDGE_COLOR, "arrowsize": "0.6", "penwidth": "1.1",
                   "fontname": "Helvetica"})

    norms: dict[int, float] = {}
    if grads is not None:
        for n in shown:
            v = _norm_of(view, n, grads)
            if v is not None and v > 0 and math.isfinite(v):
                norms[n.id] = v
    lo = min(norms.values()) if norms else None  # the legend's range: the norms drawn
    hi = max(norms.values()) if norms else None

    clusters: dict[int | None, list[str]] = {}
    outputs = set(view.outputs)
    for n in shown:
        if n.id in alias and alias[n.id] != n.id:
            continue
        attrs = _node_attrs(view, n, n.id in outputs)
        if n.id in runs:
            run = [view.nodes[i] for i in runs[n.id]]
            attrs["label"] = (f"{run[0].module} .. {run[-1].module}\n{n.op} x {len(run)}  "
                              f"{_shape(run[-1])}")
            attrs["tooltip"] = (f"{len(run)} identical {n.op} blocks, one after the other: "
                                + ", ".join(m.module for m in run))
            attrs["peripheries"] = "2"
        k = inner.get(n.id, 1)
        if k > 1:
            attrs["label"] += f"\n{k} paths inside" + (" each" if n.id in runs else "")
            attrs["tooltip"] = attrs.get("tooltip", "") + f"; {k} paths from its input to its " \
                "output (branch and skip)"
        if n.id in norms:
            norm = norms[n.id]
            attrs["fillcolor"] = grad_color(norm, lo, hi)
            attrs["fontcolor"] = "white" if norm < math.sqrt(lo * hi) else "black"
            attrs["label"] += f"\n|grad| {norm:.2e}"
        clusters.setdefault(_cluster_of(view, n), []).append((f"n{n.id}", attrs))

    _emit_clusters(dot, view, clusters)

    for n in shown:
        dst = alias.get(n.id, n.id)
        for i in n.inputs:
            src = view.nodes[i]
            if not _visible(src, params):
                continue
            s_id = alias.get(i, i)
            if s_id == dst:
                continue  # inside a folded run
            attrs = {}
            if n.residual and i == n.residual["skip"]:
                attrs = {"color": SKIP_COLOR, "style": "dashed", "penwidth": "2.2",
                         "class": "skip", "tooltip": f"skip connection of {n.residual['block']}"}
            elif n.residual and i == n.residual["branch"]:
                attrs = {"class": "branch"}
            elif src.kind in ("param", "buffer"):
                attrs = {"style": "dotted", "arrowhead": "none", "color": "#adb5bd"}
            if edge_shapes and src.kind not in ("param", "buffer"):
                attrs.update(label=_shape(src), fontsize="8", fontcolor="#495057")
            dot.edge(f"n{s_id}", f"n{dst}", **attrs)
        if params and n.kind == "module":
            for p in n.params:
                dot.edge(f"n{p}", f"n{dst}", style="dotted", arrowhead="none", color="#adb5bd")
        if inner.get(n.id, 1) > 1 and alias.get(n.id, n.id) == n.id:
            # the collapsed block's skip: a dashed loop around the box, from its input side
            dot.edge(f"n{n.id}:ne", f"n{n.id}:se", color=SKIP_COLOR, style="dashed",
                     penwidth="2.2", dir="forward", **{"class": "skip"},
                     tooltip=f"skip connection inside {n.module}")
    if is_bw and any(n.kind == "ref" for n in shown):
        dot.node("legend_saved", "dashed grey box: a value the forward pass saved\nfor the "
                 "backward (an activation, a weight)\nnamed module:op of the forward op",
                 shape="note", fillcolor="#e9ecef", style="filled,dashed", fontsize="9")
    if norms:
        what = ("|grad|: norm of the gradient this node's rule receives\n(d loss / d its forward "
                "output)") if is_bw else "|grad|: norm of d loss / d (node output)"
        dot.node("legend", f"{what} (gradient norm)\nloss = sum(output * random), one pass on "
                 f"random input\nlog colour scale: {lo:.2e} (dark) to {hi:.2e} (yellow)",
                 shape="note", fillcolor="#ffffff", style="filled")
    return dot


def _inner_paths(forward: Graph, view: Graph) -> dict[int, int]:
    """{module node id: paths inside it} for the collapsed module nodes of a forward view."""
    if forward is None or forward.kind != "forward":
        return {}
    leaf = forward.module_graph()
    out = {}
    for n in view.nodes:
        cid = n.attrs.get("call") if n.kind == "module" else None
        if cid is not None and not forward.calls[cid].leaf:
            out[n.id] = paths_within(forward, cid, leaf)
    return out


def _fold_runs(view: Graph, shown: list[Node]) -> tuple[dict[int, int], dict[int, list[int]]]:
    """Runs of identical module nodes one after the other (same type, shapes, parameter shapes
    and op count; each the only consumer of the one before): {node: first of its run} and
    {first: the run's node ids}, runs of 2 or more only."""
    consumers: dict[int, list[int]] = {}
    ids = {n.id for n in shown}
    for n in shown:
        for i in n.inputs:
            if i in ids:
                consumers.setdefault(i, []).append(n.id)

    def sig(n: Node):
        ins = tuple(view.nodes[i].shape for i in n.inputs)
        ps = tuple(view.nodes[p].shape for p in n.params)
        return (n.op, n.shape, ins, ps, len(n.members), _cluster_of(view, n))

    alias: dict[int, int] = {}
    runs: dict[int, list[int]] = {}
    for n in shown:
        if n.kind != "module":
            continue
        prev = [view.nodes[i] for i in n.inputs if i in ids]
        if len(prev) == 1 and prev[0].kind == "module" and consumers.get(prev[0].id) == [n.id] \
                and prev[0].id not in view.outputs and sig(prev[0]) == sig(n):
            first = alias.get(prev[0].id, prev[0].id)
            alias.setdefault(prev[0].id, first)
            alias[n.id] = first
            runs.setdefault(first, [first]).append(n.id)
    return alias, runs


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
        a["label"] = a["label"] + ("" if n.residual else "\n" + _output_name(view, n))
    return a


def _output_name(view: Graph, n: Node) -> str:
    """'(output)', or in a backward graph what the output is the gradient of: 'grad of
    classifier.4.weight' (a collapsed module lists each of its outputs)."""
    if view.kind != "module" and view.kind != "backward":
        return "(output)"
    src = getattr(view, "source", None) if view.kind == "module" else None
    if src is not None and src.kind == "backward":
        outs = set(src.outputs)
        names = [src.nodes[m].name for m in n.members if m in outs and src.nodes[m].name]
    elif view.kind == "backward":
        names = [n.name] if n.name else []
    else:
        return "(output)"
    names = [nm.replace("grad:", "grad of ", 1) if nm.startswith("grad:") else nm
             for nm in names]
    return "\n".join(names) if names else "(output)"


def _norm_of(view: Graph, n: Node, grads: dict[int, float]) -> float | None:
    """The gradient norm a node is coloured by. Forward: of its output value. Backward: of the
    forward value whose gradient rule made it (the gradient that rule receives)."""
    src = getattr(view, "source", None) if view.kind == "module" else view
    if src is not None and src.kind == "backward":
        if n.kind == "input" and n.ref is not None:   # grad_output
            return grads.get(n.ref)
        refs = [src.nodes[m].ref for m in (n.members or (n.id,))
                if src.nodes[m].kind == "op" and src.nodes[m].ref in grads]
        return grads[max(refs)] if refs else None
    if n.kind == "module":
        # the module's output value: its last member of the module node's shape
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
        # NOTE: dot lays sibling clusters out right to left in the order they are defined, so
        # they go in reverse: parallel branches then read left to right in the order they run,
        # which is an Inception block's concatenation order
        for kid in reversed(children.get(cid, [])):
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
