"""The plan: a graph as a flat list of steps over numbered slots, replayed with little Python.

Every value of the graph gets a slot (an index into one list). Constants are in the list from
the start; parameters, buffers and optimizer state are read from their sources at the start of
each replay (state is read as it is now, as `Graph.run` does); then each step runs:

- ('kernel', fn, input slots, outputs, written slots): a generated fused loop; each output is
  (slot, shape, dtype, array): the array the plan keeps and reuses at every replay (one per
  output until the first replay, then a view into the shared arena, see below), or, for a
  value that outlives the replay (an output, a .grad), a list of arrays handed out before,
  reused once nothing else refers to them (`_recycled`);
- ('op', Function, attrs, input slots, output slot, aux): an op the compiler has no generated
  code for, run by its own eager forward (aux: (slot, index) of values it saved that other
  nodes read).

The effects are those of `run_graph`: assigns write in place (folded ones inside the loop), and
the gradients the traced call left in `.grad` are set at the end.

Buffers by liveness (`memory.py` plans them): the first replay runs with one array per loop
output and looks at where every value of the step lies in memory (which values are views of
which loop outputs: the ops run by their forward may return views). Then the loop outputs that
do not escape share arrays of one arena: a value's memory is free after the last step that reads
it or any view of it, and a loop whose operand dies there writes its output over that operand
(read at the same element before it is written). `plan.buffer_of` says which arena buffer each
value lives in; `plan.planned_peak_bytes()` what the steps hold at most at once.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np

from .. import autograd
from ..autograd import Context
from ..errors import TdsError, fmt_shape
from ..graph.ir import Graph
from ..tensor import Tensor
from .codegen import group_source, load_kernel
from .fusion import Fusion, fuse
from .memory import plan_buffers, release_lists
from .rewrite import roots


class KernelError(TdsError):
    """A generated kernel failed when the plan ran it."""


class PlanShapeError(TdsError):
    """State read by the plan has another shape than when it was compiled."""


@dataclass
class Kernel:
    """A generated kernel of the plan: its group, code and the comment naming its nodes."""

    name: str
    members: list[int]
    code: str
    header: str
    fn: object = None


@dataclass
class Plan:
    graph: Graph
    fusion: Fusion
    template: list
    reads: list[tuple]             # (slot, source, traced shape, kind, name)
    steps: list[tuple]
    outputs: list[int]
    grads: list[tuple]             # (param slot, source, value slot)
    kernels: list[Kernel] = field(default_factory=list)
    fallback: dict[str, int] = field(default_factory=dict)  # op -> count run by its forward
    slot_of: dict[int, int] = field(default_factory=dict)   # graph node id -> slot
    # kernel step index -> the slots its loop reads at its own index (same shape, no
    # permutation): the operands whose memory its outputs may overwrite
    direct: dict[int, frozenset] = field(default_factory=dict)
    # filled in after the first replay (memory.plan_buffers): slot -> arena buffer index, for
    # the loop outputs in the arena and the values that are views of them
    buffer_of: dict[int, int] = field(default_factory=dict)
    arena: list = field(default_factory=list)     # the shared buffers (bytes)
    planned: bool = False
    memory: object = None                        # memory.Lifetimes of the first replay
    release: list = field(default_factory=list)  # per step: slots no later step reads
    # memory for values that outlive a replay, and a .grad's own array (cuda_plan.py's on GPU)
    alloc: object = None           # (pool, shape, dtype) -> array; None: _recycled
    own: object = None             # (array, must_copy) -> array; None: _own

    def owned_bytes(self) -> int:
        """Bytes of the loop outputs the plan keeps between calls (reused at each replay): one
        array per loop output before the first replay, the arena after it (and the arrays of
        any loop output left out of it)."""
        own = sum(buf.nbytes for s in self.steps if s[0] == "kernel" for slot, *_, buf in s[3]
                  if isinstance(buf, np.ndarray) and slot not in self.buffer_of)
        return own + sum(b.nbytes for b in self.arena)

    def held_bytes(self) -> int:
        """Bytes the plan holds that nothing else uses now: owned_bytes(), plus the arrays its
        outputs' pools keep for reuse that no one refers to (`_recycled`)."""
        idle = sum(arr.nbytes for s in self.steps if s[0] == "kernel" for *_, pool in s[3]
                   if type(pool) is list for arr in pool if sys.getrefcount(arr) == 3)
        return self.owned_bytes() + idle

    def buffers_by_node(self) -> dict[int, int]:
        """{graph node id: arena buffer} for the values in the arena (nodes of `self.graph`,
        the optimised graph): equal numbers share memory at different times."""
        return {nid: self.buffer_of[s] for nid, s in self.slot_of.items() if s in self.buffer_of}

    def planned_peak_bytes(self) -> int | None:
        """The most bytes the step's own values hold at once (the arena, plus the values the
        ops run by their forward allocate and the outputs, each from its first step to its last
        use; inputs, parameters and state excluded, and so is scratch memory inside an op).
        None before the first replay, which finds out which values are views."""
        if self.memory is None:
            return None
        return self.memory.peak_bytes(self)

    def replay(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        vals = list(self.template)
        for k, x in enumerate(inputs):
            vals[k] = x
        for slot, source, shape, kind, name in self.reads:
            data = source().data
            if getattr(data, "shape", ()) != shape:  # (the random generator has none)
                raise PlanShapeError(f"compiled step: {kind} '{name}' has shape "
                                     f"{fmt_shape(data.shape)} now, {fmt_shape(shape)} when "
                                     "compiled")
            vals[slot] = data
        # once buffers are planned, each value is dropped after its last reader (as eager
        # frees it); the first replay keeps them all, to see which are views of which
        release = self.release if self.planned else [()] * len(self.steps)
        for step, dead in zip(self.steps, release):
            if step[0] == "kernel":
                _, fn, ins, outs, written = step
                args = [vals[i] for i in ins]
                for slot, shape, dtype, buf in outs:
                    arr = (self.alloc or _recycled)(buf, shape, dtype) if type(buf) is list \
                        else buf
                    vals[slot] = arr
                    args.append(arr)
                try:
                    fn(*args)
                except Exception as e:
                    raise KernelError(
                        f"compiled step: the generated kernel {fn.__name__} failed on inputs "
                        + ", ".join(f"{fmt_shape(a.shape)} {a.dtype}" for a in args)
                        + f": {type(e).__name__}: {e}. explain() shows its source; compile "
                        "with passes=[...] without 'fuse' to run its ops by their own "
                        "forward") from e
                for slot in written:
                    autograd.bump_version(vals[slot])
            else:
                _, f, attrs, ins, out, aux = step
                ctx = _StepContext(f, attrs)
                r = f.forward(ctx, *[vals[i] for i in ins], **attrs)
                vals[out] = np.asarray(r) if isinstance(r, np.generic) else r
                for slot, k in aux:
                    vals[slot] = ctx.saved[k]
            for slot in dead:
                vals[slot] = None
        external = {slot for slot, *_ in self.reads} | set(range(len(inputs)))
        seen: set[int] = set()
        for pslot, source, vslot in self.grads:
            g = vals[vslot]
            g = (self.own or _own)(g, vslot in external or id(g) in seen)
            seen.add(id(g))
            source().grad = Tensor._wrap(g)
        if not self.planned:
            plan_buffers(self, vals)
        return [vals[i] for i in self.outputs]


def build_plan(graph: Graph, fusion: Fusion | None = None, generate: bool = True,
               device: str = "cpu") -> Plan:
    """The plan of `graph` (a checked forward or program graph). fusion: the groups to generate
    loops for (default: `fuse(graph)`); generate=False runs every op by its forward.
    device='cuda': CUDA kernels over device arrays (cuda_plan.py)."""
    if fusion is None:
        fusion = fuse(graph) if generate else Fusion([], [("node", n.id) for n in graph.nodes],
                                                     {}, {})
    nodes = graph.nodes
    # slots: inputs first (replay puts them at 0..k-1), then every other node by id
    slot: dict[int, int] = {nid: k for k, nid in enumerate(graph.inputs)}
    for n in nodes:
        if n.id not in slot:
            slot[n.id] = len(slot)
    template: list = [None] * len(slot)
    reads = []
    for n in nodes:
        if n.kind == "const":
            template[slot[n.id]] = n.value
        elif n.kind in ("param", "buffer", "state"):
            reads.append((slot[n.id], n.source, tuple(n.shape), n.kind, n.name))
        elif n.kind == "opaque":
            raise TdsError(f"compile: node {n.id} ({fmt_shape(n.shape)}) was made outside "
                           "tinygrad_ds ops while tracing, so it cannot be compiled")
    aux_of: dict[int, list] = {}
    for n in nodes:
        if n.kind == "aux":
            aux_of.setdefault(n.inputs[0], []).append((slot[n.id], n.attrs["index"]))
    # values that outlive a replay (outputs, .grad, and what shares their memory) get new
    # memory each time; every other loop output has one array the plan reuses at each replay
    root = roots(graph)
    escaping = {root[i] for i in graph.outputs} | {root[v] for _, _, v in graph.effects}
    used = {i for n in nodes for i in n.inputs} | set(graph.outputs)
    used |= {v for _, _, v in graph.effects}
    steps: list[tuple] = []
    kernels: list[Kernel] = []
    fallback: dict[str, int] = {}
    direct: list[frozenset] = []
    for kind, what in fusion.steps:
        if kind == "group":
            g = what
            if device == "cuda":
                from . import cuda_plan
                code, header, fn = cuda_plan.kernel(graph, g)
            else:
                code, header = group_source(graph, g)
                fn = load_kernel(code)
            kernels.append(Kernel(code.split("def ", 1)[1].split("(", 1)[0], list(g.members),
                                  code, header, fn))
            written = [slot[nodes[m].inputs[0]] for m in g.members if nodes[m].op == "assign"]
            outs = [(slot[m], tuple(nodes[m].shape), nodes[m].dtype,
                     [] if root[m] in escaping else np.empty(nodes[m].shape, nodes[m].dtype))
                    for m in g.outputs]
            steps.append(("kernel", fn, [slot[i] for i in g.inputs], outs, written))
            viewed = set(g.views.values())
            direct.append(frozenset(slot[i] for i in g.inputs if i not in viewed
                                    and tuple(nodes[i].shape) == tuple(g.shape)))
            for m in g.members:  # an assign's value is its target
                if nodes[m].op == "assign" and m in used:
                    steps.append(("alias", slot[nodes[m].inputs[0]], slot[m]))
            continue
        n = nodes[what]
        if n.kind != "op":
            continue
        fallback[n.op] = fallback.get(n.op, 0) + 1
        steps.append(("op", n.fn, n.attrs, [slot[i] for i in n.inputs], slot[n.id],
                      aux_of.get(n.id, [])))
    steps = _alias_steps(steps)
    grads = [(slot[p], nodes[p].source, slot[v]) for k, p, v in graph.effects if k == "grad"]
    kernel_steps = [k for k, s in enumerate(steps) if s[0] == "kernel"]
    plan = Plan(graph, fusion, template, reads, steps, [slot[i] for i in graph.outputs], grads,
                kernels, fallback, slot, dict(zip(kernel_steps, direct)))
    plan.release = release_lists(plan)
    if device == "cuda":
        from . import cuda_plan
        plan = cuda_plan.on_device(plan)
    return plan


def _recycled(pool: list, shape: tuple, dtype) -> np.ndarray:
    """An array for a value that outlives the replay (an output, a .grad): one handed out by an
    earlier replay that nothing refers to any more (the pool's is the only reference: a Tensor,
    or a view, of it holds another), else new memory. Fresh memory costs a page fault per page
    (as eager pays for every new gradient); reusing dropped arrays avoids it."""
    for arr in pool:
        if sys.getrefcount(arr) == 3:  # the pool, the loop variable, getrefcount's argument
            return arr
    arr = np.empty(shape, dtype)
    if len(pool) < 3:
        pool.append(arr)
    return arr


def _own(g: np.ndarray, must_copy: bool) -> np.ndarray:
    """A .grad gets memory of its own, as eager backward gives it."""
    return np.array(g) if must_copy or not g.flags.owndata else g


def _alias_steps(steps: list[tuple]) -> list[tuple]:
    """An assign folded into a loop has its target as its value: give its slot the target's
    array after the loop, by an 'op' step of a tiny forward (kept in the same step format)."""
    out = []
    for s in steps:
        if s[0] == "alias":
            out.append(("op", _Same, {}, [s[1]], s[2], []))
        else:
            out.append(s)
    return out


class _StepContext(Context):
    """What an op's forward gets inside a plan: it keeps what the forward saves (the plan reads
    a backward's values back from it) without the tape's bookkeeping (a sequence number and the
    saved arrays' versions: 40 us of a 0.65 ms MLP step)."""

    def __init__(self, op, attrs: dict):
        self.op, self.inputs, self.attrs, self.saved = op, (), attrs, ()

    def save_for_backward(self, *values) -> None:
        self.saved = values


class _Same:
    """x -> x: the value of an assign folded into a generated loop is its target."""

    name = "assign"

    @staticmethod
    def forward(ctx, x):
        return x
