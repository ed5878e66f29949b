"""derive_backward(): the backward pass of a traced forward Graph, as a Graph of its own.

Each op's backward is written with Tensor ops, so walking the traced tape with the tape's own walk
(`autograd.walk`, the one `backward()` runs) on shape-only gradients, with a recorder on
`autograd.op_hooks`, records the backward pass op by op. Every backward op is attributed to the
forward node whose gradient rule made it (`ref`, and that node's module and scope), so the
backward graph can be collapsed by module and drawn like the forward one. Forward values the
backward reads (saved inputs, outputs and 'aux' values) become 'ref' nodes.
"""
from __future__ import annotations

from .. import autograd
from ..backend.meta import MetaArray
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
        for n in forward.nodes:  # the values ops saved for their backward
            if n.kind == "aux":
                ctx = forward._tape.get(n.inputs[0])
                if ctx is not None and not ctx.freed:
                    self.fwd_by_data[id(ctx.saved[n.attrs["index"]])] = n.id
        self.node_of_ctx = {id(ctx): nid for nid, ctx in forward._tape.items()}
        self.current: Node | None = None
        self.skip_grads: dict[int, int] = {}  # id(grad tensor) -> residual add it skipped past

    def new_value(self, t) -> int:
        ref = self.fwd_by_tensor.get(id(t), self.fwd_by_data.get(id(t.data)))
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
            nid = self.op(ctx, out)
        else:
            nid = self.op(ctx, out, scope=cur.scope, module=cur.module, ref=cur.id)
        if ctx.op.name == "add":  # the sum of a gradient that took a residual add's skip
            a, b = ctx.inputs
            via = self.skip_grads.get(id(a), self.skip_grads.get(id(b)))
            if via is not None:
                skipped, other = (a, b) if id(a) in self.skip_grads else (b, a)
                self.nodes[nid].residual = {"skip": self.lookup(skipped),
                                            "branch": self.lookup(other),
                                            "block": self.forward.nodes[via].residual["block"]}

    def on_output(self, ctx, g) -> None:
        self.current = self.forward.nodes[self.node_of_ctx[id(ctx)]]

    def on_input_grad(self, ctx, k: int, g) -> None:
        node = self.current
        if node is not None and node.residual and node.inputs[k] == node.residual["skip"]:
            self.skip_grads[id(g)] = node.id


def derive_backward(forward: Graph) -> Graph:
    rec = _BackwardRecorder(forward)
    by_tensor = {id(t): nid for nid, t in forward._tensors.items()}
    grads: dict[int, Tensor] = {}

    def on_leaf(t, g) -> None:
        nid = by_tensor.get(id(t))
        if nid is None or forward.nodes[nid].kind not in ("param", "input"):
            return
        grads[nid] = grads[nid] + g if nid in grads else g

    autograd.op_hooks.append(rec.hook)
    try:
        for k, oid in enumerate(forward.outputs):
            o, t = forward.nodes[oid], forward._tensors.get(oid)
            if o.dtype.kind != "f" or t is None or not t.requires_grad:
                continue
            g = Tensor._wrap(MetaArray(o.shape, o.dtype))
            rec.add(Node(len(rec.nodes), "input", "input", o.shape, o.dtype,
                         name="grad_output" if k == 0 else f"grad_output{k}", ref=oid), g)
            autograd.walk(t, g, True, False, on_leaf, rec.on_output, rec.on_input_grad)
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
