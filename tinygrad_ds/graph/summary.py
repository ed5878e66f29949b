"""graph.summary(): one row per module call (module, type, output shape, parameters,
multiply-adds), with totals, in the spirit of Keras's model.summary().

Multiply-adds count the multiplications of matrix products and convolutions (one multiply-add
each), as torchinfo and the papers' tables do; elementwise ops, pooling and norms count 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import fmt_shape
from .ir import Graph, Node


def multiply_adds(graph: Graph, n: Node) -> int:
    """Multiply-adds of one op node: matmul (..., n, k) @ (..., k, m) is n*k*m per batch entry;
    conv2d is (output elements) * (C/G * KH * KW); the conv gradients likewise."""
    if n.kind != "op":
        return 0
    size = int(np.prod(n.shape))
    shapes = [graph.nodes[i].shape for i in n.inputs]
    if n.op == "matmul":
        return size * int(shapes[0][-1])
    if n.op == "conv2d":
        w = shapes[1]
        return size * int(w[1] * w[2] * w[3])
    if n.op in ("conv_transpose2d", "conv2dbackwardweight"):
        g, w = shapes[0], shapes[1]
        if n.op == "conv_transpose2d":
            return int(np.prod(g)) * int(w[1] * w[2] * w[3])
        return int(np.prod(g)) * int(n.shape[1] * n.shape[2] * n.shape[3])
    return 0


@dataclass
class Row:
    module: str
    type: str
    output_shape: tuple
    params: int
    mult_adds: int
    ops: list[str] = field(default_factory=list)


@dataclass
class Summary:
    """rows: one per run of ops of one module call; totals in the attributes."""

    rows: list[Row]
    total_params: int
    trainable_params: int
    mult_adds: int
    num_ops: int
    input_shapes: list[tuple]
    output_shapes: list[tuple]
    mode: str

    def __str__(self) -> str:
        head = ("Module", "Type", "Output shape", "Params", "Mult-adds")
        body = [(r.module or "(top level)", r.type, fmt_shape(r.output_shape),
                 f"{r.params:,}" if r.params else "-", f"{r.mult_adds:,}" if r.mult_adds else "-")
                for r in self.rows]
        widths = [max(len(x[i]) for x in [head] + body) for i in range(5)]

        def line(cells):
            return "  ".join(c.rjust(w) if i >= 3 else c.ljust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        rule = "  ".join("-" * w for w in widths)
        out = [line(head), rule] + [line(b) for b in body] + [rule]
        out.append(f"Input: {', '.join(fmt_shape(s) for s in self.input_shapes)}   "
                   f"Output: {', '.join(fmt_shape(s) for s in self.output_shapes)}   "
                   f"({self.mode} mode, {self.num_ops} ops)")
        out.append(f"Total params: {self.total_params:,}   Trainable: {self.trainable_params:,}   "
                   f"Non-trainable: {self.total_params - self.trainable_params:,}")
        out.append(f"Multiply-adds: {self.mult_adds:,} ({_human(self.mult_adds)})")
        return "\n".join(out)

    def _repr_html_(self) -> str:
        import html

        return "<pre>" + html.escape(str(self)) + "</pre>"

    def to_dict(self) -> dict:
        return {"rows": [{"module": r.module, "type": r.type, "output_shape": list(r.output_shape),
                          "params": r.params, "mult_adds": r.mult_adds} for r in self.rows],
                "total_params": self.total_params, "trainable_params": self.trainable_params,
                "mult_adds": self.mult_adds, "num_ops": self.num_ops, "mode": self.mode}


def _human(n: int) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return str(n)


def _own_params(module) -> int:
    return sum(v.size for v in vars(module).values() if getattr(type(v), "is_parameter", False))


def summarize(graph: Graph) -> Summary:
    modules = {}
    if graph.model is not None:
        modules = {name: m for name, m in graph.model.named_modules()}
    rows: list[Row] = []
    counted: set[str] = set()
    last_call = None
    for n in graph.nodes:
        if n.kind != "op":
            continue
        call = n.scope[-1] if n.scope else None
        if call != last_call or not rows:
            c = graph.calls.get(call) if call is not None else None
            path = c.path if c else ""
            params = 0
            if path not in counted and path in modules:
                params = _own_params(modules[path])
                counted.add(path)
            rows.append(Row(path, c.type if c else "(function)", n.shape, params, 0))
            last_call = call
        row = rows[-1]
        row.output_shape = n.shape
        row.mult_adds += multiply_adds(graph, n)
        row.ops.append(n.op)
    if graph.model is not None:
        total = int(graph.model.num_parameters())
        trainable = int(graph.model.num_parameters(trainable_only=True))
    else:
        ps = [n for n in graph.nodes if n.kind == "param"]
        total = sum(int(np.prod(p.shape)) for p in ps)
        trainable = sum(int(np.prod(p.shape)) for p in ps if p.value.requires_grad)
    return Summary(rows, total, trainable, sum(r.mult_adds for r in rows),
                   len(graph.op_nodes()), [graph.nodes[i].shape for i in graph.inputs],
                   [graph.nodes[i].shape for i in graph.outputs], graph.mode)
