"""Page faults per ResNet-20 training step with malloc keeping freed memory and without.

    python benchmarks/malloc.py              # the table, appended to RESULTS.md
    python benchmarks/malloc.py --rounds 6   # more alternations on a noisy machine

tinygrad_ds/backend/cpu/malloc.py sets glibc's M_MMAP_THRESHOLD and M_TRIM_THRESHOLD when the
CPU backend is imported, so that the arrays a step frees are reused by the next step instead of
coming back as fresh, page-faulting memory. This measures what that buys: ResNet-20 at batch 128,
eager and compiled, each in a process of its own with TDS_MALLOC_KEEP=1 (the default) and =0
(malloc as glibc sets it), alternating, so that a neighbour's load falls on both alike. A row
gives the minor page faults of one step (getrusage) and the median step time; the pairs' column
is the median over rounds of kept / not kept within a round.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import cpu_model, report

ROOT = Path(__file__).resolve().parent.parent

STEP = r"""
import json, resource, sys, time
import numpy as np
import tinygrad_ds as tds
import tinygrad_ds.functional as F
from tinygrad_ds import optim
from tinygrad_ds.backend.cpu import malloc
from tinygrad_ds.nn.models import resnet20
mode, steps = sys.argv[1], int(sys.argv[2])
tds.manual_seed(0)
model = resnet20()
opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
rng = np.random.default_rng(0)
x = tds.Tensor(rng.standard_normal((128, 3, 32, 32)).astype(np.float32))
y = tds.Tensor(rng.integers(0, 10, 128))
def step(x, y):
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
    return loss
run = tds.compile(step) if mode == "compiled" else step
for _ in range(3):
    run(x, y)
times = []
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(steps):
    t = time.perf_counter(); run(x, y); times.append(time.perf_counter() - t)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
print(json.dumps({"ms": sorted(times)[len(times) // 2] * 1000, "faults": faults / steps,
                  "kept": malloc._state["kept"]}))
"""


def run(mode: str, steps: int, keep: bool, cache: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TDS_MALLOC_KEEP="1" if keep else "0",
               TDS_CACHE=cache)
    out = subprocess.run([sys.executable, "-c", STEP, mode, str(steps)], cwd=ROOT, env=env,
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=4, help="alternations of kept and not kept")
    ap.add_argument("--steps", type=int, default=8, help="timed steps per process")
    ap.add_argument("--no-append", action="store_true", help="print only")
    args = ap.parse_args()
    cache = tempfile.mkdtemp(prefix="tds-bench-cache-")
    load = os.getloadavg()
    rows = ["| ResNet-20 step, batch 128 | faults per step, glibc's malloc | faults per step, "
            "kept | ms, glibc's malloc | ms, kept | kept / glibc (median of the rounds' "
            "ratios) | each round (glibc / kept ms) |", "|---|---:|---:|---:|---:|---:|---|"]
    for mode in ("eager", "compiled"):
        run(mode, 1, True, cache)  # compile (and cache) the kernels outside the timed rounds
        got: dict[bool, list] = {False: [], True: []}
        for r in range(args.rounds):
            for keep in ((False, True) if r % 2 == 0 else (True, False)):
                got[keep].append(run(mode, args.steps, keep, cache))
        if not all(g["kept"] for g in got[True]):
            sys.exit("malloc.py could not set malloc's thresholds here (not glibc?)")
        ms = {k: [g["ms"] for g in v] for k, v in got.items()}
        ratio = statistics.median(b / a for a, b in zip(ms[False], ms[True]))
        rows.append(
            f"| {mode} | {statistics.median(g['faults'] for g in got[False]):,.0f} | "
            f"{statistics.median(g['faults'] for g in got[True]):,.0f} | "
            f"{statistics.median(ms[False]):.0f} | {statistics.median(ms[True]):.0f} | "
            f"{ratio:.2f} | " + ", ".join(f"{a:.0f} / {b:.0f}" for a, b in
                                           zip(ms[False], ms[True])) + " |")
        print(rows[-1], flush=True)
    end = os.getloadavg()
    table = (f"\n## Page faults: malloc keeping freed memory ({datetime.date.today()}, "
             f"{cpu_model()}, `python benchmarks/malloc.py --rounds {args.rounds}`)\n\n"
             f"{args.rounds} alternating rounds of {args.steps} timed steps per process, "
             "tinygrad_ds on its default threads. Load average (1 min) "
             f"{load[0]:.1f} at the start, {end[0]:.1f} at the end.\n\n" + "\n".join(rows)
             + "\n")
    report(table, append=not args.no_append)


if __name__ == "__main__":
    main()
