"""trace(): run a model, or any function of tensors, on shape-only tensors and record every op.

    graph = tds.trace(model, (1, 3, 32, 32))     # a model's forward, in eval mode
    graph = tds.trace(step, x0, y0)              # a whole training step: forward, loss,
                                                 # backward, optimizer update
    graph.run(x, y)                              # the same effects as step(x, y)

The example inputs become Tensors holding MetaArrays (shape and dtype, no data), so every op runs
its usual forward code with its kernels on the 'meta' backend: no number is computed. An
`autograd.op_hooks` hook records each op, `autograd.state_hooks` the persistent state code reads
(an optimizer's buffers and learning rate, the random generator), and the module calls come from
`autograd.module_stack`, which the tracer replaces for the duration by a stack that also numbers
the calls.

Tracing changes nothing: writes into parameters, buffers and optimizer state are recorded but not
carried out (`autograd.writes_enabled`), and the training flags, the gradients, and the random
generator's state are put back afterwards.
"""
from __future__ import annotations

import inspect
import os
import sys
from typing import Any, Callable

import numpy as np

from .. import autograd, random
from ..backend import constant_kernels
from ..backend.meta import MetaArray, MetaValueError
from ..errors import TdsError
from ..tensor import Tensor
from .ir import Call, Graph, Node
from .residual import _mark_residual_generic, _mark_residual_module

DEFAULT_MAX_OPS = 1_000_000
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class TraceLimitError(TdsError):
    """Tracing recorded more ops than its limit (a forward that never ends)."""


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
    """Turns op-hook and state-hook calls into Nodes. Shared by tracing and backward derivation."""

    def __init__(self, model=None, max_ops: int = DEFAULT_MAX_OPS):
        self.nodes: list[Node] = []
        self.calls: dict[int, Call] = {}
        self.by_tensor: dict[int, int] = {}
        self.by_data: dict[int, int] = {}
        self.by_state: dict[str, int] = {}
        self.keep: list = []  # keeps every traced tensor and array alive, so ids are not reused
        self.tape: dict[int, Any] = {}
        self.tensors: dict[int, Any] = {}
        self.call_modules: dict[int, Any] = {}
        self.module_names: dict[int, str] = {}
        self.param_names: dict[int, str] = {}
        self.buffer_names: dict[int, str] = {}
        self.stack: _CallStack | None = None
        self.max_ops = max_ops
        self.n_ops = 0
        self._anon = 0
        self._roots = 0
        self.grads_seen: dict[int, tuple] = {}  # id(param) -> (param, its .grad when first seen)
        self.grad_owners: dict[int, Any] = {}  # id(a .grad from before the call) -> its param
        self.optimizer_names: dict[int, str] = {}  # id(optimizer) -> its state's name prefix
        if model is not None and hasattr(model, "named_modules"):
            self._name_module(model, "")

    def _name_module(self, module, prefix: str) -> None:
        self.module_names.update({id(m): prefix + name if name else prefix.rstrip(".")
                                  for name, m in module.named_modules()})
        for name, p in module.named_parameters():
            self.param_names.setdefault(id(p), prefix + name)
        for name, b in module.named_buffers():
            self.buffer_names.setdefault(id(b), prefix + name)

    # ---- module calls --------------------------------------------------------------------------
    def new_call(self, module, parent: int | None) -> int:
        cid = len(self.calls)
        if parent is None and id(module) not in self.module_names and \
                hasattr(module, "named_modules"):
            # a model called by a traced function: its parameters get state_dict names, the
            # second model's prefixed with its type
            self._roots += 1
            self._name_module(module, "" if self._roots == 1 and not self.param_names
                              else f"{type(module).__name__.lower()}{self._roots}.")
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

    def where(self) -> str:
        """The module running now ('layer2.0.conv1 (Conv2d)'), or 'the top level'."""
        scope = self.scope()
        if not scope:
            return "the top level"
        call = self.calls[scope[-1]]
        return _describe_module(call.path, call.type)

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
        """The node id of Tensor t, making a param/buffer/const node the first time."""
        nid = self.lookup(t)
        if nid is not None:
            return nid
        return self.new_value(t)

    def new_value(self, t) -> int:
        nid = len(self.nodes)
        data = t.data
        shape, dtype = tuple(data.shape), data.dtype
        if id(t) in self.param_names or getattr(type(t), "is_parameter", False):
            name = self.param_names.get(id(t), f"param{nid}")
            if id(t) not in self.grads_seen:
                self.grads_seen[id(t)] = (t, t.grad)
                if t.grad is not None:  # (kept alive by grads_seen)
                    self.grad_owners.setdefault(id(t.grad), t)
            node = Node(nid, "param", "param", shape, dtype, name=name, value=t,
                        source=_fixed(t))
        elif self._grad_owner(t) is not None:
            # a gradient left by an earlier step (accumulation, or zero_grad(set_to_none=False)):
            # state read when the graph runs, not the value it had when traced
            p = self._grad_owner(t)
            name = self.param_names.get(id(p), f"param{nid}") + ".grad"
            node = Node(nid, "state", "state", shape, dtype, name=name, value=t,
                        source=_grad_source(p))
        elif id(t) in self.buffer_names:
            node = Node(nid, "buffer", "buffer", shape, dtype, name=self.buffer_names[id(t)],
                        value=t, source=_fixed(t))
        elif isinstance(data, MetaArray):
            # a shape-only value no op made: its data cannot exist when the graph runs
            node = Node(nid, "opaque", "opaque", shape, dtype)
        else:
            node = Node(nid, "const", "const", shape, dtype, value=data)
        return self.add(node, t)

    def _grad_owner(self, t):
        return self.grad_owners.get(id(t))

    def state(self, t, name: str, source: Callable) -> None:
        """State hook: `t` is persistent state `name` (optimizer buffer, learning rate, rng)."""
        if id(t) in self.by_tensor:
            return
        owner = _state_owner(source)
        if owner is not None and name.startswith("optimizer."):
            # each optimizer its own names: 'optimizer.state.0.exp_avg' for the first one met,
            # 'optimizer2.state.0.exp_avg' for a second (a GAN's two optimizers)
            prefix = self.optimizer_names.get(id(owner))
            if prefix is None:
                k = len(self.optimizer_names)
                prefix = self.optimizer_names[id(owner)] = f"optimizer{k + 1 if k else ''}"
            name = prefix + name[len("optimizer"):]
        nid = self.by_state.get(name)
        if nid is not None:  # read again (a new Tensor object for the same state)
            self.by_tensor[id(t)] = nid
            self.keep.append(t)
            return
        data = t.data
        shape, dtype = (tuple(data.shape), data.dtype) if hasattr(data, "dtype") else \
            ((), np.dtype(object))
        nid = self.add(Node(len(self.nodes), "state", "state", shape, dtype, name=name, value=t,
                            source=source), t)
        self.by_state[name] = nid

    def op(self, ctx, out, **extra) -> int:
        self.n_ops += 1
        if self.n_ops > self.max_ops:
            raise TraceLimitError(
                f"trace: stopped after {self.max_ops:,} ops, in {self.where()}: does the forward "
                "ever end? (a loop that runs until a value converges cannot be traced by shape; "
                "raise the limit with max_ops= if the model is really that large)")
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
        self.add(node, out)
        if node.op == "assign":  # later reads of the target see the value written
            dst = ctx.inputs[0]
            self.by_tensor[id(dst)] = nid
        # values the op saved for its backward that are neither an input nor its output are
        # outputs of the op too: 'aux' nodes, so that the backward graph can name them
        ins = {id(t.data) for t in ctx.inputs}
        for k, v in enumerate(ctx.saved):
            if hasattr(v, "dtype") and hasattr(v, "shape") and id(v) not in ins \
                    and v is not out.data and id(v) not in self.by_data:
                aid = len(self.nodes)
                names = ctx.op.saved_names
                what = names[k] if k < len(names) else f"saved{k}"
                self.nodes.append(Node(aid, "aux", f"{node.op}.{what}", tuple(v.shape), v.dtype,
                                       inputs=(nid,), attrs={"index": k}, module=module,
                                       scope=scope, **{key: val for key, val in extra.items()
                                                       if key == "ref"}))
                self.by_data[id(v)] = aid
                self.keep.append(v)
        return nid


def _state_owner(source: Callable):
    """The optimizer a state source reads from (the object with param_groups that the source
    is bound to or closes over), or None."""
    candidates = [getattr(source, "__self__", None), getattr(source, "func", None)]
    for cell in getattr(source, "__closure__", None) or ():
        try:
            candidates.append(cell.cell_contents)
        except ValueError:  # an empty cell
            pass
    for c in candidates:
        c = getattr(c, "__self__", c)
        if hasattr(c, "param_groups"):
            return c
    return None


def _grad_source(p) -> Callable:
    """The source of parameter p's gradient: its .grad when the graph runs (zeros when None, so
    that adding to it gives what eager's first accumulation stores)."""
    def source():
        if p.grad is not None:
            return p.grad
        return Tensor._wrap(constant_kernels(p.data).full(p.shape, 0.0, p.dtype))
    return source


def _describe_module(path: str, type_name: str) -> str:
    return f"module {path} ({type_name})" if path else f"the model ({type_name})"


def _module_in(tb, rec: Recorder) -> str:
    """The innermost module whose forward a traceback passes through ('module layer1.0
    (BasicBlock)'), else where the recorder is now: by the time an error reaches trace() the
    module calls it went through have returned."""
    found = None
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if owner is not None and id(owner) in rec.module_names and \
                hasattr(owner, "named_modules"):
            found = _describe_module(rec.module_names[id(owner)], type(owner).__name__)
        tb = tb.tb_next
    return found or rec.where()


def _fixed(t) -> Callable:
    """The source of a parameter or buffer: the Tensor itself (its .data is read at run time)."""
    return lambda: t


class _Tracer(Recorder):
    def hook(self, ctx, out) -> None:
        nid = self.op(ctx, out)
        node = self.nodes[nid]
        if node.op == "add" and len(node.inputs) == 2 and node.scope:
            _mark_residual_module(self, node)


def _example_inputs(examples: tuple) -> list:
    """trace's example arguments -> list of (shape, dtype): a shape (1, 3, 32, 32), a Tensor or
    array, or a list of those."""
    out = []
    for example in examples:
        if isinstance(example, (tuple, list)) and example and all(
                isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in example):
            out.append((tuple(int(s) for s in example), np.dtype(np.float32)))
        elif isinstance(example, (Tensor, np.ndarray, MetaArray)):
            out.append((tuple(example.shape), np.dtype(example.dtype)))
        elif isinstance(example, (tuple, list)) and example:
            out.extend(_example_inputs(tuple(example)))
        else:
            raise TdsError(f"trace: an example input must be a shape such as (1, 3, 32, 32), a "
                           f"Tensor, or a list of those; got {example!r}")
    return out


def _flat_outputs(out) -> list:
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flat_outputs(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in _flat_outputs(o)]
    return []


def _owners(fn) -> list:
    """The models and optimizers a traced function can reach: itself, what it is bound to, its
    closure variables and the globals it names. Their gradients are put back after tracing."""
    found, seen = [], set()

    def visit(v):
        if id(v) in seen:
            return
        seen.add(id(v))
        if hasattr(v, "named_parameters") or hasattr(v, "param_groups"):
            found.append(v)

    visit(fn)
    visit(getattr(fn, "__self__", None))
    target = getattr(fn, "__func__", fn)
    if inspect.isfunction(target):
        try:
            cv = inspect.getclosurevars(target)
        except (TypeError, ValueError):
            cv = None
        if cv is not None:
            for v in list(cv.nonlocals.values()) + list(cv.globals.values()):
                visit(v)
    return found


class _Preserved:
    """Snapshot of what a traced call may change, put back on exit: the generator's state, the
    models' training flags and every gradient it can reach."""

    def __init__(self, fn, mode: str | None, recorder: Recorder):
        self.fn, self.mode, self.recorder = fn, mode, recorder

    def __enter__(self):
        self.rng = random.generator()
        self.rng_state = self.rng.bit_generator.state
        self.flags, self.grads = [], []
        for owner in _owners(self.fn):
            if hasattr(owner, "modules"):
                self.flags += [(m, m.training) for m in owner.modules()]
                self.grads += [(p, p.grad) for p in owner.parameters()]
            if hasattr(owner, "param_groups"):
                self.grads += [(p, p.grad) for g in owner.param_groups for p in g["params"]]
        if self.mode is not None and hasattr(self.fn, "train"):
            self.fn.train(self.mode == "train")
        self.writes = autograd.writes_enabled
        autograd.writes_enabled = False
        return self

    def __exit__(self, *exc):
        autograd.writes_enabled = self.writes
        random._rng = self.rng
        self.rng.bit_generator.state = self.rng_state
        for mod, flag in self.flags:
            object.__setattr__(mod, "training", flag)
        for p, g in list(self.recorder.grads_seen.values()) + self.grads[::-1]:
            p.grad = g


def _user_line(tb) -> str | None:
    """'model.py:12' for the innermost frame of a traceback outside tinygrad_ds (and numpy)."""
    found = None
    while tb is not None:
        path = os.path.abspath(tb.tb_frame.f_code.co_filename)
        if not path.startswith(_PACKAGE) and os.sep + "numpy" + os.sep not in path:
            found = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found


def trace(fn, *examples, mode: str | None = None, max_ops: int = DEFAULT_MAX_OPS) -> Graph:
    """Record the ops of `fn(*examples)` without computing anything, as a Graph.

    fn: an nn.Module (its forward is traced, in eval mode unless mode='train'), or any function
    of Tensors (a training step: forward, loss, backward and optimizer update; modules run in
    the mode they are in). examples: one per input of fn, each an input shape such as
    (1, 3, 32, 32) (float32) or an example Tensor (its shape and dtype are used, not its
    values); a list of those also stands for several inputs. max_ops: tracing stops with an
    error naming the module it was in after this many ops (a forward that never ends).
    """
    is_model = hasattr(fn, "named_modules")
    if mode is None and is_model:
        mode = "eval"
    if mode not in (None, "eval", "train"):
        raise TdsError(f"trace: mode must be 'eval' or 'train', got {mode!r}")
    rec = _Tracer(fn if is_model else None, max_ops=max_ops)
    inputs = []
    for k, (shape, dtype) in enumerate(_example_inputs(examples)):
        t = Tensor._wrap(MetaArray(shape, dtype))
        if is_model and dtype.kind == "f":
            t.requires_grad = True  # so that the tape is kept, and backward() reaches the input
        inputs.append(t)
        rec.add(Node(len(rec.nodes), "input", "input", shape, dtype,
                     name="input" if k == 0 else f"input{k}"), t)
    if not inputs:
        raise TdsError("trace: give an example input (a shape such as (1, 3, 32, 32), or a "
                       "Tensor) for each argument of the function")

    saved_stack = autograd.module_stack
    rec.stack = _CallStack(rec, list(saved_stack))
    autograd.module_stack = rec.stack
    autograd.op_hooks.append(rec.hook)
    autograd.state_hooks.append(rec.state)
    try:
        with _Preserved(fn, mode, rec) as kept, autograd.enable_grad():
            rec.grad_owners.update({id(g): p for p, g in kept.grads if g is not None})
            out = fn(*inputs)
            grads = {pid: p.grad for pid, (p, _) in rec.grads_seen.items()}
    except MetaValueError as e:
        tb = sys.exc_info()[2]
        line = _user_line(tb)
        where = f"{line}: " if line else ""
        raise MetaValueError(f"{where}in {_module_in(tb, rec)}: {e}") from None
    finally:
        autograd.op_hooks.remove(rec.hook)
        autograd.state_hooks.remove(rec.state)
        autograd.module_stack = saved_stack
    del kept
    outs = _flat_outputs(out)
    if not outs:
        raise TdsError(f"trace: the function returned {type(out).__name__}, not a Tensor (or a "
                       "tuple, list or dict of Tensors)")
    effects = []
    for n in rec.nodes:  # the gradients the call left in .grad: set again when the graph runs
        if n.kind == "param" and id(n.value) in grads:
            g = grads[id(n.value)]
            gid = rec.lookup(g) if g is not None else None
            if gid is not None and rec.nodes[gid].kind in ("op", "aux"):
                effects.append(("grad", n.id, gid))
    graph = Graph(rec.nodes, [n.id for n in rec.nodes if n.kind == "input"],
                  [rec.value(t) for t in outs], rec.calls, kind="forward" if is_model else
                  "program", mode=mode, model=fn if is_model else None, effects=effects)
    graph._tape, graph._tensors = rec.tape, rec.tensors
    graph._outputs = outs  # noqa: SLF001 - keeps the output tensors (and their tape) alive
    _mark_residual_generic(graph)
    return graph
