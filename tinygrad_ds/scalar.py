"""The scalar engine: reverse-mode autodiff on single numbers, every multiply and add in view.

    from tinygrad_ds.scalar import Value
    x = Value(2.0, label="x")
    w = Value(-3.0, label="w")
    y = (w * x).tanh(); y.label = "y"
    y.backward()
    x.grad        # dy/dx = w * (1 - y**2)
    print(y.graph())   # every node (id, op, data, grad, label) and edge, as a table

Each op computes its output *and its local derivatives* d(out)/d(input) at once, side by side,
and stores them on the output (`local_grads`). `backward()` is then nothing but the chain rule:
walk the nodes from the output back to the inputs (`backward_order()`) and, at each node, add
`node's gradient * local derivative` to every input. The walk is a loop, not recursion, so a
chain of 100,000 ops works.

Gradients accumulate, as in PyTorch: a second `backward()` adds to `.grad`. Call `zero_grad()`
(on the output: it resets every node of its graph) before a fresh backward.

This is the same idea as the tensor engine (`tinygrad_ds.Tensor`) at the level of single numbers,
written to be read: micrograd (Karpathy) is the model; this one keeps the local derivatives
explicit, numbers every node, and can hand over a record of the graph for drawing.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from numbers import Real
from typing import Callable, Iterable, NamedTuple

_ids = itertools.count()


class Value:
    """One number in a computation, with its gradient and the op that made it.

    data: the number (a Python float). grad: d(output)/d(this), filled in by `backward()`.
    op: the op that made it ('' for inputs and constants). children: the Values it was made from,
    in operand order (`x * x` has children (x, x)). local_grads: d(this)/d(child) for each child.
    label: a name for drawings and error messages. id: a number unique to this Value, in order of
    creation.
    """

    __slots__ = ("data", "grad", "op", "children", "local_grads", "label", "id")

    def __init__(self, data: float, label: str = "", *, children: tuple = (), op: str = "",
                 local_grads: tuple = ()):
        if isinstance(data, Value):
            raise TypeError(f"Value(...) of a Value ({data!r}): use the Value itself")
        if not isinstance(data, Real):
            raise TypeError(f"Value holds one real number; got {type(data).__name__} {data!r}")
        self.data = float(data)
        self.grad = 0.0
        self.op = op
        self.children = children
        self.local_grads = local_grads
        self.label = label
        self.id = next(_ids)

    def __repr__(self) -> str:
        name = f", label={self.label!r}" if self.label else ""
        op = f", op={self.op!r}" if self.op else ""
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g}{name}{op})"

    def describe(self) -> str:
        """How error messages name this Value: its label, or its number and op."""
        if self.label:
            return f"Value {self.label!r}"
        return f"Value #{self.id}" + (f" (made by '{self.op}')" if self.op else "")

    # ---- ops: each returns its output with d(out)/d(input) for every input ----------------------
    def __add__(self, other) -> Value:
        other = _as_value(other, "+")
        return Value(self.data + other.data, children=(self, other), op="+",
                     local_grads=(1.0, 1.0))

    def __mul__(self, other) -> Value:
        other = _as_value(other, "*")
        return Value(self.data * other.data, children=(self, other), op="*",
                     local_grads=(other.data, self.data))

    def __pow__(self, k) -> Value:
        if isinstance(k, Value):
            raise TypeError(
                f"Value ** Value is not supported: the exponent must be a number, got "
                f"{k.describe()}. For a > 0, write a ** b as (b * a.log()).exp()"
            )
        if not isinstance(k, Real):
            raise TypeError(f"Value ** {type(k).__name__}: the exponent must be a number")
        k = float(k)
        x = self.data
        if x == 0.0 and k < 0:
            raise ZeroDivisionError(f"{self.describe()} is 0, and 0 ** {k:g} is undefined "
                                    "(division by zero)")
        if x < 0 and not k.is_integer():
            raise ValueError(f"{self.describe()} is {x:g} < 0, and {x:g} ** {k:g} is not a real "
                             "number (a negative base needs an integer exponent)")
        kk = int(k) if k.is_integer() else k  # int exponents keep x ** k exact
        try:
            out = x ** kk
            # NOTE: d/dx x**k at x = 0 is infinite for 0 < k < 1 (sqrt's slope at 0).
            local = math.inf if (x == 0.0 and k < 1) else k * x ** (kk - 1)
        except OverflowError:
            raise OverflowError(f"{self.describe()} ** {kk}: {x:g} ** {kk} overflows a "
                                "float") from None
        return Value(out, children=(self,), op=f"**{kk}", local_grads=(local,))

    def __rpow__(self, base) -> Value:
        """base ** x for a number base > 0: exp(x log base)."""
        if not isinstance(base, Real) or base <= 0:
            raise ValueError(f"{base!r} ** {self.describe()}: only a positive number base is "
                             "supported (the derivative needs log(base))")
        out = float(base) ** self.data
        return Value(out, children=(self,), op=f"{base:g}**",
                     local_grads=(out * math.log(base),))

    def exp(self) -> Value:
        try:
            out = math.exp(self.data)
        except OverflowError:
            raise OverflowError(f"exp of {self.describe()} = {self.data:g} overflows a float "
                                "(exp(x) > 1.8e308 for x > 709.78)") from None
        return Value(out, children=(self,), op="exp", local_grads=(out,))

    def log(self) -> Value:
        if self.data <= 0:
            raise ValueError(f"log of a non-positive number: {self.describe()} is "
                             f"{self.data:g} (log is defined only for numbers > 0)")
        return Value(math.log(self.data), children=(self,), op="log",
                     local_grads=(1.0 / self.data,))

    def tanh(self) -> Value:
        t = math.tanh(self.data)
        return Value(t, children=(self,), op="tanh", local_grads=(1.0 - t * t,))

    def sigmoid(self) -> Value:
        x = self.data
        # Two forms so that exp never overflows: for x < 0, 1/(1+e^-x) = e^x/(1+e^x).
        s = 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))
        return Value(s, children=(self,), op="sigmoid", local_grads=(s * (1.0 - s),))

    def relu(self) -> Value:
        x = self.data
        # NOTE: the derivative at exactly 0 is taken as 0, as PyTorch does.
        return Value(max(x, 0.0), children=(self,), op="relu",
                     local_grads=(1.0 if x > 0 else 0.0,))

    # ---- derived ops: built from the ones above -----------------------------------------------
    def __neg__(self) -> Value:
        return self * -1.0

    def __sub__(self, other) -> Value:
        if isinstance(other, Real):  # x - 1 is x + (-1): no extra node for the minus sign
            return self + (-float(other))
        return self + (-_as_value(other, "-"))

    def __truediv__(self, other) -> Value:
        other = _as_value(other, "/")
        if other.data == 0.0:
            raise ZeroDivisionError(f"{self.describe()} / {other.describe()}: the divisor is 0")
        return self * other ** -1

    def __radd__(self, other) -> Value:
        return _as_value(other, "+") + self

    def __rsub__(self, other) -> Value:
        return _as_value(other, "-") + (-self)

    def __rmul__(self, other) -> Value:
        return _as_value(other, "*") * self

    def __rtruediv__(self, other) -> Value:
        return _as_value(other, "/") / self

    def __float__(self) -> float:
        return self.data

    # ---- autodiff -----------------------------------------------------------------------------
    def backward_order(self) -> list[Value]:
        """Every Value this one depends on, in the order `backward()` visits them: this Value
        first, and each node before its children (a reverse topological order). A depth-first
        walk with an explicit stack, so deep graphs do not hit Python's recursion limit."""
        order: list[Value] = []
        done: set[int] = set()
        stack: list[tuple[Value, bool]] = [(self, False)]
        while stack:
            node, children_done = stack.pop()
            if children_done:
                order.append(node)
                continue
            if node.id in done:
                continue
            done.add(node.id)
            stack.append((node, True))
            stack.extend((c, False) for c in node.children if c.id not in done)
        order.reverse()  # post-order lists children first; the walk goes output first
        return order

    def backward(self, on_step: Callable[[int, Value], None] | None = None) -> None:
        """Fill in d(self)/d(v) for every Value v this one depends on, *adding* it to `v.grad`.

        Gradients accumulate, as in PyTorch: call `zero_grad()` first to start from zero. Each
        node's contribution is added to its input's `.grad` the moment the node is processed,
        so a node used twice shows its first term before its second is added. on_step(step,
        node), if given, is called after each node has passed its gradient to its children
        (the visualizer draws one frame per step with it).
        """
        pending: dict[int, float] = {self.id: 1.0}  # this walk's gradient of each node so far
        self.grad += 1.0
        for step, node in enumerate(self.backward_order()):
            g = pending.pop(node.id, 0.0)  # final: every consumer of node came before it
            for child, local in zip(node.children, node.local_grads):
                # The chain rule: d(self)/d(child) += d(self)/d(node) * d(node)/d(child)
                term = g * local
                child.grad += term
                pending[child.id] = pending.get(child.id, 0.0) + term
            if on_step is not None:
                on_step(step, node)

    def zero_grad(self) -> None:
        """Set .grad to 0 on this Value and every Value it depends on."""
        for node in self.backward_order():
            node.grad = 0.0

    def graph(self) -> ScalarGraph:
        """A record of the graph that made this Value: nodes and edges, as plain data."""
        order = self.backward_order()
        nodes = [Node(v.id, v.op, v.data, v.grad, v.label) for v in reversed(order)]
        edges = [Edge(c.id, v.id, lg) for v in reversed(order)
                 for c, lg in zip(v.children, v.local_grads)]
        return ScalarGraph(nodes, edges, self.id)


def _as_value(x, op: str) -> Value:
    if isinstance(x, Value):
        return x
    if isinstance(x, Real):
        return Value(x, label=f"{float(x):g}")
    raise TypeError(f"Value {op} {type(x).__name__}: the other operand must be a Value or a "
                    f"number, got {x!r}")


class Node(NamedTuple):
    """One Value in a graph record."""

    id: int
    op: str
    data: float
    grad: float
    label: str


class Edge(NamedTuple):
    """src was an input of dst; local_grad is d(dst)/d(src)."""

    src: int
    dst: int
    local_grad: float


@dataclass
class ScalarGraph:
    """What `Value.graph()` returns. nodes: inputs first, each node after its children (a
    topological order); edges: one per operand (x * x gives two edges from x); root: the id of the
    Value whose graph this is."""

    nodes: list[Node]
    edges: list[Edge]
    root: int
    by_id: dict[int, Node] = field(init=False, repr=False)

    def __post_init__(self):
        self.by_id = {n.id: n for n in self.nodes}

    def __str__(self) -> str:
        ins: dict[int, list[str]] = {}
        for e in self.edges:
            src = self.by_id[e.src]
            ins.setdefault(e.dst, []).append(src.label or f"#{src.id}")
        lines = [f"{'id':>5}  {'label':<8} {'op':<8} {'inputs':<16} {'data':>12} {'grad':>12}"]
        for n in self.nodes:
            lines.append(f"{n.id:>5}  {n.label:<8} {n.op:<8} {', '.join(ins.get(n.id, [])):<16} "
                         f"{n.data:>12.6g} {n.grad:>12.6g}")
        return "\n".join(lines)


def zero_grad(values: Iterable[Value]) -> None:
    """Set .grad to 0 on each Value given (a model's parameters, say)."""
    for v in values:
        v.grad = 0.0


__all__ = ["Value", "Node", "Edge", "ScalarGraph", "zero_grad"]
