"""tds.compile against eager execution: training steps, and compile time cold and warm.

    python benchmarks/compile.py                 # the table, appended to RESULTS.md
    python benchmarks/compile.py --rounds 1 --no-append

Rows (float32, SGD with momentum 0.9 and weight decay 5e-4, cross-entropy):
- MLP 784-256-256-10 training step at batch 32 (target: compiled >= 3x eager);
- ResNet-20 training step at batch 128 (targets: compiled >= 1.8x eager, >= 0.75x PyTorch
  NCHW; also against PyTorch channels_last);
- ResNet-20 inference at batch 128, eval mode without the tape (target: >= 0.75x PyTorch NCHW);
- the peak memory of one ResNet-20 training step, eager and compiled (compile.memory.measure);
- compile time of each step: cold (an empty kernel cache: every kernel generated and compiled
  by numba) and warm (a second process with that cache); each is the first call of the
  compiled step (trace, passes, code generation, kernel compile or load, one step).
Every measurement runs in a fresh process; eager and compiled alternate, --rounds times (the
machine is shared: interleaving spreads the noise over both). Each figure is the median step of
a process's timed steps after warm-up; the row gives the median over rounds and every round.
PyTorch (the same models, NCHW and channels_last) runs only if importable, each in a process
of its own, alternating with ours. The load average is reported. --threads N sets every
library's thread count (default: each library's own: cores for PyTorch and tinygrad_ds).
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
else:  # resnet20, resnet20-infer
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
if which.endswith("infer"):  # inference: eval mode, no tape
    model.eval()
    fn = tds.compile(model) if mode == "compiled" else model
    def run(x, y):
        with tds.no_grad():
            return fn(x)
else:
    run = tds.compile(step) if mode == "compiled" else step
t = time.perf_counter(); run(x, y); first = time.perf_counter() - t
for _ in range(2):
    run(x, y)
times = []
for _ in range(steps):
    t = time.perf_counter(); run(x, y); times.append(time.perf_counter() - t)
out = {"ms": sorted(times)[len(times) // 2] * 1000,
       "first_s": first, "threads": tds.get_num_threads()}
if mode == "compiled" and which == "resnet20":  # peak memory of one step, eager and compiled
    from tinygrad_ds.compile import memory
    out["peak_eager"], out["peak_compiled"] = memory.measure(run, (x, y))
if mode == "compiled":
    e = (fn if which.endswith("infer") else run).last
    out.update(eager_ops=len(e.graph.op_nodes()), kernels=len(e.plan.kernels),
               fallback=sum(e.plan.fallback.values()), written=e.kernels_written)
print(json.dumps(out))
"""

TORCH = r"""
import json, sys, time
import torch
which, batch, steps, layout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
threads = int(sys.argv[5]) if len(sys.argv) > 5 else 0
if threads:
    torch.set_num_threads(threads)
torch.manual_seed(0)
nn = torch.nn
if which == "mlp":
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                          nn.Linear(256, 10)); shape = (batch, 784)
else:  # ResNet-20 as tinygrad_ds.nn.models.resnet20 (benchmarks/torch_models.py)
    sys.path.insert(0, "benchmarks")
    from torch_models import resnet20
    model, shape = resnet20(), (batch, 3, 32, 32)
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
x = torch.randn(shape); y = torch.randint(0, 10, (batch,))
if layout == "channels_last":
    model = model.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
def step():
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
def infer():
    with torch.no_grad():
        model(x)
if which.endswith("infer"):
    model.eval(); step = infer
for _ in range(3): step()
times = []
for _ in range(steps):
    t = time.perf_counter(); step(); times.append(time.perf_counter() - t)
print(json.dumps({"ms": sorted(times)[len(times) // 2] * 1000,
                  "threads": torch.get_num_threads(), "version": torch.__version__}))
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


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def _ms(v: float | None) -> str:
    return f"{v:.1f}" if v else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="alternations of every contender")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for everyone: OPENBLAS/OMP_NUM_THREADS, TDS_NUM_THREADS and "
                    "torch.set_num_threads [default: each library's own]")
    ap.add_argument("--only", choices=["mlp", "resnet20", "resnet20-infer"], default=None)
    ap.add_argument("--no-append", action="store_true", help="print only")
    args = ap.parse_args()
    env = {}
    if args.threads:
        env = {k: str(args.threads) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                              "TDS_NUM_THREADS")}
    load_start = os.getloadavg()
    cache = tempfile.mkdtemp(prefix="tds-bench-cache-")
    # (which, label, batch, steps, target over eager, target over PyTorch NCHW)
    cases = [("mlp", "MLP 784-256-256-10 training step", 32, 50, 3.0, None),
             ("resnet20", "ResNet-20 training step", 128, 3, 1.8, 0.75),
             ("resnet20-infer", "ResNet-20 inference (eval, no tape)", 128, 5, None, 0.75)]
    rows = [("| row (float32) | eager ms | compiled ms | compiled / eager | target | "
             "PyTorch NCHW ms | compiled / PyTorch NCHW | target | PyTorch channels_last ms | "
             "compiled / channels_last | each round (eager / compiled / NCHW / channels_last "
             "ms) |"),
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    compile_rows = []
    peaks = None
    torch_ok = has_torch()
    threads_seen = {}
    try:
        for which, label, batch, steps, target, torch_target in cases:
            if args.only and which != args.only:
                continue
            cenv = dict(env, TDS_CACHE=os.path.join(cache, which))
            if not which.endswith("infer"):
                cold = run(STEP, which, "compiled", str(batch), "1", env=cenv)
                warm = run(STEP, which, "compiled", str(batch), "1", env=cenv)
                step_s = warm["ms"] / 1000  # one replayed step, taken out of the first call
                compile_rows.append(
                    f"| {label}, batch {batch} | {cold['first_s']:.1f} s ({cold['written']} "
                    f"kernels compiled) | {warm['first_s']:.1f} s ({warm['written']} compiled) "
                    f"| {_less(cold['first_s'], step_s)} / {_less(warm['first_s'], step_s)} | "
                    f"{warm['eager_ops']} ops -> {warm['kernels']} generated loops + "
                    f"{warm['fallback']} ops by their forward |")
                print(compile_rows[-1], flush=True)
            got: dict[str, list] = {"eager": [], "compiled": [], "nchw": [], "cl": []}
            for r in range(args.rounds):
                e = run(STEP, which, "eager", str(batch), str(steps), env=env)
                c = run(STEP, which, "compiled", str(batch), str(steps), env=cenv)
                got["eager"].append(e["ms"])
                got["compiled"].append(c["ms"])
                if "peak_eager" in c:
                    peaks = (c["peak_eager"], c["peak_compiled"])
                threads_seen["tinygrad_ds"] = c["threads"]
                if torch_ok:
                    for layout, key in (("nchw", "nchw"), ("channels_last", "cl")):
                        if which == "mlp" and key == "cl":
                            continue
                        t = run(TORCH, which, str(batch), str(steps), layout,
                                str(args.threads or 0), env=env)
                        got[key].append(t["ms"])
                        threads_seen["PyTorch " + t["version"]] = t["threads"]
                print(f"{which} round {r + 1}: " + ", ".join(
                    f"{k} {v[-1]:.1f} ms" for k, v in got.items() if v), flush=True)
            med = {k: statistics.median(v) if v else None for k, v in got.items()}
            rounds = ", ".join(" / ".join(_ms(got[k][i]) if i < len(got[k]) else "-"
                                          for k in ("eager", "compiled", "nchw", "cl"))
                               for i in range(args.rounds))
            rows.append(
                f"| {label}, batch {batch} | {_ms(med['eager'])} | {_ms(med['compiled'])} | "
                f"{_ratio(med['eager'], med['compiled'])} | "
                f"{f'>= {target}x' if target else '-'} | "
                f"{_ms(med['nchw']) if torch_ok else 'not importable'} | "
                f"{_ratio(med['nchw'], med['compiled'])} | "
                f"{f'>= {torch_target}x' if torch_target else '-'} | {_ms(med['cl'])} | "
                f"{_ratio(med['cl'], med['compiled'])} | {rounds} |")
            print(rows[-1], flush=True)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    load_end = os.getloadavg()
    head = (f"\n### tds.compile: {datetime.datetime.now():%Y-%m-%d %H:%M}, {cpu_model()} "
            f"({os.cpu_count()} cores)\n\n"
            f"`python benchmarks/compile.py --rounds {args.rounds}"
            + (f" --threads {args.threads}" if args.threads else "")
            + (f" --only {args.only}" if args.only else "") + "`\n\n"
            "Threads: " + ", ".join(f"{k} {v}" for k, v in threads_seen.items())
            + (" (set by --threads)" if args.threads else " (each library's default)")
            + ". A ratio above 1 means compiled tinygrad_ds is faster.\n\n"
            f"Load average (1/5/15 min) {'/'.join(f'{v:.1f}' for v in load_start)} at the "
            f"start, {'/'.join(f'{v:.1f}' for v in load_end)} at the end (the machine is shared; "
            "a load above the core count makes every figure noisy).\n\n")
    if peaks:
        rows.append("")
        rows.append(f"Peak memory of one ResNet-20 training step (tracemalloc, numpy's "
                    f"allocations; the compiled figure includes the plan's arena): eager "
                    f"{peaks[0] / 2**20:.0f} MiB, compiled {peaks[1] / 2**20:.0f} MiB "
                    f"(target: no higher than eager's).")
    table = head + "\n".join(rows) + "\n\n" + \
        "| first call (compile + one step) | cold: empty kernel cache | warm: second process " \
        "| cold / warm without the step | plan |\n|---|---:|---:|---:|---|\n" + \
        "\n".join(compile_rows) + "\n"
    report(table, append=not args.no_append)


if __name__ == "__main__":
    main()
