"""The interactive page: one self-contained HTML file (no network when viewed).

    from viz.html import write_html
    write_html(tds.trace(model, (1, 3, 32, 32)), "model.html", depth=2)

The page holds the graph at leaf-module level as JSON, the module tree, the residual blocks with
the nodes of each branch and skip, and the path count; its script (viz/static/page.js) lays the
graph out with dagre (vendored from npm into viz/static/, MIT, licence text beside it) and draws
SVG: pan and zoom, expand and collapse any module, repeated blocks folded 'x N', search, details
on click, export as SVG or PNG, the residual story (count, length histogram, a block's two ways
through, any path lit through the whole network with its length and share), and the backward
graph beside the forward one with an edge from each saved forward value to the rule reading it.
"""
from __future__ import annotations

import html
import json
import os
from math import comb
from pathlib import Path

import numpy as np

from tinygrad_ds.errors import fmt_shape
from tinygrad_ds.graph import Graph, multiply_adds
from tinygrad_ds.graph.paths import PathGraph, fmt_count

STATIC = Path(__file__).parent / "static"
MAX_OPS = 20_000  # beyond this the page starts collapsed at depth 1 and says so
_VALUES = ("param", "buffer", "const")


def page_data(graph: Graph, depth: int | None = 2, title: str = "",
              backward: bool = True) -> dict:
    """Everything the page's script reads, as plain JSON-able data."""
    leaf = graph.module_graph()
    src = graph
    ops = len(graph.op_nodes())
    note = ""
    if ops > MAX_OPS:
        depth = 1
        note = (f"{ops:,} ops are too many to lay out at once: the page starts with every "
                "module collapsed at depth 1; expand the ones you want to see")
    params = {}
    if graph.model is not None and hasattr(graph.model, "named_parameters"):
        for name, p in graph.model.named_parameters():
            a = np.asarray(p.data, dtype=np.float64)
            params[name] = {"shape": fmt_shape(a.shape), "numel": int(a.size),
                            "mean": float(a.mean()) if a.size else 0.0,
                            "std": float(a.std()) if a.size else 0.0,
                            "min": float(a.min()) if a.size else 0.0,
                            "max": float(a.max()) if a.size else 0.0}
    nodes, keep = [], set()
    for n in leaf.nodes:
        if n.kind in _VALUES or n.kind not in ("input", "op", "module"):
            continue  # parameters show in the details panel; unknown kinds are skipped
        keep.add(n.id)
        members = [src.nodes[m] for m in (n.members or ())]
        macs = sum(multiply_adds(src, m) for m in members if m.kind == "op")
        pnames = [leaf.nodes[p].name for p in n.params if leaf.nodes[p].name]
        ins = [fmt_shape(leaf.nodes[i].shape) for i in n.inputs
               if leaf.nodes[i].kind not in _VALUES]
        nodes.append({
            "id": n.id, "kind": n.kind, "op": n.op, "label": n.name if n.kind == "input" else
            (n.module or n.op), "module": n.module, "shape": fmt_shape(n.shape),
            "inputs": ins, "scope": [c for c in n.scope if graph.calls[c].depth > 0],
            "params": pnames, "macs": int(macs),
            "ops": sorted({m.op for m in members if m.kind == "op"}),
            "attrs": {k: str(v) for k, v in (members[0].attrs.items() if len(members) == 1
                                             else ()) if k != "call"},
            "residual": n.residual["block"] if n.residual else None,
        })
    edges = []
    for n in leaf.nodes:
        if n.id not in keep:
            continue
        for i in n.inputs:
            if i in keep:
                kind = ""
                if n.residual and i == n.residual["skip"]:
                    kind = "skip"
                elif n.residual and i == n.residual["branch"]:
                    kind = "branch"
                edges.append({"src": i, "dst": n.id, "kind": kind})
    calls = {c.id: {"path": c.path, "type": c.type, "parent": c.parent, "depth": c.depth,
                    "leaf": c.leaf} for c in graph.calls.values() if c.depth > 0}
    # the ancestors of each of a block's two inputs inside the block: its branch and its skip
    blocks = []
    by_id = {n.id: n for n in leaf.nodes}
    for n in leaf.nodes:
        if not n.residual:
            continue
        cid = next((c for c in reversed(n.scope) if graph.calls[c].path == n.residual["block"]),
                   n.scope[-1] if n.scope else None)

        def side(start: int) -> list[int]:
            out, stack = [], [start]
            while stack:
                v = stack.pop()
                m = by_id[v]
                if v in out or cid not in m.scope or m.kind in _VALUES:
                    continue
                out.append(v)
                stack += [i for i in m.inputs]
            return out
        blocks.append({"name": n.residual["block"], "call": cid, "add": n.id,
                       "branch": side(n.residual["branch"]), "skip": side(n.residual["skip"])})
    back = None
    if backward:
        try:
            back = _backward_data(graph, leaf)
        except Exception as e:  # noqa: BLE001 - the forward page still works; the toggle says
            back = {"error": f"the backward graph could not be derived: {e}"}
    pg = PathGraph.from_graph(graph)
    count = pg.factorize()
    T = pg.num_blocks
    dist = pg.length_distribution("blocks" if T else "layers")
    total = sum(dist.values())
    return {
        "title": title or (type(graph.model).__name__ if graph.model is not None else "graph"),
        "depth": depth, "note": note, "nodes": nodes, "edges": edges,
        "calls": {str(k): v for k, v in calls.items()}, "params": params, "blocks": blocks,
        "paths": {"text": str(count), "total": fmt_count(total), "T": T,
                  "unit": "residual blocks passed" if T else "layers passed",
                  "hist": [[k, dist[k] / total, fmt_count(dist[k])] for k in sorted(dist)],
                  "binom": [str(comb(T, k)) if T <= 64 else "" for k in range(T + 1)]},
        "ops": ops, "parameters": graph.num_parameters(), "backward": back,
    }


def _backward_data(graph: Graph, leaf: Graph) -> dict:
    """The backward graph at leaf-module level (each backward node: the gradient rule of one
    layer) and `saved`: (forward leaf node, backward node) for each forward value a backward
    rule reads: the activations and weights the forward pass saved for it."""
    bw = graph.backward()
    m = bw.module_graph()
    op2leaf = {}
    for n in leaf.nodes:
        for op in (n.members or (n.id,)):
            op2leaf[op] = n.id
    for i, j in zip(graph.inputs, leaf.inputs):
        op2leaf[i] = j
    keep = {n.id for n in m.nodes if n.kind in ("input", "module", "op")}
    outs = set(bw.outputs)
    nodes, edges, saved = [], [], []
    for n in m.nodes:
        if n.id not in keep:
            continue
        grads = [bw.nodes[x].name.replace("grad:", "grad of ", 1) for x in (n.members or ())
                 if x in outs and bw.nodes[x].name]
        nodes.append({"id": n.id, "label": "grad_output" if n.kind == "input" else
                      (n.module or n.op), "op": n.op, "shape": fmt_shape(n.shape),
                      "scope": [c for c in n.scope if graph.calls[c].depth > 0],
                      "kind": n.kind, "grads": grads})
        for i in n.inputs:
            src = m.nodes[i]
            if i in keep:
                edges.append({"src": i, "dst": n.id})
            elif src.kind == "ref" and src.ref in op2leaf and src.value is None:
                saved.append({"src": op2leaf[src.ref], "dst": n.id, "what": src.name})
    return {"nodes": nodes, "edges": edges, "saved": saved}


def render_html(graph: Graph, depth: int | None = 2, title: str = "",
                show_backward: bool = False) -> str:
    """The page as one string: data, dagre, the page script and its style, all inline.
    show_backward: the page opens with the backward graph shown beside the forward one."""
    data = page_data(graph, depth, title)
    data["show_backward"] = show_backward
    js = (STATIC / "dagre.min.js").read_text(encoding="utf-8")
    page = (STATIC / "page.js").read_text(encoding="utf-8")
    css = (STATIC / "page.css").read_text(encoding="utf-8")
    blob = json.dumps(data).replace("</", "<\\/")  # never closes the script element early
    name = html.escape(data["title"])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{name}: tds viz</title>
<style>{css}</style>
</head><body>
<div id="bar">
  <b id="title">{name}</b>
  <input id="search" type="search" placeholder="search a module or op">
  <button id="expand-all">expand all</button>
  <button id="collapse-all">collapse to depth 1</button>
  <label><input id="fold" type="checkbox" checked> fold repeated blocks</label>
  <label><input id="backward" type="checkbox"> backward</label>
  <button id="fit">fit</button>
  <button id="export-svg">export SVG</button>
  <button id="export-png">export PNG</button>
</div>
<div id="main"><div id="canvas"><svg id="graph" xmlns="http://www.w3.org/2000/svg"></svg></div>
<div id="side"><div id="note"></div><div id="paths"></div><div id="details">
<p class="hint">Click a node for its details; click a grey module box (or its + badge) to
expand it, a cluster's title to collapse it. Drag to pan, wheel to zoom.</p></div></div></div>
<script>/* dagre {_dagre_version()} (MIT, from npm; licence: viz/static/dagre.LICENSE.txt) */
{js}</script>
<script id="data" type="application/json">{blob}</script>
<script>{page}</script>
</body></html>
"""


def _dagre_version() -> str:
    return (STATIC / "VERSION").read_text().strip() if (STATIC / "VERSION").exists() else ""


def write_html(graph: Graph, path: str, depth: int | None = 2, title: str = "",
               show_backward: bool = False) -> str:
    """Write the page to `path`; returns the path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(render_html(graph, depth, title, show_backward))
    return path


class Page:
    """`Page(graph)` in a Jupyter cell shows the interactive page (in an iframe, so its script
    and style stay its own)."""

    def __init__(self, graph: Graph, depth: int | None = 2, height: int = 700):
        self.graph, self.depth, self.height = graph, depth, height

    def _repr_html_(self) -> str:
        doc = html.escape(render_html(self.graph, self.depth), quote=True)
        return (f'<iframe srcdoc="{doc}" style="width:100%;height:{self.height}px;border:1px '
                'solid #ccc"></iframe>')
