"""trace(): run a model's ordinary forward on shape-only tensors and record every op as a Graph.

    graph = tds.trace(model, (1, 3, 32, 32))   # or an example Tensor
    print(graph.summary())

The input is a Tensor holding a MetaArray (shape and dtype, no data), so every op runs its usual
forward code and its kernels on the 'meta' backend: no number is computed. An `autograd.op_hooks`
hook records each op; the module calls come from `autograd.module_stack`, which the tracer
replaces for the duration by a stack that also numbers the calls.

Tracing never changes the model: it runs in eval mode unless mode='train' is asked for, and puts
back the training flags, the buffers (BatchNorm running statistics), the parameters' .grad and the
random generator's state afterwards.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import autograd, random
from ..errors import TdsError
from ..meta import MetaArray
from ..tensor import Tensor
from .ir import Call, Graph, Node


class _CallStack(list):
    """autograd.module_stack while tracing: a list of modules that also gives each push (each
    call of a module's forward) a call id."""

    def __init__(self, recorder: Recorder, initial: list):
        super().__init__(initial)
        self.recorder = recorder
        self.ids: list[int | None] = [None] * len(initial)

    def append(self, m) -> None:
        super().append(m)
        self.ids.append(self.recorder.new_call(m, self.ids[-1] if self.ids else None))

    def pop(self, i: int = -1):
        self.ids.pop(i)
        return super().pop(i)


class Recorder:
    """Turns op-hook calls into Nodes. Shared by forward tracing and backward derivation."""

    def __init__(self, model=None):
        self.nodes: list[Node] = []
        self.calls: dict[int, Call] = {}
        self.by_tensor: dict[int, int] = {}
        self.by_data: dict[int, int] = {}
        self.keep: list = []  # keeps every traced tensor alive, so that ids are not reused
        self.tape: dict[int, Any] = {}
        self.tensors: dict[int, Any] = {}
        self.call_modules: dict[int, Any] = {}
        self.module_names: dict[int, str] = {}
        self.param_names: dict[int, str] = {}
        self.buffer_names: dict[int, str] = {}
        self.stack: _CallStack | None = None
        self._anon = 0
        if model is not None and hasattr(model, "named_modules"):
            self.module_names = {id(m): name for name, m in model.named_modules()}
            self.param_names = {id(p): name for name, p in model.named_parameters()}
            self.buffer_names = {id(b): name for name, b in model.named_buffers()}

    # ---- module calls --------------------------------------------------------------------------
    def new_call(self, module, parent: int | None) -> int:
        cid = len(self.calls)
        path = self.module_names.get(id(module))
        if path is None:
            self._anon += 1
            path = f"{type(module).__name__.lower()}{self._anon}"
            self.module_names[id(module)] = path
        depth = 0 if parent is None else self.calls[parent].depth + 1
        leaf = not any(True for _ in module.named_children()) \
            if hasattr(module, "named_children") else True
        self.calls[cid] = Call(cid, path, type(module).__name__, parent, depth, leaf)
        self.call_modules[cid] = module
        return cid

    def scope(self) -> tuple[int, ...]:
        if self.stack is None:
            return ()
        return tuple(i for i in self.stack.ids if i is not None)

    # ---- values ----------------------------------------------------------------------------------
    def add(self, node: Node, tensor=None) -> int:
        self.nodes.append(node)
        if tensor is not None:
            self.by_tensor[id(tensor)] = node.id
            self.by_data[id(tensor.data)] = node.id
            self.keep.append(tensor)
            self.tensors[node.id] = tensor
        return node.id

    def lookup(self, t) -> int | None:
        nid = self.by_tensor.get(id(t))
        if nid is None:
            nid = self.by_data.get(id(t.data))
        return nid

    def value(self, t) -> int:
        """The node id of Tensor t, making a param/buffer/const/opaque node the first time."""
        nid = self.lookup(t)
        if nid is not None:
            return nid
        return self.new_value(t)

    def new_value(self, t) -> int:
        nid = len(self.nodes)
        data = t.data
        if id(t) in self.param_names or _is_parameter(t):
            name = self.param_names.get(id(t), f"param{nid}")
            node = Node(nid, "param", "param", tuple(data.shape), data.dtype, name=name, value=t)
        elif id(t) in self.buffer_names:
            node = Node(nid, "buffer", "buffer", tuple(data.shape), data.dtype,
                        name=self.buffer_names[id(t)], value=t)
        elif isinstance(data, MetaArray):
            node = Node(nid, "opaque", "opaque", tuple(data.shape), data.dtype)
        else:
            node = Node(nid, "const", "const", tuple(np.shape(data)), np.asarray(data).dtype,
                        value=data)
        return self.add(node, t)

    def op(self, ctx, out, **extra) -> int:
        inputs = tuple(self.value(t) for t in ctx.inputs)
        scope = extra.pop("scope", None)
        if scope is None:
            scope = self.scope()
        module = extra.pop("module", None)
        if module is None:
            module = self.calls[scope[-1]].path if scope else ""
        params = tuple(i for i in inputs if self.nodes[i].kind in ("param", "buffer"))
        nid = len(self.nodes)
        node = Node(nid, "op", ctx.op.name, tuple(out.shape), out.dtype, inputs=inputs,
                    attrs=dict(ctx.attrs), fn=ctx.op, module=module, scope=scope, params=params,
                    **extra)
        self.tape[nid] = ctx
        return self.add(node, out)


def _is_parameter(t) -> bool:
    from ..nn.module import Parameter

    return isinstance(t, Parameter)


class _ForwardTracer(Recorder):
    def hook(self, ctx, out) -> None:
        nid = self.op(ctx, out)
        node = self.nodes[nid]
        if node.op == "add" and len(node.inputs) == 2 and node.scope:
            _mark_residual_module(self, node)


def _mark_residual_module(rec: Recorder, node: Node) -> None:
    """The add in the forward of an nn.Residual (y = f(x) + shortcut(x)): the input made inside
    f is the residual branch, the other one the skip."""
    cid = node.scope[-1]
    module = rec.call_modules[cid]
    f = getattr(module, "f", None)
    if type(module).__name__ != "Residual" or f is None or not hasattr(module, "shortcut"):
        return
    a, b = node.inputs
    in_f = [_inside(rec, rec.nodes[i], cid, f) for i in (a, b)]
    if in_f[0] == in_f[1]:
        return
    branch, skip = (a, b) if in_f[0] else (b, a)
    node.residual = {"skip": skip, "branch": branch, "block": rec.calls[cid].path}


def _inside(rec: Recorder, n: Node, cid: int, child) -> bool:
    """Was n made inside a call of `child` made by call cid?"""
    if cid not in n.scope:
        return False
    k = n.scope.index(cid)
    return k + 1 < len(n.scope) and rec.call_modules[n.scope[k + 1]] is child


def _mark_residual_generic(graph: Graph) -> None:
    """Residual adds written by hand (`out = self.bn2(...) + x` in a block's forward): an add,
    in a block's own scope, of two same-shape values where one was made by a sub-module of
    the block and the other outside the block or by another sub-module. The skip is the input
    fewer ops away from the graph's input."""
    depth: dict[int, int] = {}
    for n in graph.nodes:
        depth[n.id] = 1 + max((depth[i] for i in n.inputs), default=-1) if n.kind == "op" else 0
    for n in graph.nodes:
        if n.kind != "op" or n.op != "add" or n.residual or len(n.inputs) != 2 or not n.scope:
            continue
        cid = n.scope[-1]
        a, b = (graph.nodes[i] for i in n.inputs)
        if a.kind != "op" or b.kind != "op" or not (a.shape == b.shape == n.shape):
            continue
        where = []
        for x in (a, b):
            if cid not in x.scope:
                where.append("outside")
            else:
                k = x.scope.index(cid)
                where.append(x.scope[k + 1] if k + 1 < len(x.scope) else "own")
        if "own" in where or where[0] == where[1] or where.count("outside") == 2:
            continue
        if "outside" in where:
            skip = (a, b)[where.index("outside")]
        else:
            skip = a if depth[a.id] < depth[b.id] else b
        branch = b if skip is a else a
        n.residual = {"skip": skip.id, "branch": branch.id, "block": graph.calls[cid].path}


def _example_inputs(example) -> list:
    """A shape (1, 3, 32, 32), a Tensor or array, or a list of those -> list of (shape, dtype)."""
    if isinstance(example, (tuple, list)) and example and all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in example):
        return [(tuple(int(s) for s in example), np.dtype(np.float32))]
    if isinstance(example, (Tensor, np.ndarray)):
        return [(tuple(example.shape), example.dtype)]
    if isinstance(example, (tuple, list)) and example:
        return [spec for e in example for spec in _example_inputs(e)]
    raise TdsError(f"trace: the example input must be a shape such as (1, 3, 32, 32), a Tensor, "
                   f"or a list of those; got {example!r}")


def _flat_outputs(out) -> list:
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flat_outputs(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in _flat_outputs(o)]
    return []


class _Preserved:
    """Snapshot of everything a forward may change in a model, put back on exit."""

    def __init__(self, model, mode: str):
        self.model, self.mode = model, mode

    def __enter__(self):
        m = self.model
        self.rng = random.generator().bit_generator.state
        self.flags = [(mod, mod.training) for mod in m.modules()] if hasattr(m, "modules") else []
        self.buffers = []
        self.grads = []
        if hasattr(m, "named_buffers"):
            for _, b in m.named_buffers():
                self.buffers.append((b, b.data, np.array(b.data, copy=True)))
            for p in m.parameters():
                self.grads.append((p, p.grad))
            m.train(self.mode == "train")
        return self

    def __exit__(self, *exc):
        random.generator().bit_generator.state = self.rng
        for mod, flag in self.flags:
            object.__setattr__(mod, "training", flag)
        for b, arr, saved in self.buffers:
            if arr.flags.writeable:
                np.copyto(arr, saved)
            b.data = arr
        for p, g in self.grads:
            p.grad = g


def trace(model, example, mode: str = "eval") -> Graph:
    """Record the ops of `model(example)` without computing anything.

    model: an nn.Module or any function of Tensors. example: an input shape such as
    (1, 3, 32, 32) (float32), an example Tensor (its shape and dtype are used, not its values),
    or a list of those for several inputs. mode: 'eval' (default) or 'train', the mode the model
    runs in while traced (it matters for dropout and batch norm); the model's own flags are
    restored afterwards.
    """
    if mode not in ("eval", "train"):
        raise TdsError(f"trace: mode must be 'eval' or 'train', got {mode!r}")
    rec = _ForwardTracer(model)
    inputs = []
    for k, (shape, dtype) in enumerate(_example_inputs(example)):
        t = Tensor._wrap(MetaArray(shape, dtype))
        if dtype.kind == "f":
            t.requires_grad = True  # so that the tape is kept, and backward() reaches the input
        name = "input" if k == 0 else f"input{k}"
        inputs.append(t)
        rec.add(Node(len(rec.nodes), "input", "input", shape, dtype, name=name), t)

    saved_stack = autograd.module_stack
    rec.stack = _CallStack(rec, list(saved_stack))
    autograd.module_stack = rec.stack
    autograd.op_hooks.append(rec.hook)
    try:
        with _Preserved(model, mode), autograd.enable_grad():
            out = model(*inputs)
    finally:
        autograd.op_hooks.remove(rec.hook)
        autograd.module_stack = saved_stack
    outs = _flat_outputs(out)
    if not outs:
        raise TdsError(f"trace: the model returned {type(out).__name__}, not a Tensor (or a "
                       "tuple, list or dict of Tensors)")
    graph = Graph(rec.nodes, [n.id for n in rec.nodes if n.kind == "input"],
                  [rec.value(t) for t in outs], rec.calls, mode=mode,
                  model=model if hasattr(model, "named_modules") else None)
    graph._tape, graph._tensors = rec.tape, rec.tensors
    graph._outputs = outs  # noqa: SLF001 - keeps the output tensors (and their tape) alive
    _mark_residual_generic(graph)
    return graph
