"""compiled.explain(): what compiling did, as text a student can read."""
from __future__ import annotations

from collections import Counter

from ..errors import fmt_shape
from .fusion import ELEMENTWISE

VIEWS = ("reshape", "permute", "expand", "getitem", "contiguous")


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def memory_lines(plan, measured: tuple[int, int] | None) -> list[str]:
    """The memory paragraph: the arena, the planned peak, and the measured peaks if given."""
    if plan.planned_peak_bytes() is None:
        return [(f"Memory: the plan keeps {_mib(plan.owned_bytes())} of loop outputs between "
                "calls; buffers are shared by liveness after the first replay (not run yet, "
                "or its values could not be located)")]
    loops = [slot for s in plan.steps if s[0] == "kernel" for slot, *_ in s[3]]
    shared = [s for s in loops if s in plan.buffer_of]
    in_place = sum(1 for k, s in enumerate(plan.steps) if s[0] == "kernel"
                   for slot, *_ in s[3] if slot in plan.buffer_of
                   and any(plan.buffer_of.get(i) == plan.buffer_of[slot] for i in s[2]))
    lines = [(f"Memory: {len(shared)} of {len(loops)} loop outputs live in an arena of "
             f"{len(plan.arena)} shared buffers ({_mib(plan.owned_bytes())}, kept between "
             f"calls; {in_place} loops write over an operand that dies there; the others "
             "leave the step (outputs, .grad, values kept for a backward, or views of "
             "them) and get memory of their own)"),
             (f"  planned peak {_mib(plan.planned_peak_bytes())}: the arena plus the values "
             "the ops run by their forward make, each from its step to its last reader "
             "(scratch memory inside an op not counted)")]
    if measured is None:
        lines.append("  measured peaks: pass example inputs, explain(x, y), to measure one "
                     "eager call against one compiled call (tracemalloc; state put back)")
    else:
        eager, comp = measured
        lines.append(f"  measured peak of one call (tracemalloc, numpy's allocations): eager "
                     f"{_mib(eager)}, compiled {_mib(comp)} = {comp / max(eager, 1):.2f}x eager "
                     "(with what its plans hold between calls)")
    return lines


def explain(compiled, measured: tuple[int, int] | None = None) -> str:
    e = compiled.last or (next(iter(compiled.plans.values())) if compiled.plans else None)
    name = getattr(compiled.fn, "__name__", type(compiled.fn).__name__)
    if e is None:
        return f"tds.compile({name}): not called yet (it compiles on the first call)"
    g, plan = e.optimized, e.plan
    nodes = g.nodes
    shapes = ", ".join(f"{fmt_shape(s)} {d}" for s, d in e.key[0])
    lines = [f"tds.compile({name}): {len(compiled.plans)} plan(s); this one for inputs {shapes}"]
    lines.append("")
    lines.append("Passes (nodes / ops after each):")
    for p, nn_, no in e.counts:
        lines.append(f"  {p:<16} {nn_:>6} / {no:<6}")
    groups = plan.fusion.groups
    n_fused = sum(len(k.members) for k in plan.kernels)
    n_fallback = sum(plan.fallback.values())
    eager = len(e.graph.op_nodes())
    views = sum(c for op, c in plan.fallback.items() if op in VIEWS)
    lines.append("")
    lines.append(f"Kernel launches per step: eager {eager} ops; compiled {len(plan.kernels)} "
                 f"generated loops + {n_fallback} ops by their own forward "
                 f"({views} of them views: reshape/permute/expand, no arithmetic)")
    if getattr(plan, "launches", None) is not None:  # a plan on the GPU (cuda_plan.py)
        lines.append(f"  on the GPU the last replay launched {plan.launches} kernels (a generated "
                     "loop is one launch; an op by its own forward one or more)")
    lines += memory_lines(plan, measured)
    lines.append(f"Fused groups: {len(groups)}, covering {n_fused} graph nodes "
                 f"({len({k.code for k in plan.kernels})} distinct kernels)")
    for k in sorted(plan.kernels, key=lambda k: -len(k.members))[:8]:
        ops = Counter(nodes[m].op for m in k.members)
        lines.append(f"  {k.name:<40} {len(k.members):>3} nodes  "
                     + ", ".join(f"{op} x{c}" if c > 1 else op for op, c in ops.items()))
    if len(plan.kernels) > 8:
        lines.append(f"  ... and {len(plan.kernels) - 8} more")
    if plan.kernels:
        k = max(plan.kernels, key=lambda k: len(k.members))
        lines.append("")
        lines.append("Source of the largest generated kernel:")
        lines += ["  " + s for s in (k.header + k.code).rstrip().splitlines()]
    lines.append("")
    lines.append("Ops run by their own forward (no generated code for them):")
    lines.append("  " + ", ".join(f"{op} x{c}" for op, c in
                                 sorted(plan.fallback.items(), key=lambda t: -t[1])))
    left = [(i, why) for i, why in plan.fusion.reasons.items() if i < len(nodes)
            and nodes[i].op in ELEMENTWISE]
    if left:
        lines.append("Why neighbouring elementwise ops were not fused (up to 8):")
        for i, why in left[:8]:
            lines.append(f"  #{i} {nodes[i].op} {fmt_shape(nodes[i].shape)}: {why}")
        lines.append(f"  ({len(left)} such ops in all)")
    lines.append("Non-elementwise ops (matmul, convolution, reductions, norms) end a group: "
                 "a loop is generated only for elementwise work.")
    lines += _backward_lines(compiled, e)
    t = e.times
    lines.append("")
    lines.append(
        f"Compile time: trace {t.get('trace', 0):.2f} s, passes {t.get('passes', 0):.2f} s, "
        f"code generation {t.get('codegen', 0):.2f} s, first run (numba compiles or loads "
        f"each kernel) {t.get('first run', 0):.2f} s; total {sum(t.values()):.2f} s. "
        f"{e.kernels_written} kernel source(s) new to the cache "
        f"({'cold' if e.kernels_written else 'warm'}: the other "
        f"{len(plan.kernels) - e.kernels_written} loops found theirs on disk or in this process; "
        "the first run includes one step)")
    lines.append(f"Calls of this plan: {e.calls}")
    return "\n".join(lines)


def _backward_lines(compiled, e) -> list[str]:
    """A compiled model called with gradients on: what loss.backward() runs."""
    if not compiled.is_model or not e.key[3]:
        return []
    if e.backward is None:
        return ["", "Backward: not compiled (" + e.why_not_backward + "); the optimised "
                "forward runs op by op, recording the tape for loss.backward()"]
    b = e.backward
    plan = b.plan
    saved = len(e.plan.outputs) - e.run.split.n_outputs
    lines = ["", (f"Backward: compiled. The forward plan also returns the {saved} values the "
             "backward reads; the tape gets one node, whose backward replays a plan of "
             f"{len(b.graph.op_nodes())} ops -> {len(plan.kernels)} generated loops + "
             f"{sum(plan.fallback.values())} ops by their own forward")]
    lines.append("  ops after each pass: " + ", ".join(f"{p} {no}" for p, _, no in b.counts))
    lines.append(f"  compile: passes {b.times.get('passes', 0):.2f} s, code generation "
                 f"{b.times.get('codegen', 0):.2f} s ({b.kernels_written} kernel source(s) "
                 "new to the cache)")
    if plan.planned_peak_bytes() is not None:
        lines.append(f"  memory: arena {_mib(plan.owned_bytes())} in {len(plan.arena)} buffers, "
                     f"planned peak {_mib(plan.planned_peak_bytes())}")
    return lines
