"""The Graph as a program: what it costs. Eager training step before/after (interleaved A/B),
`import tinygrad_ds` time, trace times.

    python benchmarks/program.py --before f930a35     # A/B against that commit
    python benchmarks/program.py                      # this tree only

Rows:
- the eager ResNet-20 training step at batch 128 (forward, cross-entropy, backward, SGD with
  momentum and weight decay), median milliseconds of --steps timed steps after a warm-up, in a
  fresh process per measurement; with --before REV the same script runs in a checkout of REV,
  alternating with this tree's, --rounds times (the machine is shared: interleaving spreads the
  noise over both sides);
- `import tinygrad_ds` in a fresh process (median of 5);
- tracing ResNet-110's forward, and ResNet-20's whole training step (median of 3).
The table is printed and appended to benchmarks/RESULTS.md (unless --no-append).
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

from machine import cpu_model, report  # benchmarks/machine.py (this folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent

STEP = r"""
import json, sys, time
import numpy as np
import tinygrad_ds as tds
import tinygrad_ds.functional as F
from tinygrad_ds import optim
from tinygrad_ds.nn.models import resnet20
tds.manual_seed(0)
model = resnet20()
opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
rng = np.random.default_rng(0)
x = tds.Tensor(rng.standard_normal((128, 3, 32, 32)).astype(np.float32))
y = tds.Tensor(rng.integers(0, 10, 128))
def step():
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
step()
times = []
for _ in range(int(sys.argv[1])):
    t = time.perf_counter(); step(); times.append(time.perf_counter() - t)
print(json.dumps(sorted(times)[len(times) // 2] * 1000))
"""

IMPORT = "import time; t = time.perf_counter(); import tinygrad_ds; " \
         "print(time.perf_counter() - t)"

TRACE = r"""
import json, time
import numpy as np
import tinygrad_ds as tds
import tinygrad_ds.functional as F
from tinygrad_ds import optim
from tinygrad_ds.nn.models import resnet20, resnet110
def median(fn, n=3):
    ts = []
    for _ in range(n):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2]
m110 = resnet110()
fwd = median(lambda: tds.trace(m110, (1, 3, 32, 32)))
model = resnet20()
opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
def step(x, y):
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
    return loss
x0 = tds.zeros(128, 3, 32, 32); y0 = tds.Tensor(np.zeros(128, np.int64))
g = tds.trace(step, x0, y0)
st = median(lambda: tds.trace(step, x0, y0))
print(json.dumps({"resnet110_forward_s": fwd, "resnet20_step_s": st, "step_nodes": len(g.nodes)}))
"""


def run_in(tree: Path, code: str, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=tree, env=env, check=True,
                         capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", help="a git revision to compare the eager step against")
    ap.add_argument("--rounds", type=int, default=4, help="A/B rounds (each: before, after)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    ap.add_argument("--no-append", action="store_true", help="print only")
    args = ap.parse_args()

    rows: list[str] = []
    after_ms, before_ms = [], []
    tmp = None
    if args.before:
        tmp = tempfile.mkdtemp(prefix="tds-before-")
        subprocess.run(["git", "worktree", "add", "-q", "--detach", tmp, args.before], cwd=ROOT,
                       check=True)
    try:
        for r in range(args.rounds):
            if tmp:
                before_ms.append(float(run_in(Path(tmp), STEP, str(args.steps))))
            after_ms.append(float(run_in(ROOT, STEP, str(args.steps))))
            print(f"round {r + 1}: " + (f"before {before_ms[-1]:.0f} ms, " if tmp else "")
                  + f"after {after_ms[-1]:.0f} ms", flush=True)
        imports = [float(run_in(ROOT, IMPORT)) for _ in range(5)]
        imports_before = [float(run_in(Path(tmp), IMPORT)) for _ in range(5)] if tmp else []
    finally:
        if tmp:
            subprocess.run(["git", "worktree", "remove", "--force", tmp], cwd=ROOT, check=False)
    traced = json.loads(run_in(ROOT, TRACE))

    a = statistics.median(after_ms)
    rows.append("| what | this tree | " + (f"before ({args.before}) | after/before |"
                                           if tmp else ""))
    rows.append("|---|---|" + ("---|---|" if tmp else ""))
    if tmp:
        b = statistics.median(before_ms)
        rows.append(f"| eager ResNet-20 training step, batch 128 (median of {args.rounds} "
                    f"interleaved runs of {args.steps} steps) | {a:.0f} ms ({128e3 / a:.0f} img/s) "
                    f"| {b:.0f} ms ({128e3 / b:.0f} img/s) | {a / b:.3f} |")
        rows.append(f"| each run, ms | {', '.join(f'{v:.0f}' for v in after_ms)} | "
                    f"{', '.join(f'{v:.0f}' for v in before_ms)} | |")
        rows.append(f"| `import tinygrad_ds` (median of 5) | "
                    f"{statistics.median(imports):.3f} s | "
                    f"{statistics.median(imports_before):.3f} s | |")
    else:
        rows.append(f"| eager ResNet-20 training step, batch 128 | {a:.0f} ms |")
        rows.append(f"| `import tinygrad_ds` (median of 5) | {statistics.median(imports):.3f} s |")
    pad = " |" if tmp else ""
    rows.append(f"| trace ResNet-110 forward (median of 3) | "
                f"{traced['resnet110_forward_s']:.3f} s |" + (" |" + pad if tmp else ""))
    rows.append(f"| trace ResNet-20 training step, batch 128 ({traced['step_nodes']} nodes) | "
                f"{traced['resnet20_step_s']:.3f} s |" + (" |" + pad if tmp else ""))
    load = os.getloadavg()[0]
    head = (f"\n### Graph as a program: {datetime.date.today()}, {cpu_model()}, "
            f"load {load:.1f}\n\n`python benchmarks/program.py"
            + (f" --before {args.before} --rounds {args.rounds}" if tmp else "") + "`\n\n")
    table = head + "\n".join(rows) + "\n"
    report(table, append=not args.no_append)


if __name__ == "__main__":
    main()
