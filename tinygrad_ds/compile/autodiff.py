"""A compiled model's backward: `loss.backward()` after a compiled forward runs compiled code.

    y = compiled_model(x)        # the forward plan runs; the tape gets ONE node
    loss_fn(y).backward()        # that node's backward replays the backward plan

The backward pass of the traced forward graph is derived as a graph of its own
(`Graph.backward()`: the ops' gradient rules run on shape-only arrays). Its 'ref' nodes, the
forward values it reads (saved inputs, outputs, batch-norm statistics, dropout masks), become
inputs of a backward program, and extra outputs of the forward program: the forward plan returns
them, the tape node keeps them (`save_for_backward`, so that a parameter written in place before
the backward is an error, as in eager), and its backward hands them to the backward plan with
the output's gradient. The gradients come back per input and parameter, and the tape's own walk
adds them into `.grad` as for any op.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .. import autograd
from ..autograd import Context, Function
from ..errors import GradError, TdsError
from ..graph.ir import Graph
from ..tensor import Tensor


class Unsupported(TdsError):
    """The model's backward cannot be compiled (the reason is the message)."""


@dataclasses.dataclass
class Split:
    """A traced forward graph split into what the compiled forward and backward run."""

    forward: Graph          # the forward, with the values the backward reads as extra outputs
    backward: Graph         # a program: inputs (grad_output, saved values...), outputs: grads
    n_outputs: int          # the forward's own outputs (the rest are the saved values)
    saved: list[int]        # backward input k+1 is forward output n_outputs + saved[k]
    targets: list[tuple[str, int]]  # per backward output: ('input', k) or ('param', node id)


def split(graph: Graph, input_grads: tuple[bool, ...]) -> Split:
    """The forward-with-saved-values and the backward program of a traced forward graph.
    input_grads: which inputs need a gradient."""
    if len(graph.outputs) != 1:
        raise Unsupported(f"the model returns {len(graph.outputs)} tensors (one is compiled)")
    out = graph.nodes[graph.outputs[0]]
    if out.dtype.kind != "f":
        raise Unsupported(f"the model's output is {out.dtype}, not floating point")
    back = graph.backward()
    nodes = []
    refs: list[int] = []       # forward node ids, in the order of the forward's extra outputs
    saved: list[int] = []      # per ref-turned-input node: its position in refs
    inputs: list[int] = []
    for n in back.nodes:
        if n.kind == "opaque":
            raise Unsupported(f"backward node #{n.id} was made outside the ops")
        if n.kind == "ref":
            if n.ref not in refs:
                refs.append(n.ref)
            saved.append(refs.index(n.ref))
            n = dataclasses.replace(n, kind="input", op="input", value=None, source=None,
                                    name=f"saved:{n.name}")
            inputs.append(n.id)
        elif n.kind == "input":
            inputs.insert(0, n.id)  # the output's gradient comes first
        nodes.append(n)
    grad_inputs = [i for i in inputs if back.nodes[i].kind == "input"]
    if len(grad_inputs) != 1:
        raise Unsupported("the model's output needs no gradient")
    outputs, targets = [], []
    for gid in back.outputs:
        f = graph.nodes[back.grad_of[gid]]
        if f.kind == "input":
            k = graph.inputs.index(f.id)
            if not input_grads[k]:
                continue
            targets.append(("input", k))
        else:
            targets.append(("param", f.id))
        outputs.append(gid)
    program = Graph(nodes, inputs, outputs, back.calls, kind="program", mode=graph.mode,
                    model=graph.model)
    forward = Graph(graph.nodes, list(graph.inputs), list(graph.outputs) + refs, graph.calls,
                    kind="forward", mode=graph.mode, model=graph.model,
                    effects=list(graph.effects))
    return Split(forward.check(), program.check(), len(graph.outputs), saved, targets)


class CompiledModel(Function):
    """The tape node of a compiled model's forward; its backward replays the backward plan."""

    name = "compiled_model"

    @staticmethod
    def forward(ctx, *arrays):  # (the forward plan runs in Compiled.__call__)
        raise NotImplementedError("internal: a compiled model's node is recorded, not applied")

    @staticmethod
    def backward(ctx: Context, grad: Tensor):
        if autograd.is_grad_enabled():
            raise GradError("backward(create_graph=True) through a compiled model: its backward "
                            "is generated code, not ops on the tape; call the model itself "
                            "(uncompiled) for higher derivatives")
        run = ctx.run
        saved = [t.data for t in ctx.saved_tensors]  # (checks that none was written since)
        g = grad.data
        if g.dtype != run.grad_dtype:
            g = g.astype(run.grad_dtype)
        outs = run.plan.replay([g] + [saved[k] for k in run.split.saved])
        grads: list = [None] * len(ctx.inputs)
        for (what, k), o in zip(run.split.targets, outs):
            pos = k if what == "input" else run.param_pos[k]
            grads[pos] = Tensor._wrap(np.asarray(o))
        return tuple(grads)


@dataclasses.dataclass
class Run:
    """What a compiled model's tape node needs: the split, the backward plan, the parameters
    (forward node id -> position among the node's inputs)."""

    split: Split
    plan: object
    params: list            # the Parameter tensors, in the order of the node's inputs
    param_pos: dict[int, int]
    grad_dtype: np.dtype


def make_run(sp: Split, plan, graph: Graph, n_inputs: int) -> Run:
    params, pos = [], {}
    for what, nid in sp.targets:
        if what == "param" and nid not in pos:
            pos[nid] = n_inputs + len(params)
            params.append(graph.nodes[nid].source())
    out = graph.nodes[graph.outputs[0]]
    return Run(sp, plan, params, pos, np.dtype(out.dtype))


def record(run: Run, args: tuple, outs: list) -> Tensor:
    """The forward's output as a Tensor with one tape node over the inputs and parameters."""
    y = Tensor._wrap(outs[0])
    inputs = tuple(a if isinstance(a, Tensor) else Tensor._wrap(a) for a in args) + \
        tuple(run.params)
    if not any(t.requires_grad for t in inputs):
        return y
    ctx = Context(CompiledModel, inputs, {})
    ctx.run = run
    ctx.save_for_backward(*outs[run.split.n_outputs:])
    y.requires_grad = True
    y._node = ctx
    ctx.output = _weak(y)
    return y


def _weak(t):
    import weakref

    return weakref.ref(t)
