"""Where the gradient flows: its magnitude through paths of each length (Veit et al. 2016, Fig. 6).

A path of length k goes through k residual branches and takes the skip at the others. To measure
the gradient along it, the network runs forward as usual (every value is the ordinary one), but
the backward pass may only go through the chosen side of each residual add: at a block the path
passes, the skip input is cut from the tape (detached), at a block it skips, the branch is.

    from viz.path_grad import gradient_by_length, path_gradient
    g = path_gradient(model, x, through={0, 2})         # the path x -> f1 -> f3 -> y
    table = gradient_by_length(model, x, samples=20)   # mean |grad| per path length
    print(table); table.plot("grad_by_length.png")

The gradient is that of sum(output * v) with v a fixed random direction (seeded), with respect
to the input (or to the input of block `at`). Summed over all 2^T paths, the path gradients give
the ordinary gradient exactly: the expansion of viz.decomposition, measured.
"""
from __future__ import annotations

import random as _random
from dataclasses import dataclass, field
from itertools import combinations
from math import comb

import numpy as np

from tinygrad_ds import autograd
from tinygrad_ds.errors import TdsError
from tinygrad_ds.graph import Graph, trace
from tinygrad_ds.tensor import Tensor


def _graph_of(model, x: Tensor) -> Graph:
    if isinstance(model, Graph):
        return model
    return trace(model, x)


def _projection(shape, dtype, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def path_gradient(model, x, through, at: str | int | None = None, v: np.ndarray | None = None,
                  seed: int = 0, graph: Graph | None = None) -> np.ndarray:
    """The gradient of sum(model(x) * v) with respect to x (or to the input of block `at`, a
    residual block's index from 0 or its module path) along the paths that go through the
    residual branches in `through` (block indices, in execution order from 0) and take the
    skip at every other block; through=None: every path (the ordinary gradient). Model
    parameters are read as they are now; the model runs in eval mode (the mode it was traced
    in)."""
    x = x if isinstance(x, Tensor) else Tensor(np.asarray(x))
    graph = graph or _graph_of(model, x)
    adds = graph.residual_adds()
    chosen = set(range(len(adds)) if through is None else through)
    if any(not 0 <= b < len(adds) for b in chosen):
        raise TdsError(f"path_gradient: blocks are numbered 0..{len(adds) - 1}, got "
                       f"{sorted(chosen)}")
    at_node, _ = _at(graph, at)
    cut: dict[int, int] = {}  # residual add id -> the input whose gradient is cut
    for b, n in enumerate(adds):
        if through is not None:
            cut[n.id] = n.residual["skip"] if b in chosen else n.residual["branch"]

    leaf = Tensor(np.array(x.data, copy=True), dtype=x.dtype, requires_grad=True)
    vals: dict[int, Tensor] = {}
    wrt = leaf
    with autograd.enable_grad():
        for n in graph.nodes:
            if n.id in graph.inputs:
                vals[n.id] = leaf
            elif n.kind in ("param", "buffer"):
                vals[n.id] = n.value
            elif n.kind == "const":
                vals[n.id] = Tensor._wrap(n.value)
            elif n.kind == "op":
                args = [vals[i].detach() if cut.get(n.id) == i else vals[i] for i in n.inputs]
                vals[n.id] = n.fn.apply(*args, **n.attrs)
            else:
                raise TdsError(f"path_gradient: node {n.id} ({n.kind}) cannot be replayed")
            if n.id == at_node:  # measure here: a fresh leaf holding the same value
                wrt = Tensor(np.array(vals[n.id].data, copy=True), dtype=vals[n.id].dtype,
                             requires_grad=True)
                vals[n.id] = wrt
        out = vals[graph.outputs[0]]
        vv = v if v is not None else _projection(out.shape, out.dtype, seed)
        score = (out * Tensor(np.asarray(vv, dtype=out.dtype), dtype=out.dtype)).sum()
        (g,) = autograd.grad(score, [wrt], allow_unused=True)
    return np.zeros(wrt.shape, wrt.dtype) if g is None else np.asarray(g.data)


def _at(graph: Graph, at) -> tuple[int | None, int]:
    """(node id where the gradient is measured, index of the first block after it)."""
    if at is None:
        return None, 0
    adds = graph.residual_adds()
    names = [n.residual["block"] for n in adds]
    if isinstance(at, int) or str(at).isdigit():
        b = int(at)
    elif at in names:
        b = names.index(at)
    else:
        hits = [k for k, nm in enumerate(names) if nm.startswith(f"{at}.")]
        if len(hits) != 1:
            raise TdsError(f"no residual block {at!r}: give its index (0..{len(adds) - 1}) or "
                           f"module path ({', '.join(names[:3])}, ...)")
        b = hits[0]
    if not 0 <= b < len(adds):
        raise TdsError(f"block {at}: this network has blocks 0..{len(adds) - 1}")
    # the block's input: the skip input of its add when that is an identity shortcut, else
    # the value both sides read (the last node both the branch and the skip descend from)
    return _block_input(graph, adds[b]), b


def _block_input(graph: Graph, add) -> int:
    def ancestors(i: int) -> set[int]:
        seen, todo = set(), [i]
        while todo:
            k = todo.pop()
            if k not in seen:
                seen.add(k)
                todo.extend(graph.nodes[k].inputs)
        return seen

    common = ancestors(add.residual["skip"]) & ancestors(add.residual["branch"])
    common = [k for k in common if graph.nodes[k].kind in ("op", "input")]
    if not common:
        raise TdsError(f"block {add.residual['block']}: its two inputs share no value")
    return max(common)


@dataclass
class GradRow:
    length: int
    paths: int          # paths of this length (C(T, k))
    sampled: int        # paths measured
    exact: bool         # every path of this length measured
    mean: float         # mean |grad| over the paths measured
    std: float

    @property
    def total(self) -> float:
        """paths x mean: the gradient all paths of this length carry together (Fig. 6c)."""
        return self.paths * self.mean


@dataclass
class GradByLength:
    rows: list[GradRow]
    blocks: int
    full_norm: float    # |grad| of the ordinary gradient (all paths together)
    note: str = ""
    norms: dict[tuple[int, ...], float] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"{'length':>6}  {'paths':>14}  {'measured':>8}  {'mean |grad|':>12}  "
                 f"{'std':>10}  {'paths x mean':>13}"]
        for r in self.rows:
            lines.append(f"{r.length:>6}  {r.paths:>14,}  {r.sampled:>8}{'*' if r.exact else ' '}"
                         f" {r.mean:>12.4g}  {r.std:>10.3g}  {r.total:>13.4g}")
        lines.append(f"(* every path of that length measured) |grad| through all paths "
                     f"together: {self.full_norm:.4g}")
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)

    def plot(self, path: str | None = None):
        """Veit et al. Fig. 6: mean |grad| of a path by its length, and paths x mean."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ks = [r.length for r in self.rows]
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
        a1.errorbar(ks, [r.mean for r in self.rows], yerr=[r.std for r in self.rows],
                    marker="o", color="#4c6ef5", capsize=3)
        a1.set_yscale("log")
        a1.set_xlabel("path length (residual blocks passed)")
        a1.set_ylabel("|gradient| along one path")
        a1.set_title("gradient magnitude of a path, by its length", fontsize=10)
        a2.bar(ks, [r.total for r in self.rows], color="#f76707")
        a2.set_xlabel("path length")
        a2.set_ylabel("paths x mean |gradient|")
        a2.set_title("gradient carried by all paths of each length", fontsize=10)
        for a in (a1, a2):
            a.grid(True, alpha=0.3)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path)
        return fig


def gradient_by_length(model, x, samples: int = 20, at: str | int | None = None,
                       seed: int = 0, lengths=None) -> GradByLength:
    """|grad| of sum(model(x) * v) along paths of each length, for the residual blocks after
    `at` (all of them by default). For each length k, `samples` paths (sets of k blocks) are
    drawn at random; where C(T, k) <= samples every path is measured, so the mean is exact."""
    x = x if isinstance(x, Tensor) else Tensor(np.asarray(x))
    graph = _graph_of(model, x)
    adds = graph.residual_adds()
    if not adds:
        raise TdsError("gradient_by_length: the network has no residual blocks, so it has one "
                       "path and nothing to split the gradient by")
    _, first = _at(graph, at)
    later = list(range(first, len(adds)))
    T = len(later)
    rng = _random.Random(seed)
    rows, norms = [], {}
    full = _full_gradient(graph, x, at, seed)
    for k in (range(T + 1) if lengths is None else lengths):
        n = comb(T, k)
        if n <= samples:
            subsets = [tuple(c) for c in combinations(later, k)]
        else:
            subsets = [tuple(sorted(rng.sample(later, k))) for _ in range(samples)]
        vals = []
        for s in subsets:
            g = path_gradient(None, x, s, at=at, seed=seed, graph=graph)
            norms[s] = float(np.linalg.norm(g))
            vals.append(norms[s])
        rows.append(GradRow(k, n, len(subsets), n <= samples, float(np.mean(vals)),
                            float(np.std(vals))))
    note = "" if at is None else f"measured at the input of block {adds[first].residual['block']}"
    return GradByLength(rows, T, full, note, norms)


def _full_gradient(graph: Graph, x: Tensor, at, seed: int) -> float:
    """|grad| with every path open (nothing cut)."""
    return float(np.linalg.norm(path_gradient(None, x, None, at=at, seed=seed, graph=graph)))
