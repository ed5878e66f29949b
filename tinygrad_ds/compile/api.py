"""tds.compile: trace a model or a training step once per key, optimise it, replay the plan.

    step = tds.compile(train_step)      # forward, loss, backward, optimizer update: one plan
    loss = step(x, y)                   # first call with these shapes: trace, passes, kernels
    loss = step(x, y)                   # later calls: replay
    step.explain()                      # what each pass did, the fused loops, the costs

The key of a plan: the inputs' shapes and dtypes, which inputs require grad, the training
flags of the modules the function reaches, and (a model) whether its call records the tape. A
new key compiles a new plan (logged once, naming what changed); state whose shape changed since
compiling makes the plan compile again.

A model called with gradients on gets a forward plan that also returns the values its backward
reads, and a backward plan; its output carries one tape node that replays the backward plan
(autodiff.py). Buffers are shared by liveness after a plan's first replay (memory.py).
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
from . import autodiff, codegen
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
    # a compiled model called with gradients on: the backward's own entry (its graph is the
    # backward program), the tape node's needs, or why the backward is not compiled
    backward: Entry | None = None
    run: object = None
    why_not_backward: str = ""


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


def _device(args) -> str:
    """The device of the inputs ('cpu' for numpy arrays); an error when they are on two."""
    devices = sorted({a.device if isinstance(a, Tensor) else "cpu" for a in args})
    if len(devices) > 1:
        raise TdsError(f"compiled function: inputs on two devices, {devices[0]!r} and "
                       f"{devices[1]!r}; move them to one with .to(device)")
    return devices[0] if devices else "cpu"


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
        requires = tuple(bool(getattr(a, "requires_grad", False)) for a in args)
        # a model's forward records its backward when gradients are on and something needs one
        taped = self.is_model and autograd.is_grad_enabled() and (
            any(requires) or any(p.requires_grad for p in self.fn.parameters()))
        return (tuple((tuple(a.shape), str(a.dtype) if isinstance(a, np.ndarray) else
                       f"{a.dtype} on cuda") for a in arrays),  # a device: its own plan
                requires, tuple(m.training for m in self._module_list()), taped)

    def _check_parameters_on(self, device: str) -> None:
        """An error naming both devices when the inputs are on one device and the parameters
        of the modules the function reaches on another."""
        where = {str(getattr(p, "device", "cpu")) for m in self._module_list()
                 for p in m.parameters()}
        other = sorted(where - {device})
        if other:
            raise TdsError(f"compiled function: its inputs are on {device!r}, but the parameters "
                           f"of its model are on {other[0]!r}; move the model with "
                           f"model.to({device!r}) or the inputs with .to({other[0]!r})")

    # ---- calling ---------------------------------------------------------------------------------
    def __call__(self, *args):
        if autograd.op_hooks:
            # being traced (tds.trace, or another compiled function that calls this one): the
            # tracer records the function's own ops, which its compiler then optimises whole
            return self.fn(*args)
        arrays = _arrays(args)
        key = self._key(args, arrays)
        device = _device(args)
        entry = self.plans.get(key)
        if entry is None:  # (the device is part of the key: a plan per device)
            self._check_parameters_on(device)
            entry = self._compile(key, args)
        self.last = entry
        entry.calls += 1
        taped = key[3]
        if taped and entry.run is None:
            # a backward that could not be compiled (explain() says why): the optimised graph
            # runs op by op, recording the tape
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
            entry = self.last = self._compile(key, args)
            entry.calls += 1
            outs = entry.plan.replay(arrays)
        if taped:  # the output, with one tape node whose backward replays the backward plan
            return autodiff.record(entry.run, args, outs)
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
        sp, why = None, ""
        if key[3]:
            try:
                sp = autodiff.split(graph, key[1])
            except TdsError as e:  # the optimised graph runs op by op instead (explain says)
                why = str(e)
                log.info("tds.compile: the backward is not compiled: %s", why)
        times = {"trace": t1 - t0}
        if key[3]:
            times["derive backward"] = time.perf_counter() - t1
        from .cuda_plan import device_of

        device = device_of(graph, _arrays(args))
        entry = self._entry(key, graph, sp.forward if sp else graph, times, device)
        entry.why_not_backward = why
        if sp is not None:
            entry.backward = self._entry(key, sp.backward, sp.backward, {}, device)
            entry.run = autodiff.make_run(sp, entry.backward.plan, graph, len(args))
        self.plans[key] = entry
        if self.verbose:
            plan = entry.plan
            print(f"tds.compile: {len(graph.op_nodes())} ops -> {len(plan.kernels)} generated "
                  f"loops + {sum(plan.fallback.values())} ops by their forward, in "
                  f"{sum(entry.times.values()):.2f} s"
                  + (" (and its backward)" if entry.backward else ""))
        return entry

    def _entry(self, key: tuple, graph: Graph, g: Graph, times: dict, device: str) -> Entry:
        """The passes, fusion and plan of graph g (graph: as traced, for the report) on device
        ('cpu' or 'cuda')."""
        t1 = time.perf_counter()
        counts = [("traced", len(g.nodes), len(g.op_nodes()))]
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
        plan = build_plan(g, fusion, device=device)
        t3 = time.perf_counter()
        times.update({"passes": t2 - t1, "codegen": t3 - t2})
        return Entry(key, graph, g, plan, counts, times, codegen.stats["written"] - written)

    # ---- explaining ------------------------------------------------------------------------------
    def explain(self, *example, file=None) -> str:
        """What compiling did, for the most recent plan: node counts before and after each pass,
        the fused groups (and one kernel's source), why neighbouring ops were not fused, kernel
        launches per step eager against compiled, the arena and planned peak memory, compile
        times. Printed and returned.
        example: inputs to measure the peak memory of one eager call against one compiled call
        on (`compile.memory.measure`: what the calls change in the model and optimizer is put
        back afterwards)."""
        from .explain import explain
        from .memory import measure

        measured = None
        if example:
            self.last = self._plan_for("explain", example)
            measured = measure(self, example)
        text = explain(self, measured)
        print(text, file=file)
        return text

    def _plan_for(self, method: str, example: tuple) -> Entry:
        """The compiled entry for inputs `example`, or the error saying to call with them first."""
        entry = self.plans.get(self._key(example, _arrays(example)))
        if entry is None:
            raise TdsError(f"{method}(*example): no plan for inputs "
                           + ", ".join(f"{fmt_shape(a.shape)} {a.dtype}" for a in _arrays(example))
                           + " yet: call the compiled function with them first")
        return entry

    def profile(self, *example, repeats: int = 3, file=None):
        """Where a call's time goes: the plan for `example` replayed `repeats` times with a clock
        around each step (a generated loop, or an op run by its own forward), summed by op, against
        the whole call and one eager call of the original function (medians). What the calls
        change in the model and optimizer is put back afterwards. Printed; returns the
        `compile.profile.Profile`."""
        from .profile import profile

        if not example:
            raise TdsError("profile(*example): give the inputs to time a call on")
        self.last = self._plan_for("profile", example)
        result = profile(self, example, repeats)
        name = getattr(self.fn, "__name__", type(self.fn).__name__)
        print(result.table(f"tds.compile({name}).profile: time per call, median of {repeats}"),
              file=file)
        return result


def _key_change(old: tuple, new: tuple) -> str:
    names = ("input shapes and dtypes", "which inputs require grad", "module training flags",
             "gradients recorded")
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
