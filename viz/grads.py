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
