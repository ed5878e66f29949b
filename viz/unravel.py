"""The unraveled view of a residual network (Veit et al. 2016, Figure 1) and the path-length plot.

    from tinygrad_ds.graph.paths import PathGraph
    from viz.unravel import draw_unraveled, plot_lengths
    dot = draw_unraveled(PathGraph.chain(4), highlight="f1")   # 16 columns, the 8 through f1 lit
    dot.render("unraveled", format="png")
    plot_lengths(PathGraph.chain(54).length_distribution(), "lengths.png")

Up to MAX_PATHS paths (T <= 6 blocks) every path is drawn as its own column, in its own colour:
a box f_t where it goes through block t, a straight line where it takes the skip. Beyond that the
drawing is aggregated: one node per path length, its width showing how many paths have it.
"""
from __future__ import annotations

import colorsys
from math import comb

import graphviz

from tinygrad_ds.graph.paths import PathGraph, central_range, fmt_count

MAX_PATHS = 64          # 2^6: more columns than this no longer read as separate paths
_FADED = "#ced4da"


def path_colours(n: int) -> list[str]:
    """n distinct colours, dark enough for a line and, lightened, for a box fill."""
    out = []
    for k in range(n):
        h = (k * 0.618034) % 1.0  # golden-ratio steps: neighbours differ strongly
        light = 0.42 if k % 2 else 0.50
        r, g, b = colorsys.hls_to_rgb(h, light, 0.75)
        out.append(f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}")
    return out


def _lighten(colour: str, t: float = 0.6) -> str:
    c = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (255 - x) * t):02x}" for x in c)


def _base(title: str, rankdir: str = "TB") -> graphviz.Digraph:
    return graphviz.Digraph("unraveled", graph_attr={
        "rankdir": rankdir, "fontname": "Helvetica", "fontsize": "14", "label": title,
        "labelloc": "t", "nodesep": "0.12", "ranksep": "0.28", "newrank": "true",
        "splines": "line"},
        node_attr={"fontname": "Helvetica", "fontsize": "11"},
        edge_attr={"arrowsize": "0.5", "penwidth": "2"})


def _dist_text(dist: dict[int, int]) -> str:
    return ", ".join(f"{dist[k]:,}" for k in sorted(dist))


def draw_unraveled(pg: PathGraph | int, highlight: str | int | None = None,
                   max_paths: int = MAX_PATHS) -> graphviz.Digraph:
    """The network's paths side by side (a graphviz Digraph). pg: a PathGraph or a number of
    blocks T (an abstract chain). highlight: a block ('f1', or a module path): the paths through
    it keep their colours, the others are greyed. More than `max_paths` paths: aggregated by
    length (see draw_aggregated).

    A residual block is a box f_t on the paths through its branch; a branch of a concatenation
    (or of a sum of parallel branches) is a box listing the layers on that branch, all the
    branches of one join in one row, in the order the join takes its inputs."""
    if isinstance(pg, int):
        pg = PathGraph.chain(pg)
    total = pg.count()
    if total > max_paths:
        return draw_aggregated(pg)
    hb = pg.block_index(highlight) if highlight is not None else None
    T = pg.num_blocks
    unit = "blocks" if T else "layers"  # without residual blocks, lengths in layers passed
    paths = _in_join_order(pg, pg.enumerate(limit=total, unit=unit).paths)
    dist = pg.length_distribution()
    joins = _join_kinds(pg)
    title = f"the network unraveled: {total} path{'s' * (total != 1)} from x to y, " \
        "each in its own colour"
    if T and total == 2 ** T:
        title = (f"{T} residual block{'s' * (T != 1)} unraveled: 2^{T} = {total} paths "
                 f"from x to y, each in its own colour")
        if len(dist) > 1:
            title += f"\npaths of length 0..{T} (blocks passed): {_dist_text(dist)}"
    if T:
        title += "\n(a box f_t: the path goes through block t; a straight line: it takes the skip)"
    title += "\n" + _what_y_is(pg, joins, total)
    if hb is not None:
        through = sum(1 for p in paths if hb in p.blocks)
        title += (f"\n{through} of the {total} paths go through {pg.short_name(hb)} (coloured);"
                  f" the other {total - through} skip it (grey)")
    if pg.legend():
        title += "\n" + "   ".join(pg.legend()[:8]) + ("   ..." if len(pg.legend()) > 8 else "")
    dot = _base(title)

    # rows: the choices paths make (a residual branch, or the branches of a join), in graph order
    rows: dict[int, str] = {}
    for p in paths:
        for k, row in _choices(pg, p):
            rows.setdefault(row, k)
    row_keys = sorted(rows)
    colours = path_colours(len(paths))
    dot.node("x", "x", shape="box", style="filled,rounded", fillcolor="#b2f2bb", fontsize="14",
             width="0.6")
    dot.node("y", "y", shape="box", style="filled,rounded", fillcolor="#b2f2bb", fontsize="14",
             width="0.6")
    rank_rows: dict[object, list[str]] = {"head": []}
    for r in row_keys:
        rank_rows[r] = []
    rank_rows["foot"] = []
    for c, p in enumerate(paths):
        lit = hb is None or hb in p.blocks
        col = colours[c] if lit else _FADED
        head = f"p{c}_h"
        grp = f"c{c}"  # one group per column: graphviz keeps its edges straight
        dot.node(head, f"path {c + 1}\nlength {p.length}" + ("" if T else " layers"),
                 shape="plaintext", fontsize="9", fontcolor=col if lit else "#adb5bd", group=grp)
        rank_rows["head"].append(head)
        dot.edge("x", head, color=col, penwidth="1.2", arrowhead="none")
        prev = head
        taken = {row: k for k, row in _choices(pg, p)}
        prev_row = -1
        for ri, r in enumerate(row_keys):
            if r not in taken:  # the skip: the line goes straight on past this row
                continue
            name = f"p{c}_r{r}"
            dot.node(name, taken[r], shape="box", style="filled,rounded",
                     fillcolor=_lighten(col, 0.55 if lit else 0.3), color=col,
                     penwidth="2" if lit else "1", fontcolor="black" if lit else "#868e96",
                     width="0.45", height="0.32", group=grp,
                     fontsize="11" if "\n" not in taken[r] else "9")
            # minlen: the edge spans the rows skipped, so every box sits in its block's row
            dot.edge(prev, name, color=col, arrowhead="none", penwidth="2.4" if lit else "1.2",
                     minlen=str(ri - prev_row))
            rank_rows[r].append(name)
            prev, prev_row = name, ri
        foot = f"p{c}_f"  # the column runs straight down to here, then into y
        dot.node(foot, "", shape="point", width="0.04", color=col, group=grp)
        dot.edge(prev, foot, color=col, arrowhead="none", penwidth="2.4" if lit else "1.2",
                 minlen=str(len(row_keys) - prev_row))
        rank_rows["foot"].append(foot)
        dot.edge(foot, "y", color=col, penwidth="2.4" if lit else "1.2")
    for r, names in rank_rows.items():
        if not names:
            continue
        with dot.subgraph() as s:
            s.attr(rank="same")
            for nm in names:
                s.node(nm)
    return dot


def _join_kinds(pg: PathGraph) -> dict[str, int]:
    """How many joins of each kind the paths meet: 'residual', 'concat', 'sum', 'other'."""
    from tinygrad_ds.graph.paths import CONCATS, SUMS, _norm

    out = {"residual": pg.num_blocks, "concat": 0, "sum": 0, "other": 0}
    for v in pg._join_nodes():
        n = pg.nodes[v]
        if n.kind == "add":
            continue
        op = _norm(n.op)
        out["concat" if op in CONCATS else "sum" if op in SUMS else "other"] += 1
    return out


def _what_y_is(pg: PathGraph, joins: dict[str, int], total: int) -> str:
    """The title's line on how the paths make y: a sum only where they meet at additions."""
    if total == 1:
        return "one path: every layer is on it"
    if joins["residual"] and not (joins["concat"] or joins["other"]):
        acts = {a for a in pg.after_add if a}
        line = "y = the sum of the paths' terms: each addition adds a branch's output to its skip"
        if acts and all(pg.after_add):
            line += (f",\nbut a {'/'.join(sorted(acts))} follows each addition, so the sum is "
                     "of terms passed through those nonlinearities (Veit et al.'s unraveled view)"
                     ", not of independent networks")
        return line
    if joins["concat"] and not (joins["residual"] or joins["sum"] or joins["other"]):
        return ("y is not a sum: at each concatenation the branches' outputs are stacked side by "
                "side (along channels),\nso each path carries its own channels")
    kinds = [f"{n} {k}" for k, n in joins.items() if n]
    return ("the paths meet at " + ", ".join(kinds) + " joins: at an addition they are summed, "
            "at a concatenation stacked side by side")


def _in_join_order(pg: PathGraph, paths: list) -> list:
    """Paths sorted so that the branches of each non-residual join come in the order the join
    takes its inputs (an Inception block's concatenation order); residual paths keep theirs."""
    pos: dict[int, int] = {}
    seen: dict[int, int] = {}
    for k, e in enumerate(pg.edges):
        pos[k] = seen.get(e.dst, 0)
        seen[e.dst] = pos[k] + 1
    joins = pg._join_nodes()

    def key(p):
        return tuple(pos[k] for k in p.edges
                     if pg.edges[k].block is None and pg.edges[k].dst in joins
                     and pg.nodes[pg.edges[k].dst].kind != "add")
    return sorted(paths, key=key)


def _choices(pg: PathGraph, p) -> list[tuple[str, int]]:
    """(label, row) of each choice path p makes: the blocks it passes (row: the branch's last
    node), the branch it takes into a non-residual join (row: the join; label: the branch's
    module and the layers on it, first to last)."""
    joins = pg._join_nodes()
    outdeg: dict[int, int] = {}
    for e in pg.edges:
        outdeg[e.src] = outdeg.get(e.src, 0) + 1
    out = []
    for i, k in enumerate(p.edges):
        e = pg.edges[k]
        if e.block is not None:
            out.append((pg.short_name(e.block), e.src))
        elif e.dst in joins and pg.nodes[e.dst].kind != "add":
            # the branch: back along the path to the node where it forked off
            layers = []
            j = i
            while j >= 0:
                src = pg.edges[p.edges[j]].src
                if outdeg.get(src, 0) > 1 or pg.nodes[src].kind == "input":
                    break
                layers.append(pg.nodes[src])
                j -= 1
            out.append((_branch_label(layers[::-1]), e.dst))
    return out


def _branch_label(layers: list) -> str:
    """'0.branch2\nConv2d\nBatchNorm2d\nReLU ...': the branch's module and its layers."""
    if not layers:
        return "(identity)"
    names = [n.label for n in layers]
    prefix = names[0].rsplit(".", 1)[0] if len(names) > 1 else names[0]
    while prefix and not all(n == prefix or n.startswith(prefix + ".") for n in names):
        prefix = prefix.rsplit(".", 1)[0] if "." in prefix else ""
    kinds = [n.op or n.label for n in layers]
    shown = kinds if len(kinds) <= 8 else kinds[:3] + [f"... ({len(kinds) - 6} more)"] + kinds[-3:]
    return "\n".join(([prefix] if prefix else []) + shown)


def draw_aggregated(pg: PathGraph | int, min_share: float = 0.01) -> graphviz.Digraph:
    """Too many paths to draw one by one: one node per path length, its border as thick as its
    share of the paths. Lengths holding less than `min_share` at either end are merged."""
    if isinstance(pg, int):
        pg = PathGraph.chain(pg)
    T = pg.num_blocks
    unit = "residual blocks" if T else "layers with parameters"
    dist = pg.length_distribution("blocks" if T else "layers")
    total = sum(dist.values())
    a, b = central_range(dist)
    title = (f"{pg.factorize()}:\ntoo many paths to draw one by one, so grouped by length "
             f"(length = {unit} a path goes through; 95% of paths have length {a} to {b})")
    dot = _base(title, "LR")
    dot.attr(splines="spline", ranksep="1.2")
    dot.node("x", "x", shape="box", style="filled,rounded", fillcolor="#b2f2bb", fontsize="14")
    joins = _join_kinds(pg)
    y = f"y = sum of\nall {fmt_count(total)} paths" if not (joins["concat"] or joins["other"]) \
        else f"y: all {fmt_count(total)} paths\n(they meet at\nconcatenations)"
    dot.node("y", y, shape="box", style="filled,rounded", fillcolor="#b2f2bb", fontsize="14")
    keys = sorted(dist)
    groups: list[list[int]] = []
    low = [k for k in keys if dist[k] / total < min_share and k < a]
    high = [k for k in keys if dist[k] / total < min_share and k > b]
    if low:
        groups.append(low)
    groups += [[k] for k in keys if k not in low and k not in high]
    if high:
        groups.append(high)
    colours = path_colours(len(groups))
    top = max(dist.values())
    biggest = max(sum(dist[k] for k in ks) for ks in groups)
    names = []
    for g, ks in enumerate(groups):
        n = sum(dist[k] for k in ks)
        what = f"length {ks[0]}" if len(ks) == 1 else f"lengths {ks[0]}-{ks[-1]}"
        extra = f" = C({T},{ks[0]})" if len(ks) == 1 and T and n == comb(T, ks[0]) else ""
        name = f"L{g}"
        names.append(name)
        dot.node(name, f"{what}: {n / total:.1%} of paths\n{n:,}{extra}", shape="box",
                 style="filled,rounded", fillcolor=_lighten(colours[g], 0.6), color=colours[g],
                 penwidth=f"{1 + 5 * max(dist[k] for k in ks) / top:.1f}", fontsize="10")
        width = f"{0.5 + 8 * n / biggest:.1f}"
        dot.edge("x", name, color=colours[g], penwidth=width, arrowhead="none", headport="w")
        dot.edge(name, "y", color=colours[g], penwidth=width, tailport="e")
    with dot.subgraph() as s:
        s.attr(rank="same")
        for nm in names:
            s.node(nm)
    return dot


def plot_lengths(dist: dict[int, int], path: str | None = None, title: str | None = None,
                 unit: str = "residual blocks passed"):
    """A bar chart of the share of paths by length (matplotlib Figure, Agg backend), with the
    95% range shaded; written to `path` (PNG, SVG, PDF by suffix) if given. unit: what a length
    counts, as the text output says it ('residual blocks passed' or 'layers passed')."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import MaxNLocator, PercentFormatter

    total = sum(dist.values())
    keys = sorted(dist)
    share = [dist[k] / total for k in keys]  # int / int: exact even for 2^100000 paths
    left_out = ""
    if len(keys) > 200:  # a long chain: the tails beyond 1e-6 of the paths are invisible anyway
        kept = [(k, s) for k, s in zip(keys, share) if s >= 1e-6]
        left_out = (f"lengths outside {kept[0][0]}..{kept[-1][0]}\nhold under 0.0001% of the "
                    "paths each:\nnot drawn")
        keys, share = [k for k, _ in kept], [s for _, s in kept]
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=110)
    a, b = central_range(dist)
    ax.axvspan(a - 0.5, b + 0.5, color="#e9ecef", zorder=0, label=f"95% of paths: {a} to {b}")
    if len(keys) > 200:  # thousands of bars: draw their outline
        ax.fill_between(keys, share, step="mid", color="#4c6ef5", zorder=2,
                        label="share of paths")
    else:
        ax.bar(keys, share, color="#4c6ef5", width=0.8, zorder=2, label="share of paths")
    ax.set_xlabel(f"path length ({unit})")
    ax.set_ylabel("share of all paths")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # a length counts: integer ticks
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylim(0, max(share) * 1.15)
    ax.set_title(title or f"{fmt_count(total)} paths by length", fontsize=11)
    if left_out:
        ax.text(0.01, 0.97, left_out, transform=ax.transAxes, va="top", fontsize=8,
                color="#495057")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=9, loc="upper right")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
    return fig
