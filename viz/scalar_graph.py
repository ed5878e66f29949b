"""Draw a scalar-engine graph (tinygrad_ds.scalar.Value) with graphviz, micrograd style.

Each Value is a record `label | data | grad`; the op that made it is a small circle in front of
it, with an arrow from each input. `backward_frames` gives one drawing per step of `backward()`,
the node being processed highlighted, its inputs' `.grad` shown as each term is added, to show
the order in which the tape is walked and how a value used twice sums its two gradients.

Only the graph record (`Value.graph()`) and `Value.backward_order()` / `backward()` are used.
"""
from __future__ import annotations

from pathlib import Path

import graphviz

from tinygrad_ds.scalar import ScalarGraph, Value

# Colours: the node being processed, the nodes already processed (their grad is final), the rest.
ACTIVE = "#f4a261"
DONE = "#a8dadc"
TODO = "white"


def _esc(text: str) -> str:
    """Escape the characters that mean something inside a graphviz record label."""
    for ch in "\\{}|<>\"":
        text = text.replace(ch, "\\" + ch)
    return text


def _num(x: float) -> str:
    return f"{x:.4f}" if 1e-3 <= abs(x) < 1e4 or x == 0 else f"{x:.3e}"


def draw_scalar_graph(root: Value | ScalarGraph, rankdir: str = "LR", *,
                      show_local_grads: bool = False, active: int | None = None,
                      done: set[int] | None = None, title: str = "") -> graphviz.Digraph:
    """A graphviz.Digraph of the graph that made `root` (a Value, or its `graph()` record).

    Value nodes are records `label | data | grad`, named `v<id>`; each op is a circle named
    `v<id>_op` with an edge from every operand (two from x for x * x) and one into its output.
    show_local_grads: label each input edge with d(out)/d(in). active: id of a node to
    highlight (orange); done: ids of nodes to shade (blue). Render with `.render()` or look at
    `.source` without the `dot` program.
    """
    g = root.graph() if isinstance(root, Value) else root
    done = done or set()
    dot = graphviz.Digraph("scalar_graph", graph_attr={"rankdir": rankdir, "label": title,
                                                       "labelloc": "t", "fontname": "Helvetica"},
                           node_attr={"fontname": "Helvetica", "fontsize": "11"},
                           edge_attr={"fontname": "Helvetica", "fontsize": "9"})
    for n in g.nodes:
        name = _esc(n.label) if n.label else f"#{n.id}"
        record = f"{{ {name} | data {_num(n.data)} | grad {_num(n.grad)} }}"
        fill = ACTIVE if n.id == active else DONE if n.id in done else TODO
        dot.node(f"v{n.id}", record, shape="record", style="filled", fillcolor=fill,
                 penwidth="2.5" if n.id == active else "1")
        if n.op:
            dot.node(f"v{n.id}_op", _esc(n.op), shape="circle", width="0.3", fixedsize="false",
                     margin="0.02", fontsize="10")
            dot.edge(f"v{n.id}_op", f"v{n.id}")
    for e in g.edges:
        extra = {"label": _num(e.local_grad)} if show_local_grads else {}
        dot.edge(f"v{e.src}", f"v{e.dst}_op", **extra)
    return dot


def backward_frames(root: Value, rankdir: str = "LR", *,
                    show_local_grads: bool = True) -> list[graphviz.Digraph]:
    """One drawing per step of `root.backward()`: step k highlights the k-th node of
    `root.backward_order()` just after it has passed its gradient to its inputs. Every node
    shows its `.grad` as summed so far, and the title says what was added where
    ('a.grad += 1.0000 x -3.0000: 0.0000 + -3.0000 = -3.0000').

    This runs a real backward pass: it first calls `root.zero_grad()`, so afterwards every node
    holds the gradients of one backward, whatever it held before.
    """
    order = root.backward_order()
    frames: list[graphviz.Digraph] = []
    processed: set[int] = set()

    def name(v: Value) -> str:
        return v.label or f"#{v.id}"

    def snapshot(step: int, node: Value) -> None:
        processed.add(node.id)
        g = node.grad  # zero_grad() came first, and every consumer of node came before it
        head = f"backward step {step + 1} of {len(order)}: {name(node)}"
        if not node.op:
            title = head + f" (an input): its grad is complete, {_num(g)}"
        else:
            lines = [head + f" ({node.op}), grad {_num(g)}, passes it to its inputs:"]
            after: dict[int, float] = {}
            terms = [(c, g * local, local) for c, local in zip(node.children, node.local_grads)]
            for c, _, _ in terms:
                after[c.id] = c.grad
            for c, term, local in reversed(terms):  # undo, to show each sum in order
                after[c.id] -= term
            for c, term, local in terms:
                before = after[c.id]
                after[c.id] = before + term
                lines.append(f"{name(c)}.grad += {_num(g)} x {_num(local)}:  {_num(before)} + "
                             f"{_num(term)} = {_num(after[c.id])}")
            title = "\n".join(lines)
        frames.append(draw_scalar_graph(root.graph(), rankdir, show_local_grads=show_local_grads,
                                        active=node.id, done=set(processed), title=title))

    root.zero_grad()
    root.backward(on_step=snapshot)
    return frames


def write_backward_frames(root: Value, out_dir: str | Path, fmt: str = "png",
                          prefix: str = "step", rankdir: str = "LR") -> list[Path]:
    """Render `backward_frames(root)` to out_dir/step_001.png, step_002.png, ... (needs the
    `dot` program from Graphviz). Returns the files written, in order."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frames = backward_frames(root, rankdir)
    width = max(3, len(str(len(frames))))
    paths = []
    for i, frame in enumerate(frames, 1):
        stem = out / f"{prefix}_{i:0{width}d}"
        paths.append(Path(frame.render(filename=stem.name, directory=out, format=fmt,
                                       cleanup=True)))
    return paths


def write_scalar_graph(root: Value, path: str | Path, show_local_grads: bool = False,
                       rankdir: str = "LR") -> Path:
    """Render `draw_scalar_graph(root)` to path; the format comes from its suffix (.png, .svg,
    .pdf). Needs the `dot` program."""
    path = Path(path)
    fmt = path.suffix.lstrip(".") or "png"
    dot = draw_scalar_graph(root, rankdir, show_local_grads=show_local_grads)
    return Path(dot.render(filename=path.stem, directory=path.parent or ".", format=fmt,
                           cleanup=True))


__all__ = ["draw_scalar_graph", "backward_frames", "write_backward_frames", "write_scalar_graph"]
