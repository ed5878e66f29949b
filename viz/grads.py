"""Gradient norms of every value of a traced graph, from one real forward and backward pass on
random input: what `tds viz --grads` colours the drawing with, so that vanishing gradients in a
deep plain network show at a glance."""
from __future__ import annotations

import numpy as np

import tinygrad_ds as tds
from tinygrad_ds.graph import Graph


def gradient_norms(graph: Graph, seed: int = 0) -> dict[int, float]:
    """{forward node id: L2 norm of d(loss)/d(value)} for every op output, input and parameter.

    The graph is replayed (`graph.run`) on standard-normal input with the model's parameters; the
    loss is <output, r> for a fixed standard-normal r (a sum would give a softmax output zero
    gradient). The parameters' .grad and the random generator are left as they were."""
    if graph.kind != "forward":
        raise ValueError("gradient_norms: needs the forward graph")
    rng = np.random.default_rng(seed)
    xs = [tds.Tensor(rng.standard_normal(graph.nodes[i].shape).astype(graph.nodes[i].dtype),
                     requires_grad=True) for i in graph.inputs]
    params = [n.value for n in graph.nodes if n.kind == "param"]
    saved = [(p, p.grad) for p in params]
    try:
        for p in params:
            p.grad = None
        with tds.enable_grad():
            out, vals = graph.run(*xs, return_all=True)
            for n in graph.nodes:
                if n.kind == "op" and vals[n.id].requires_grad:
                    vals[n.id].retain_grad()
            outs = out if isinstance(out, tuple) else (out,)
            loss = None
            for o in outs:
                if o.requires_grad:
                    r = tds.Tensor(rng.standard_normal(o.shape).astype(o.dtype))
                    term = (o * r).sum()
                    loss = term if loss is None else loss + term
            if loss is None:
                return {}
            loss.backward()
        norms = {}
        for n in graph.nodes:
            t = vals.get(n.id)
            if t is not None and t.grad is not None:
                norms[n.id] = float(np.linalg.norm(np.asarray(t.grad.data, dtype=np.float64)))
        return norms
    finally:
        for p, g in saved:
            p.grad = g


def grad_table(graph: Graph, norms: dict[int, float]) -> str:
    """Per layer (each leaf-module call, in execution order): the norm of d loss / d its
    output and of d loss / d each of its parameters, from `gradient_norms(graph)`."""
    view = graph.module_graph()
    rows = []
    for n in view.nodes:
        if n.kind != "module":
            continue
        out = next((norms[m] for m in reversed(n.members)
                    if graph.nodes[m].shape == n.shape and m in norms), None)
        ps = []
        for p in n.params:
            src = view.nodes[p]
            pid = src.members[0] if src.members else p
            if pid in norms and graph.nodes[pid].kind == "param":
                ps.append(f"{graph.nodes[pid].name.rsplit('.', 1)[-1]} {norms[pid]:.2e}")
        rows.append((n.module, n.op, "" if out is None else f"{out:.2e}", ", ".join(ps)))
    if not rows:
        return ""
    w0 = max(len("layer"), *(len(r[0]) for r in rows))
    w1 = max(len("type"), *(len(r[1]) for r in rows))
    lines = ["Gradient norms, one forward and backward on random input (loss = sum(output * r)):",
             f"{'layer':<{w0}}  {'type':<{w1}}  {'|d loss/d output|':>17}  parameters"]
    lines += [f"{a:<{w0}}  {b:<{w1}}  {c:>17}  {d}" for a, b, c, d in rows]
    return "\n".join(lines)
