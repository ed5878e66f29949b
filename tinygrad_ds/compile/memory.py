"""Memory of a compiled plan: loop outputs share buffers by liveness; peaks measured.

    plan_buffers(plan, vals)             # after the plan's first replay (replay calls it)
    plan.buffer_of                       # slot -> arena buffer: which values share memory
    plan.planned_peak_bytes()            # what the step's values hold at most at once
    peak_bytes(fn, *args)                # the most bytes numpy held at once during fn(*args)
    held_bytes(compiled)                 # what a compiled callable's plans hold between calls
    measure(compiled, args)              # (eager, compiled) peaks of one call, state kept

Which values are views of which is found by looking, not assumed: the first replay gives each
loop output an array of its own, and every value of the step is then located by its byte range.
Values whose ranges overlap are one piece of memory, alive from the step that makes the first of
them to the last step that reads any of them. Loop outputs that nothing outside the step holds
(not an output, not a .grad, no view of one) are then placed, step by step, in the arena: a
buffer is free once the memory it holds is dead, and a loop takes the buffer of an operand that
dies at that loop (same size and element size, read at the loop's own index) for its output:
each element is read before it is written.
"""
from __future__ import annotations

import copy
import tracemalloc
from dataclasses import dataclass

import numpy as np

from .. import autograd

try:  # numpy >= 2
    from numpy.lib.array_utils import byte_bounds
except ImportError:  # pragma: no cover - numpy 1.x
    byte_bounds = np.byte_bounds


@dataclass
class Memory:
    """One piece of memory of a replay: the slots whose values lie in it, its bytes, the steps
    it lives over (start: the step that makes it; end: its last reader, len(steps) = after the
    replay), and whether it is an arena buffer (held between calls)."""

    slots: list[int]
    nbytes: int
    start: int
    end: int
    arena: bool = False


@dataclass
class Lifetimes:
    """The pieces of memory the step's own values use (inputs, parameters, state excluded)."""

    pieces: list[Memory]
    n_steps: int

    def peak_bytes(self, plan) -> int:
        live = np.zeros(self.n_steps + 1, np.int64)
        for m in self.pieces:
            if not m.arena:
                live[m.start:m.end + 1] += m.nbytes
        return plan.owned_bytes() + int(live.max(initial=0))


def last_uses(plan) -> tuple[dict[int, int], dict[int, int]]:
    """(producer, last): the step that makes each slot, and the last step that reads it
    (len(steps) for the plan's outputs and the values left in .grad)."""
    producer: dict[int, int] = {}
    last: dict[int, int] = {}
    for k, st in enumerate(plan.steps):
        if st[0] == "kernel":
            for i in st[2]:
                last[i] = k
            for slot, *_ in st[3]:
                producer[slot] = k
        else:
            for i in st[3]:
                last[i] = k
            producer[st[4]] = k
            for slot, _ in st[5]:
                producer[slot] = k
    end = len(plan.steps)
    for v in list(plan.outputs) + [v for _, _, v in plan.grads]:
        last[v] = end
    return producer, last


def release_lists(plan) -> list[list[int]]:
    """For each step, the slots made by the plan that nothing reads after it: the replay drops
    them there, so that memory the ops allocate is freed as in eager execution."""
    producer, last = last_uses(plan)
    out: list[list[int]] = [[] for _ in plan.steps]
    for slot, k in producer.items():
        j = last.get(slot, k)
        if j < len(plan.steps):
            out[j].append(slot)
    return out


def _pieces(plan, vals: list, producer: dict, last: dict) -> list[Memory]:
    """Group the replay's array values into pieces of memory by overlapping byte ranges."""
    spans = []
    for slot, v in enumerate(vals):
        if isinstance(v, np.ndarray) and v.size:
            lo, hi = byte_bounds(v)
            spans.append((lo, hi, slot))
    spans.sort()
    pieces: list[Memory] = []
    cur: list = []
    cur_lo = cur_hi = None
    for lo, hi, slot in spans + [(None, None, None)]:
        if cur and (lo is None or lo >= cur_hi):
            slots = [s for _, _, s in cur]
            if all(s in producer for s in slots):  # else: an input's, a parameter's memory
                start = min(producer[s] for s in slots)
                end = max(last.get(s, producer[s]) for s in slots)
                pieces.append(Memory(slots, cur_hi - cur_lo, start, end))
            cur = []
        if lo is None:
            break
        if not cur:
            cur_lo, cur_hi = lo, hi
        cur.append((lo, hi, slot))
        cur_hi = max(cur_hi, hi)
    return pieces


def plan_buffers(plan, vals: list) -> None:
    """Place the plan's loop outputs in a shared arena, given the values of a replay in which
    each loop output had an array of its own (module doc). Sets plan.arena, plan.buffer_of,
    plan.memory and rewrites the kernel steps' output arrays into views of the arena."""
    plan.planned = True
    steps = plan.steps
    producer, last = last_uses(plan)
    owned = {}  # slot -> (step index, output index) of the loop outputs with an array of their own
    for k, st in enumerate(steps):
        if st[0] == "kernel":
            for j, (slot, shape, dtype, buf) in enumerate(st[3]):
                if isinstance(buf, np.ndarray):
                    if vals[slot] is not buf:  # not the array the plan gave: plan nothing
                        return
                    owned[slot] = (k, j)
    pieces = _pieces(plan, vals, producer, last)
    escaping = set(plan.outputs) | {v for _, _, v in plan.grads}
    piece_of: dict[int, Memory] = {}
    for m in pieces:
        mine = [s for s in m.slots if s in owned]
        if len(mine) != 1:
            continue
        if any(s in escaping for s in m.slots):
            # a view of this loop output leaves the step: it needs new memory at each replay
            k, j = owned[mine[0]]
            _set_out(steps, k, j, [])
            continue
        m.arena = True
        piece_of[mine[0]] = m
    plan.memory = Lifetimes(pieces, len(steps))
    # linear scan over the steps: each arena value takes a free buffer, or its dying operand's
    size: list[int] = []        # bytes of each buffer
    busy_until: list[int] = []  # the last step of the memory it holds now
    chosen: dict[int, int] = {}
    orig = {slot: steps[k][3][j][3] for slot, (k, j) in owned.items()}
    for k, st in enumerate(steps):
        if st[0] != "kernel":
            continue
        direct = plan.direct.get(k, frozenset())
        taken: set[int] = set()
        for slot, shape, dtype, buf in st[3]:
            m = piece_of.get(slot)
            if m is None:
                continue
            need = buf.nbytes
            b = _in_place(st, slot, buf, direct, piece_of, chosen, orig, k, taken)
            if b is None:
                free = [x for x in range(len(size)) if busy_until[x] < k and x not in taken]
                fits = [x for x in free if size[x] >= need]
                if fits:
                    b = min(fits, key=lambda x: size[x])
                elif free:
                    b = max(free, key=lambda x: size[x])
                    size[b] = need  # grown: buffers are made after planning
                else:
                    b = len(size)
                    size.append(need)
                    busy_until.append(-1)
            chosen[slot] = b
            taken.add(b)
            busy_until[b] = m.end
    plan.arena = [np.empty(max(n, 1), np.uint8) for n in size]
    plan.buffer_of = {}
    for slot, b in chosen.items():
        k, j = owned[slot]
        _, shape, dtype, buf = steps[k][3][j]
        view = plan.arena[b][:buf.nbytes].view(dtype).reshape(shape)
        _set_out(steps, k, j, view)
        for s in piece_of[slot].slots:
            plan.buffer_of[s] = b


def _in_place(st, slot, buf, direct, piece_of, chosen, orig, k, taken) -> int | None:
    """The buffer of an operand of this loop that dies here and that output `slot` may
    overwrite: an operand read at the loop's own index, made by a loop (its own array, of the
    same bytes and element size: element n of both lies at the same bytes), and no other
    operand of the loop lies in the same memory."""
    for i in st[2]:
        if i not in direct or i not in chosen or piece_of[i].end != k:
            continue
        b = chosen[i]
        if b in taken or any(x != i and x in piece_of[i].slots for x in st[2]):
            continue
        if orig[i].nbytes != buf.nbytes or orig[i].itemsize != buf.itemsize:
            continue
        return b
    return None


def _set_out(steps: list, k: int, j: int, buf) -> None:
    st = steps[k]
    outs = list(st[3])
    slot, shape, dtype, _ = outs[j]
    outs[j] = (slot, shape, dtype, buf)
    steps[k] = (*st[:3], outs, *st[4:])


def peak_bytes(fn, *args) -> int:
    """The most bytes allocated through numpy (and Python) at once while `fn(*args)` runs, above
    what was allocated before, measured with tracemalloc. For a compiled callable, the memory its
    plans hold between calls that nothing else uses (`held_bytes`: arenas, idle arrays kept for
    reuse) is added: it is in use during the call, but was allocated before it. Memory numba
    allocates inside a kernel is not seen by tracemalloc."""
    held = held_bytes(fn) if hasattr(fn, "plans") else 0
    tracemalloc_was_on = tracemalloc.is_tracing()
    if not tracemalloc_was_on:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    try:
        fn(*args)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not tracemalloc_was_on:
            tracemalloc.stop()
    return max(peak - base, 0) + held


def held_bytes(compiled) -> int:
    """Bytes a compiled callable's plans (forward and backward, every key) hold between calls
    that nothing else uses (Plan.held_bytes)."""
    total = 0
    for entry in compiled.plans.values():
        for e in (entry, entry.backward):
            if e is not None:
                total += e.plan.held_bytes()
    return total


class _KeptState:
    """Puts back, on exit, what a call of a step may change: the parameters, buffers and
    optimizer state the plan reads (values and array objects), the parameters' .grad, and the
    random generator's state."""

    def __init__(self, plan):
        self.plan = plan

    def __enter__(self):
        self.saved = []
        for _slot, source, _shape, kind, _name in self.plan.reads:
            t = source()
            data = t.data
            if isinstance(data, np.ndarray):
                self.saved.append((t, data, data.copy(), getattr(t, "grad", None), kind))
            elif isinstance(data, np.random.Generator):
                self.saved.append((t, data, copy.deepcopy(data.bit_generator.state), None,
                                   "rng"))
        return self

    def __exit__(self, *exc):
        for t, data, value, grad, kind in self.saved:
            if kind == "rng":
                data.bit_generator.state = value
                continue
            t.data = data
            data[...] = value
            autograd.bump_version(data)
            if kind == "param":
                t.grad = grad
        return False


def measure(compiled, args) -> tuple[int, int]:
    """(eager, compiled): the peak bytes of one call of the original function and of the
    compiled one on `args` (`peak_bytes`; the compiled figure includes its arena). Each call
    runs on the state as it was: what it changes (parameters, optimizer state, batch-norm
    statistics, .grad, the random generator) is put back afterwards. The eager function runs
    once before it is measured, so that compiling its kernels is not counted."""
    plan = compiled.last.plan
    with _KeptState(plan):
        compiled.fn(*args)
    with _KeptState(plan):
        eager = peak_bytes(compiled.fn, *args)
    with _KeptState(plan):
        comp = peak_bytes(compiled, *args)
    return eager, comp
