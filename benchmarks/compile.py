"""tds.compile against eager execution: training steps, and compile time cold and warm.

    python benchmarks/compile.py                 # the table, appended to RESULTS.md
    python benchmarks/compile.py --rounds 1 --no-append

Rows (float32, SGD with momentum 0.9 and weight decay 5e-4, cross-entropy):
- MLP 784-256-256-10 training step at batch 32 (target: compiled >= 3x eager);
- ResNet-20 training step at batch 128 (target: compiled >= 1.8x eager);
- compile time of each step: cold (an empty kernel cache: every kernel generated and compiled
  by numba) and warm (a second process with that cache); each is the first call of the
  compiled step (trace, passes, code generation, kernel compile or load, one step).
Every measurement runs in a fresh process; eager and compiled alternate, --rounds times (the
machine is shared: interleaving spreads the noise over both). Each figure is the median step of
a process's timed steps after warm-up; the row gives the median over rounds and every round.
PyTorch runs only if importable, in a process of its own. The load average is reported.
--blas-threads sets OPENBLAS_NUM_THREADS/OMP_NUM_THREADS for every process (default: unset).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import cpu_model, report  # benchmarks/machine.py (this folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent

STEP = r"""
import json, sys, time
import numpy as np
import tinygrad_ds as tds
import tinygrad_ds.functional as F
from tinygrad_ds import nn, optim
from tinygrad_ds.nn.models import resnet20
which, mode, batch, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
tds.manual_seed(0)
if which == "mlp":
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                          nn.Linear(256, 10))
    shape = (batch, 784)
else:
    model = resnet20()
    shape = (batch, 3, 32, 32)
opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
rng = np.random.default_rng(0)
x = tds.Tensor(rng.standard_normal(shape).astype(np.float32))
y = tds.Tensor(rng.integers(0, 10, batch))
def step(x, y):
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
    return loss
run = tds.compile(step) if mode == "compiled" else step
t = time.perf_counter(); run(x, y); first = time.perf_counter() - t
for _ in range(2):
    run(x, y)
times = []
for _ in range(steps):
    t = time.perf_counter(); run(x, y); times.append(time.perf_counter() - t)
out = {"ms": sorted(times)[len(times) // 2] * 1000,
       "first_s": first}
if mode == "compiled":
    e = run.last
    out.update(eager_ops=len(e.graph.op_nodes()), kernels=len(e.plan.kernels),
               fallback=sum(e.plan.fallback.values()), written=e.kernels_written)
print(json.dumps(out))
"""

TORCH = r"""
import json, sys, time
import torch
which, batch, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
nn = torch.nn
if which == "mlp":
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                          nn.Linear(256, 10)); shape = (batch, 784)
else:
    print(json.dumps(None)); sys.exit()
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
x = torch.randn(shape); y = torch.randint(0, 10, (batch,))
def step():
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
for _ in range(3): step()
times = []
for _ in range(steps):
    t = time.perf_counter(); step(); times.append(time.perf_counter() - t)
print(json.dumps(sorted(times)[len(times) // 2] * 1000))
"""


def run(code: str, *args: str, env: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})),
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _less(first: float, step: float) -> str:
    """A first call's time without one step; '-' when noise makes the step the longer."""
    return f"{first - step:.1f} s" if first > step else "-"


def has_torch() -> bool:
    return subprocess.run([sys.executable, "-c", "import torch"], capture_output=True,
                          check=False).returncode == 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="eager/compiled alternations")
    ap.add_argument("--blas-threads", type=int, default=None)
    ap.add_argument("--only", choices=["mlp", "resnet20"], default=None)
    ap.add_argument("--no-append", action="store_true", help="print only")
    args = ap.parse_args()
    env = {}
    if args.blas_threads:
        env = {"OPENBLAS_NUM_THREADS": str(args.blas_threads),
               "OMP_NUM_THREADS": str(args.blas_threads)}
    load_start = os.getloadavg()
    cache = tempfile.mkdtemp(prefix="tds-bench-cache-")
    cases = [("mlp", "MLP 784-256-256-10 training step", 32, 50, 3.0),
             ("resnet20", "ResNet-20 training step", 128, 3, 1.8)]
    rows = [("| row (float32) | eager ms | compiled ms | compiled / eager speed | target | "
             "each round (eager / compiled ms) | PyTorch ms |"),
            "|---|---:|---:|---:|---:|---|---:|"]
    compile_rows = []
    torch_ok = has_torch()
    try:
        for which, label, batch, steps, target in cases:
            if args.only and which != args.only:
                continue
            cenv = dict(env, TDS_CACHE=os.path.join(cache, which))
            cold = run(STEP, which, "compiled", str(batch), "1", env=cenv)
            warm = run(STEP, which, "compiled", str(batch), "1", env=cenv)
            step_s = warm["ms"] / 1000  # one replayed step, taken out of the first call
            compile_rows.append(
                f"| {label}, batch {batch} | {cold['first_s']:.1f} s ({cold['written']} kernels "
                f"compiled) | {warm['first_s']:.1f} s ({warm['written']} compiled) | "
                f"{_less(cold['first_s'], step_s)} / {_less(warm['first_s'], step_s)} | "
                f"{warm['eager_ops']} ops -> {warm['kernels']} generated loops + "
                f"{warm['fallback']} ops by their forward |")
            print(compile_rows[-1], flush=True)
            eager, comp = [], []
            for r in range(args.rounds):
                eager.append(run(STEP, which, "eager", str(batch), str(steps), env=env)["ms"])
                comp.append(run(STEP, which, "compiled", str(batch), str(steps), env=cenv)["ms"])
                print(f"{which} round {r + 1}: eager {eager[-1]:.1f} ms, compiled "
                      f"{comp[-1]:.1f} ms", flush=True)
            torch_ms = run(TORCH, which, str(batch), str(steps), env=env) if torch_ok else None
            e, c = statistics.median(eager), statistics.median(comp)
            rounds = ", ".join(f"{a:.1f} / {b:.1f}" for a, b in zip(eager, comp))
            rows.append(f"| {label}, batch {batch} | {e:.1f} | {c:.1f} | {e / c:.2f}x | "
                        f">= {target}x | {rounds}"
                        + f" | {f'{torch_ms:.1f}' if torch_ms else 'not importable'} |")
            print(rows[-1], flush=True)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    load_end = os.getloadavg()
    threads = args.blas_threads or "library default"
    head = (f"\n### tds.compile: {datetime.datetime.now():%Y-%m-%d %H:%M}, {cpu_model()} "
            f"({os.cpu_count()} cores), BLAS threads {threads}\n\n"
            f"`python benchmarks/compile.py --rounds {args.rounds}"
            + (f" --blas-threads {args.blas_threads}" if args.blas_threads else "")
            + (f" --only {args.only}" if args.only else "") + "`\n\n"
            f"Load average (1/5/15 min) {'/'.join(f'{v:.1f}' for v in load_start)} at the "
            f"start, {'/'.join(f'{v:.1f}' for v in load_end)} at the end (the machine is shared; "
            "a load above the core count makes every figure noisy).\n\n")
    table = head + "\n".join(rows) + "\n\n" + \
        "| first call (compile + one step) | cold: empty kernel cache | warm: second process " \
        "| cold / warm without the step | plan |\n|---|---:|---:|---:|---|\n" + \
        "\n".join(compile_rows) + "\n"
    report(table, append=not args.no_append)


if __name__ == "__main__":
    main()
