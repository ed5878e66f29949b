"""The tape: Function (an op = forward + backward), Context (one node of the tape), backward().

Every op is a `Function` subclass. `Function.apply` runs its `forward` on plain arrays and, when a
gradient is wanted, records one `Context` node: the op, its input Tensors, its attributes and what
`ctx.save_for_backward` kept. `backward()` walks those nodes newest-first with a loop (no
recursion), calling each op's `backward(ctx, grad)`, which is written with Tensor ops so that the
backward pass is itself a graph of ops.

This module never imports numba: kernels live behind `tinygrad_ds.backend`.
"""
from __future__ import annotations

import functools
import itertools
import re
import weakref
from typing import Any, Callable

import numpy as np

from .backend import backend_name
from .errors import GradError, ShapeError, fmt_shape

# tensor.py imports this module, so this one names the Tensor class only through `_Tensor`
Tensor = Any

_grad_enabled = True
_seq = itertools.count()
_Tensor: Any = None  # tinygrad_ds.tensor.Tensor, set by tensor.py (it imports this module)


def wrap(array) -> Tensor:
    """A Tensor around an array the library made (for ops, which sit below tensor.py)."""
    return _Tensor._wrap(array)


def is_tensor(x) -> bool:
    return isinstance(x, _Tensor)


# Called as hook(ctx, out) after every op; the graph tracer (tinygrad_ds.graph) registers here.
op_hooks: list[Callable[[Context, Tensor], None]] = []
# The modules whose forward is running, outermost first: nn.Module.__call__ pushes and pops, so
# an op hook can tell which module (layer2.0.conv1) produced each op.
module_stack: list = []
# False while a function is traced: writes into parameters, buffers and optimizer state
# (ops.state.Assign) are recorded but not carried out, so that tracing changes nothing.
writes_enabled = True
# Called as hook(tensor, name, source) when code reads persistent state that is not a module's
# parameter or buffer (an optimizer's buffers, its hyperparameters, the random generator):
# `source()` gives the Tensor to read when a traced graph runs again.
state_hooks: list[Callable[[Tensor, str, Callable], None]] = []


# How many times each array (by id) was written in place by an op: PyTorch's version counters.
# Only arrays written in place appear (parameters, buffers, optimizer state), so it stays small.
_versions: dict[int, int] = {}


def _memory(array) -> int:
    """The id of the array that owns `array`'s memory (views share their base's version)."""
    while getattr(array, "base", None) is not None and hasattr(array.base, "shape"):
        array = array.base
    return id(array)


def bump_version(array) -> None:
    """Note that `array` was written in place (ops.state.Assign calls this)."""
    key = _memory(array)
    _versions[key] = _versions.get(key, 0) + 1


def announce_state(t: Tensor, name: str, source: Callable) -> Tensor:
    """Tell a tracer (if one is listening) that `t` is persistent state called `name`."""
    for hook in state_hooks:
        hook(t, name, source)
    return t


def is_grad_enabled() -> bool:
    return _grad_enabled


class _GradMode:
    """Context manager and decorator that sets whether ops record the tape."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.prev: list[bool] = []

    def __enter__(self):
        global _grad_enabled
        self.prev.append(_grad_enabled)
        _grad_enabled = self.enabled

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self.prev.pop()

    def __call__(self, fn):
        import inspect

        if inspect.isgeneratorfunction(fn):
            # the mode must hold while the generator's body runs, which is at each next(), not
            # when the generator is made; the caller's mode is back between items (as PyTorch)
            @functools.wraps(fn)
            def gen_wrapper(*args, **kwargs):
                gen = fn(*args, **kwargs)
                sent, thrown = None, None
                while True:
                    with _GradMode(self.enabled):
                        try:
                            item = gen.throw(thrown) if thrown is not None else gen.send(sent)
                        except StopIteration as stop:
                            return stop.value
                    thrown = None
                    try:
                        sent = yield item
                    except GeneratorExit:
                        with _GradMode(self.enabled):
                            gen.close()
                        raise
                    except BaseException as e:  # noqa: BLE001 - passed on into the generator
                        thrown, sent = e, None

            return gen_wrapper

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with _GradMode(self.enabled):
                return fn(*args, **kwargs)

        return wrapper


def no_grad(fn: Callable | None = None):
    """`with tds.no_grad():` (or `@tds.no_grad()` / `@tds.no_grad`) runs ops without recording
    the tape."""
    return _GradMode(False) if fn is None else _GradMode(False)(fn)


def enable_grad() -> _GradMode:
    return _GradMode(True)


class Context:
    """One node of the tape: which op ran, on which Tensors, with which attributes, and what its
    backward needs (`save_for_backward`). Ops may also stash small facts (shapes) as attributes."""

    def __init__(self, op: type[Function], inputs: tuple, attrs: dict):
        self.op = op
        self.inputs = inputs
        self.attrs = attrs
        self.seq = next(_seq)
        self.saved: tuple = ()
        self.freed = False
        self.retain = None  # weakref to the output Tensor when it asked for .retain_grad()
        self.versions: tuple | None = None  # of the saved arrays (see bump_version)
        self.output = None  # weakref to the output Tensor while this node is on the tape

    def save_for_backward(self, *values: Any) -> None:
        """Keep arrays (or small Python values) for the backward pass; freed after backward.
        Each array's version is noted: one written in place before the backward (an optimizer
        step between two backwards) makes the backward raise instead of using the new values."""
        self.saved = values
        self.versions = tuple(_versions.get(_memory(v), 0) for v in values)

    @property
    def needs_input_grad(self) -> tuple[bool, ...]:
        """One flag per input: does the backward need to compute that input's gradient?"""
        return tuple(t.requires_grad for t in self.inputs)

    @property
    def saved_tensors(self) -> tuple:
        """The saved values, arrays wrapped as Tensors. An array that is an input's (or the
        output's) data comes back as that Tensor, so the backward graph links to the forward
        graph (which is what makes create_graph=True give correct higher derivatives)."""
        if self.freed:
            raise freed_error(self.op.name)
        if self.versions is not None:
            for v, seen in zip(self.saved, self.versions):
                if _versions.get(_memory(v), 0) != seen:
                    raise GradError(
                        f"backward through '{self.op.name}': a value of shape "
                        f"{fmt_shape(v.shape)} it saved for its backward was written in place "
                        "after the forward (an optimizer step, or an assign), so the gradient "
                        "would use the new values: run the forward again after the update")
        out = self.output() if self.output is not None else None
        result = []
        for v in self.saved:
            if backend_name(v) is not None:
                for t in self.inputs:
                    if t.data is v:
                        v = t
                        break
                else:
                    v = out if out is not None and out.data is v else _Tensor._wrap(v)
            result.append(v)
        return tuple(result)

    def free(self) -> None:
        self.saved = ()
        self.freed = True

    def __repr__(self) -> str:
        shapes = ", ".join(fmt_shape(t.shape) for t in self.inputs)
        return f"<{self.op.name} node #{self.seq}: inputs {shapes} attrs {self.attrs}>"


def freed_error(op_name: str) -> GradError:
    return GradError(
        f"backward through '{op_name}' a second time: its saved values were freed by the first "
        "backward. Pass retain_graph=True to the first backward() if you need to call it twice."
    )


class Function:
    """An op: `forward(ctx, *arrays, **attrs) -> array` and `backward(ctx, grad) -> grads`.

    `backward` returns one Tensor (or None) per input, each the shape of that input; it may
    return None for an input whose `ctx.needs_input_grad[i]` is False (a constant operand) and
    skip that work. Subclasses set `differentiable = False` for ops with no gradient
    (comparisons).
    """

    differentiable = True
    saved_names: tuple[str, ...] = ()  # what each saved value is, where a graph shows it
    name: str | None = None  # the op's name, snake_case: MaxPool2dBackward -> max_pool2d_backward

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", cls.__name__).lower()

    @staticmethod
    def forward(ctx: Context, *arrays, **attrs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad: Tensor):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs: Tensor, **attrs) -> Tensor:
        ctx = Context(cls, inputs, attrs)
        data = cls.forward(ctx, *[t.data for t in inputs], **attrs)
        if isinstance(data, np.generic):  # numpy reductions to 0-d give scalars, not arrays
            data = np.asarray(data)
        out = _Tensor._wrap(data)
        record = False
        if _grad_enabled and cls.differentiable:
            for t in inputs:
                if t.requires_grad:
                    record = True
                    break
        if record:
            out.requires_grad = True
            out._node = ctx
            ctx.output = weakref.ref(out)
        else:
            ctx.free()
        for hook in op_hooks:
            hook(ctx, out)
        return out


def _as_grad_tuple(node: Context, grads) -> tuple:
    if not isinstance(grads, tuple):
        grads = (grads,)
    if len(grads) != len(node.inputs):
        raise RuntimeError(
            f"internal: {node.op.name}.backward returned {len(grads)} grads for "
            f"{len(node.inputs)} inputs"
        )
    return grads


def backward(root: Tensor, grad: Tensor | None = None, retain_graph: bool | None = None,
             create_graph: bool = False) -> None:
    """Reverse-mode autodiff from `root`: accumulate d(root)/d(leaf) into each leaf's `.grad`.

    grad: d(something)/d(root), root's shape; may be left out for a one-element root (it is 1).
    retain_graph: keep the saved values for another backward (default: create_graph).
    create_graph: record the backward pass on the tape too, for higher derivatives.
    """
    grad = _root_grad("backward()", root, grad)
    # ids of arrays a leaf's .grad must not share: the caller's grad, and those stored already
    stored: set[int] = {id(grad.data)}

    def on_output(node: Context, g: Tensor) -> None:
        if node.retain is not None and node.retain() is not None:
            _accumulate(node.retain(), g, create_graph, stored)

    walk(root, grad, create_graph if retain_graph is None else retain_graph, create_graph,
         lambda t, g: _accumulate(t, g, create_graph, stored), on_output)


def grad(outputs: Tensor, inputs, grad_outputs: Tensor | None = None,
         retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool = False) -> tuple:
    """d(outputs)/d(each of inputs), returned instead of accumulated into `.grad` (no `.grad`
    anywhere changes), as torch.autograd.grad. With create_graph=True the results are on the
    tape themselves, so they can be differentiated again (a gradient penalty, a Hessian-vector
    product). An input that `outputs` does not depend on raises, or gives None with
    allow_unused=True."""
    inputs = (inputs,) if isinstance(inputs, _Tensor) else tuple(inputs)
    g0 = _root_grad("grad()", outputs, grad_outputs)
    where = {id(t): i for i, t in enumerate(inputs)}
    found: list = [None] * len(inputs)

    def collect(t: Tensor, g: Tensor) -> None:
        i = where.get(id(t))
        if i is not None:
            found[i] = g if found[i] is None else found[i] + g

    def on_output(node: Context, g: Tensor) -> None:
        out = node.output() if node.output is not None else None
        if out is not None:
            collect(out, g)

    walk(outputs, g0, create_graph if retain_graph is None else retain_graph, create_graph,
         collect, on_output)
    for i, (t, g) in enumerate(zip(inputs, found)):
        if g is None and not allow_unused:
            raise GradError(f"grad(): input {i} of shape {fmt_shape(t.shape)} is not used to "
                            "compute the outputs (pass allow_unused=True to get None for it)")
        if g is not None and not create_graph:
            found[i] = g.detach()
    return tuple(found)


def _root_grad(what: str, root: Tensor, grad) -> Tensor:
    """Check that root can start a backward pass; d(root)/d(root) as a Tensor."""
    if not root.requires_grad:
        raise GradError(
            f"{what} on a tensor of shape {fmt_shape(root.shape)} that does not require grad: "
            "create the leaves with requires_grad=True (and not under tds.no_grad())"
        )
    if grad is None:
        if root.size != 1:
            raise GradError(
                f"{what} without a gradient needs a scalar output, got shape "
                f"{fmt_shape(root.shape)}: pass a gradient of that shape, or reduce first (.sum())"
            )
        return root.ones_like()
    grad = grad if isinstance(grad, _Tensor) else _Tensor(grad, dtype=root.dtype)
    if grad.shape != root.shape:
        raise ShapeError(
            f"{what}: gradient of shape {fmt_shape(grad.shape)} does not match the output "
            f"shape {fmt_shape(root.shape)}"
        )
    return grad


def walk(root: Tensor, grad: Tensor, retain_graph: bool, create_graph: bool,
          on_leaf: Callable, on_output: Callable, on_input_grad: Callable | None = None) -> None:
    """The backward pass: calls on_output(node, g) with the full gradient of each node's output
    and on_leaf(t, g) with each gradient reaching leaf t (several calls add up); when given,
    on_input_grad(node, i, g) with the gradient node's backward gives its input i."""
    if root._node is None:
        on_leaf(root, grad)
        return

    # Every node reachable from root, newest first: that is the tape, read backwards.
    nodes, seen, stack = [], set(), [root._node]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        nodes.append(node)
        for t in node.inputs:
            if t._node is not None:
                stack.append(t._node)
    nodes.sort(key=lambda n: n.seq, reverse=True)

    pending: dict[int, Tensor] = {id(root._node): grad}
    with _GradMode(create_graph):
        for node in nodes:
            g = pending.pop(id(node), None)
            if g is None:
                continue
            if node.freed:
                raise freed_error(node.op.name)
            on_output(node, g)
            in_grads = _as_grad_tuple(node, node.op.backward(node, g))
            for k, (t, ig) in enumerate(zip(node.inputs, in_grads)):
                if ig is None or not t.requires_grad:
                    continue
                if ig.shape != t.shape:
                    raise RuntimeError(
                        f"internal: {node.op.name}.backward gave a gradient of shape "
                        f"{fmt_shape(ig.shape)} for an input of shape {fmt_shape(t.shape)}"
                    )
                if ig.dtype != t.dtype:
                    ig = ig.astype(t.dtype)
                if on_input_grad is not None:
                    on_input_grad(node, k, ig)
                if t._node is None:
                    on_leaf(t, ig)
                else:
                    key = id(t._node)
                    pending[key] = pending[key] + ig if key in pending else ig
            if not retain_graph:
                node.free()


def _accumulate(t: Tensor, g: Tensor, create_graph: bool, stored: set[int]) -> None:
    """t.grad += g. A gradient stored for the first time gets its own writable memory (ops hand
    back views, broadcasts and the same array for several inputs), so that in-place updates of
    one .grad (an optimizer, gradient clipping) never change another."""
    if t.grad is not None:
        t.grad = t.grad + (g if create_graph else g.detach())
        return
    if not create_graph:
        flags = getattr(g.data, "flags", None)
        if flags is None or not flags.owndata or not flags.writeable or id(g.data) in stored:
            g = g.clone()
        stored.add(id(g.data))
        g = g.detach()
    t.grad = g
