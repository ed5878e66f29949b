"""Where a compiled step's time goes: each step of its plan timed over a few replays.

`Compiled.profile(*example)` replays the most recent plan on `example` a few times with a clock
around every step (a generated loop, or an op run by its own forward), sums the times by op, and
prints them against the whole call and one eager call of the original function. What the calls
change (parameters, optimizer state, batch-norm statistics, .grad, the random generator) is put
back afterwards, as for explain(x, y).

The clock reads add about a microsecond per step, so the steps' sum slightly overstates them on
plans of many tiny steps; "between the steps" is the replay's own Python (gathering arguments,
dropping dead values) and whatever the clocks missed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from statistics import median

from .memory import _KeptState


@dataclass
class Profile:
    """Per step of the call (medians over the repeats, in ms): the whole compiled call, one
    eager call, and rows (what, calls per step, ms per step) sorted by time."""

    call_ms: float
    eager_ms: float
    rows: list[tuple[str, int, float]] = field(default_factory=list)

    def table(self, title: str) -> str:
        share = max(self.call_ms, 1e-9)
        lines = [title, f"  compiled call {self.call_ms:.2f} ms; eager call {self.eager_ms:.2f} ms "
                 f"({self.eager_ms / share:.2f}x the compiled one)",
                 f"  {'op (run by its forward), or the generated loops':<48} {'calls':>6} "
                 f"{'ms':>9} {'share':>7}"]
        for what, calls, ms in self.rows:
            lines.append(f"  {what:<48} {calls:>6} {ms:>9.2f} {ms / share:>7.1%}")
        rest = self.call_ms - sum(ms for _, _, ms in self.rows)
        lines.append(f"  {'between the steps (the replay loop in Python)':<48} {'':>6} "
                     f"{rest:>9.2f} {rest / share:>7.1%}")
        return "\n".join(lines)


def _label(step) -> str:
    if step[0] == "kernel":
        return "generated loops (fused elementwise work)"
    return getattr(step[1], "name", None) or getattr(step[1], "__name__", "op")


class _Timed:
    """A plan step's callable (a kernel, or an op's forward) with a clock around it."""

    def __init__(self, fn, key: str, totals: dict):
        self.fn, self.key, self.totals = fn, key, totals
        self.__name__ = getattr(fn, "__name__", key)  # (a failing kernel's error names it)

    def __call__(self, *args):
        t = time.perf_counter()
        try:
            return self.fn(*args)
        finally:
            self.totals[self.key] = self.totals.get(self.key, 0.0) + time.perf_counter() - t

    def forward(self, ctx, *args, **attrs):
        t = time.perf_counter()
        try:
            return self.fn.forward(ctx, *args, **attrs)
        finally:
            self.totals[self.key] = self.totals.get(self.key, 0.0) + time.perf_counter() - t


def profile(compiled, args: tuple, repeats: int = 3) -> Profile:
    """Times `repeats` replays of compiled.last's plan on args, step by step, and as many eager
    calls of compiled.fn (after one of each unmeasured, so that nothing compiles while timed)."""
    plan = compiled.last.plan
    with _KeptState(plan):
        compiled.fn(*args)
    eager = []
    for _ in range(repeats):
        with _KeptState(plan):
            t = time.perf_counter()
            compiled.fn(*args)
            eager.append(time.perf_counter() - t)
    steps, counts, totals = plan.steps, {}, {}
    for step in steps:
        key = _label(step)
        counts[key] = counts.get(key, 0) + 1
    plan.steps = [(s[0], _Timed(s[1], _label(s), totals)) + tuple(s[2:]) for s in steps]
    runs: list[dict] = []
    calls = []
    try:
        for r in range(repeats + 1):
            totals.clear()
            with _KeptState(plan):
                t = time.perf_counter()
                compiled(*args)
                took = time.perf_counter() - t
            if r:  # the first replay is a warm-up
                calls.append(took)
                runs.append(dict(totals))
    finally:
        plan.steps = steps

    rows = [(k, counts[k], 1e3 * median([run.get(k, 0.0) for run in runs])) for k in counts
            if any(k in run for run in runs)]
    rows.sort(key=lambda row: -row[2])
    return Profile(1e3 * median(calls), 1e3 * median(eager), rows)
