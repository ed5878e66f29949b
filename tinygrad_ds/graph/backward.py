"""derive_backward(): the backward pass of a traced forward Graph, as a Graph of its own.

Each op's backward is written with Tensor ops, so running the recorded nodes' gradient rules on
shape-only arrays, newest first (the walk `autograd.backward` does), with a recorder on
`autograd.op_hooks`, records the backward pass op by op. Every backward op is attributed to the
forward node whose gradient rule made it (`ref`, and that node's module and scope), so the
backward graph can be collapsed by module and drawn like the forward one.
"""
from __future__ import annotations

from .. import autograd
from ..meta import MetaArray
from ..tensor import Tensor
from .ir import Graph, Node
from .trace import Recorder


class _BackwardRecorder(Recorder):
    def __init__(self, forward: Graph):
        super().__init__()
        self.forward = forward
        self.calls = forward.calls
        self.fwd_by_tensor = {id(t): nid for nid, t in forward._tensors.items()}
        self.fwd_by_data = {id(t.data): nid for nid, t in forward._tensors.items()}
        self.current: Node | None = None

    def new_value(self, t) -> int:
        ref = self.fwd_by_tensor.get(id(t), self.fwd_by_data.get(id(t.data)))
        if ref is None and isinstance(t.data, MetaArray) and self.current is not None:
            ref = self.current.id  # a value the forward op saved for its backward
        if ref is None:
            return super().new_value(t)
        f = self.forward.nodes[ref]
        nid = len(self.nodes)
        name = f.name or (f"{f.module}:{f.op}" if f.module else f.op)
        node = Node(nid, "ref", f.op, tuple(t.shape), t.dtype, module=f.module, scope=f.scope,
                    name=name, ref=ref, value=f.value if f.kind in ("param", "buffer") else None)
        return self.add(node, t)

    def hook(self, ctx, out) -> None:
        cur = self.current
        if cur is None:
            self.op(ctx, out)
        else:
            self.op(ctx, out, scope=cur.scope, module=cur.module, ref=cur.id)


def derive_backward(forward: Graph) -> Graph:
    rec = _BackwardRecorder(forward)
    pending: dict[int, Tensor] = {}
    skip_grads: dict[int, int] = {}  # id(grad tensor) -> residual add node it passed through
    for k, oid in enumerate(forward.outputs):
        o = forward.nodes[oid]
        if o.dtype.kind != "f":
            continue
        g = Tensor._wrap(MetaArray(o.shape, o.dtype))
        rec.add(Node(len(rec.nodes), "input", "input", o.shape, o.dtype,
                     name="grad_output" if k == 0 else f"grad_output{k}", ref=oid), g)
        pending[oid] = g

    grads: dict[int, Tensor] = {}
    autograd.op_hooks.append(rec.hook)
    try:
        with autograd.no_grad():
            for node in reversed(forward.nodes):
                g = pending.pop(node.id, None)
                if g is None:
                    continue
                if node.kind in ("param", "input"):
                    grads[node.id] = g
                    continue
                ctx = forward._tape.get(node.id)
                if ctx is None or ctx.freed or not ctx.op.differentiable:
                    continue
                rec.current = node
                in_grads = ctx.op.backward(ctx, g)
                if not isinstance(in_grads, tuple):
                    in_grads = (in_grads,)
                for src, t, ig in zip(node.inputs, ctx.inputs, in_grads):
                    if ig is None or not t.requires_grad:
                        continue
                    if ig.dtype != t.dtype:
                        ig = ig.astype(t.dtype)
                    if node.residual and src == node.residual["skip"]:
                        skip_grads[id(ig)] = node.id
                    if src in pending:
                        a = pending[src]
                        total = a + ig
                        via = skip_grads.get(id(ig), skip_grads.get(id(a)))
                        if via is not None:
                            skipped = ig if id(ig) in skip_grads else a
                            other = a if skipped is ig else ig
                            added = rec.nodes[rec.lookup(total)]
                            added.residual = {"skip": rec.lookup(skipped),
                                              "branch": rec.lookup(other),
                                              "block": forward.nodes[via].residual["block"]}
                        pending[src] = total
                    else:
                        pending[src] = ig
    finally:
        autograd.op_hooks.remove(rec.hook)
        rec.current = None

    outputs = []
    for nid, g in grads.items():
        gid = rec.value(g)
        rec.nodes[gid].name = rec.nodes[gid].name or f"grad:{forward.nodes[nid].name}"
        outputs.append(gid)
    graph = Graph(rec.nodes, [n.id for n in rec.nodes if n.kind == "input"], outputs,
                  forward.calls, kind="backward", mode=forward.mode, model=forward.model,
                  forward=forward)
    graph.grad_of = {gid: nid for gid, nid in zip(outputs, grads)}
    graph._tensors = rec.tensors
    return graph
