"""tds.compile: trace a model or a training step once per key, optimise it, replay the plan.

    step = tds.compile(train_step)      # forward, loss, backward, optimizer update: one plan
    loss = step(x, y)                   # first call with these shapes: trace, passes, kernels
    loss = step(x, y)                   # later calls: replay
    step.explain()                      # what each pass did, the fused loops, the costs

The key of a plan: the inputs' shapes and dtypes, which inputs require grad, and the training
flags of the modules the function reaches. A new key compiles a new plan (logged once, naming
what changed); state whose shape changed since compiling makes the plan compile again.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .. import autograd
from ..errors import TdsError, fmt_shape
from ..graph.ir import Graph
from ..graph.trace import _owners, trace
from ..tensor import Tensor
from . import codegen
from .fusion import Fusion, fuse
from .passes import PASSES
from .plan import Plan, PlanShapeError, build_plan

log = logging.getLogger("tinygrad_ds.compile")
DEFAULT_PASSES = (*PASSES, "fuse")


@dataclass
class Entry:
    """One compiled plan and what compiling it did."""

    key: tuple
    graph: Graph                    # as traced
    optimized: Graph                # after the passes
    plan: Plan
    counts: list[tuple[str, int, int]] = field(default_factory=list)  # (pass, nodes, ops)
    times: dict[str, float] = field(default_factory=dict)
    kernels_written: int = 0        # new kernel sources (numba compiles them: cold)
    calls: int = 0


def _arrays(args) -> list[np.ndarray]:
    out = []
    for a in args:
        if isinstance(a, Tensor):
            out.append(a.data)
        elif isinstance(a, np.ndarray):
            out.append(a)
        else:
            raise TdsError(f"compiled function: arguments must be Tensors or numpy arrays, got "
                           f"{type(a).__name__}")
    return out


class Compiled:
    """A compiled function or model; call it as the original. See `tds.compile`."""

    def __init__(self, fn: Callable, verbose: bool = False, passes: Sequence | None = None):
        self.fn = fn
        self.is_model = hasattr(fn, "named_modules")
        self.verbose = verbose
        passes = DEFAULT_PASSES if passes is None else tuple(passes)
        for p in passes:
            if not callable(p) and p not in DEFAULT_PASSES:
                raise TdsError(f"compile: unknown pass {p!r}; known: {list(DEFAULT_PASSES)} (or "
                               "a function Graph -> Graph)")
        self.passes = passes
        self.plans: dict[tuple, Entry] = {}
        self.last: Entry | None = None
        self._modules = None

    # ---- the key -------------------------------------------------------------------------------
    def _module_list(self) -> list:
        if self._modules is None:
            owners = [self.fn] if self.is_model else _owners(self.fn)
            mods = []
            for o in owners:
                if hasattr(o, "modules"):
                    mods += list(o.modules())
            self._modules = mods
        return self._modules

    def _key(self, args, arrays) -> tuple:
        return (tuple((tuple(a.shape), str(a.dtype) if isinstance(a, np.ndarray) else
                       f"{a.dtype} on cuda") for a in arrays),  # a device: its own plan
                tuple(bool(getattr(a, "requires_grad", False)) for a in args),
                tuple(m.training for m in self._module_list()))

    # ---- calling ---------------------------------------------------------------------------------
    def __call__(self, *args):
        arrays = _arrays(args)
        key = self._key(args, arrays)
        entry = self.plans.get(key)
        if entry is None:
            entry = self._compile(key, args)
        self.last = entry
        entry.calls += 1
        if self.is_model and autograd.is_grad_enabled() and (
                any(key[1]) or any(p.requires_grad for p in self.fn.parameters())):
            # NOTE: the backward of a compiled model is not compiled: with gradients on, the
            # optimised graph runs by the ops' forwards, recording the tape for loss.backward()
            return entry.optimized.run(*args)
        try:
            if entry.calls == 1:  # numba compiles (or loads from its cache) each kernel now
                t = time.perf_counter()
                outs = entry.plan.replay(arrays)
                entry.times["first run"] = time.perf_counter() - t
            else:
                outs = entry.plan.replay(arrays)
        except PlanShapeError as e:
            log.info("%s: compiling again", e)
            if self.verbose:
                print(f"tds.compile: {e}: compiling again")
            del self.plans[key]
            entry = self._compile(key, args)
            outs = entry.plan.replay(arrays)
        ts = [Tensor._wrap(o) for o in outs]
        return ts[0] if len(ts) == 1 else tuple(ts)

    def _compile(self, key: tuple, args) -> Entry:
        if self.plans:
            msg = "compiling a new plan: " + _key_change(self.last.key if self.last else
                                                         next(iter(self.plans)), key)
            log.info(msg)
            if self.verbose:
                print("tds.compile: " + msg)
        t0 = time.perf_counter()
        mode = ("train" if self.fn.training else "eval") if self.is_model else None
        graph = trace(self.fn, *args, mode=mode)
        t1 = time.perf_counter()
        counts = [("traced", len(graph.nodes), len(graph.op_nodes()))]
        g = graph
        for p in self.passes:
            if p == "fuse":
                continue
            f = PASSES[p] if isinstance(p, str) else p
            g = f(g).check()
            counts.append((p if isinstance(p, str) else getattr(p, "__name__", "pass"),
                           len(g.nodes), len(g.op_nodes())))
        t2 = time.perf_counter()
        generate = "fuse" in self.passes
        fusion = fuse(g) if generate else Fusion([], [("node", n.id) for n in g.nodes], {}, {})
        written = codegen.stats["written"]
        from .cuda_plan import device_of
        plan = build_plan(g, fusion, device=device_of(g, _arrays(args)))
        t3 = time.perf_counter()
        entry = Entry(key, graph, g, plan, counts,
                      {"trace": t1 - t0, "passes": t2 - t1, "codegen": t3 - t2},
                      codegen.stats["written"] - written)
        self.plans[key] = entry
        if self.verbose:
            print(f"tds.compile: {len(graph.op_nodes())} ops -> {len(plan.kernels)} generated "
                  f"loops + {sum(plan.fallback.values())} ops by their forward, in "
                  f"{sum(entry.times.values()):.2f} s")
        return entry

    # ---- explaining ------------------------------------------------------------------------------
    def explain(self, file=None) -> str:
        """What compiling did, for the most recent plan: node counts before and after each pass,
        the fused groups (and one kernel's source), why neighbouring ops were not fused, kernel
        launches per step eager against compiled, compile times. Printed and returned."""
        from .explain import explain

        text = explain(self)
        print(text, file=file)
        return text


def _key_change(old: tuple, new: tuple) -> str:
    names = ("input shapes and dtypes", "which inputs require grad", "module training flags")
    parts = []
    for name, a, b in zip(names, old, new):
        if a != b:
            if name.startswith("input"):
                a = ", ".join(f"{fmt_shape(s)} {d}" for s, d in a)
                b = ", ".join(f"{fmt_shape(s)} {d}" for s, d in b)
            elif name.startswith("module"):
                a = "train" if all(a) else "eval" if not any(a) else "mixed"
                b = "train" if all(b) else "eval" if not any(b) else "mixed"
            parts.append(f"{name} changed: {a} -> {b}")
    return "; ".join(parts)


def compile(fn_or_model: Callable, verbose: bool = False,  # tds.compile (shadows the builtin)
            passes: Sequence | None = None) -> Compiled:
    """What `tds.compile` does (tinygrad_ds/compile/__init__.py documents it; it loads this
    module on the first call, so that importing the library does not)."""
    return Compiled(fn_or_model, verbose=verbose, passes=passes)
