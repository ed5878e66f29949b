"""Counting the input-to-output paths of a traced graph (Veit et al. 2016: a stack of T residual
blocks has 2^T paths). Counted by dynamic programming over the nodes in execution order, with
exact Python ints, so 2^54 for ResNet-110 is exact.

Paths run through the graph with each leaf module (Conv2d, BatchNorm2d, ReLU, ...) as one node
(`level='module'`, the default): the branches inside a layer (batch norm's statistics, a GELU's
two uses of x) are not paths of the network. `level='op'` counts through every op.
"""
from __future__ import annotations

from tinygrad_ds.graph import Graph


def path_counts(graph: Graph) -> dict[int, int]:
    """node id -> number of paths from any graph input to that node (0 where none)."""
    inputs = set(graph.inputs)
    count: dict[int, int] = {}
    for n in graph.nodes:  # execution order is a topological order
        count[n.id] = 1 if n.id in inputs else sum(count[i] for i in n.inputs)
    return count


def count_paths(graph: Graph, level: str = "module") -> int:
    """The number of distinct input-to-output paths: 1 for a plain chain, 2^T for T stacked
    residual blocks. level: 'module' (leaf modules as single nodes) or 'op'."""
    if level not in ("module", "op"):
        raise ValueError(f"count_paths: level must be 'module' or 'op', got {level!r}")
    g = graph.module_graph() if level == "module" and graph.kind != "module" else graph
    count = path_counts(g)
    return sum(count[o] for o in g.outputs)
