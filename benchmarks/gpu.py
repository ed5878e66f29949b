"""The GPU path against this machine's CPU: a ResNet-20 training step, the matmul, launches.

    python benchmarks/gpu.py              # on a machine with an NVIDIA GPU: table + RESULTS.md
    python benchmarks/gpu.py --quick      # fewer steps and matmul sizes (about a minute)
    python benchmarks/gpu.py --no-append  # print only

Rows (float32; SGD with momentum 0.9 and weight decay 5e-4; cross-entropy; 32x32 images):
- the ResNet-20 training step at batch 128: eager on this CPU, eager on 'cuda', tds.compile'd
  on 'cuda', and PyTorch on CUDA (in a process of its own, where importable): ms per step,
  images/s, speed over this CPU (target: >= 10x), compiled cuda over PyTorch (target: >= 0.3x),
  and kernel launches per step (tds.cuda.launch_stats());
- the float32 matmul n x n @ n x n: tds's tiled kernel against CuPy or PyTorch where importable.
Each figure is the median of the timed steps after warm-up steps (which include compiling).

Without a GPU it prints one line saying so and exits 0, appending nothing; numba's simulator
(NUMBA_ENABLE_CUDASIM=1) counts as no GPU, unless --simulator asks for a tiny run (a ResNet-8 of
width 4 on 4x4 images) that checks this script's code paths; its figures mean nothing and are
never appended.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from machine import cpu_model, report  # benchmarks/machine.py (this folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tinygrad_ds as tds  # noqa: E402
import tinygrad_ds.functional as F  # noqa: E402
from tinygrad_ds import optim  # noqa: E402
from tinygrad_ds.nn.models import resnet20, resnet_cifar  # noqa: E402

# PyTorch's ResNet-20 with tds's option-A shortcut (subsample, zero-pad the new channels)
TORCH = r"""
import json, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F
batch, size, warm, steps = (int(a) for a in sys.argv[1:5])
if not torch.cuda.is_available():
    print(json.dumps(None)); sys.exit()
class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False); self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); self.b2 = nn.BatchNorm2d(cout)
        self.stride, self.pad = stride, (cout - cin) // 2
    def forward(self, x):
        y = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
        s = x
        if self.stride != 1 or self.pad:
            s = F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(y + s)
layers, cin = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()], 16
for cout, stride in ((16, 1), (32, 2), (64, 2)):
    for k in range(3):
        layers.append(Block(cin, cout, stride if k == 0 else 1)); cin = cout
model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)).cuda()
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
x = torch.randn(batch, 3, size, size, device="cuda")
y = torch.randint(0, 10, (batch,), device="cuda")
def step():
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
    return loss.item()
for _ in range(warm): step()
times = []
for _ in range(steps):
    t = time.perf_counter(); step(); times.append(time.perf_counter() - t)
print(json.dumps(sorted(times)[len(times) // 2] * 1000))
"""


def no_gpu_reason() -> str | None:
    """None when a real GPU can be used; else why not."""
    if not tds.cuda.is_available():
        try:
            tds.cuda.require()
        except tds.TdsError as e:
            return str(e)
        return "no GPU"
    if tds.cuda.simulated():
        return "NUMBA_ENABLE_CUDASIM=1: numba's simulator stands in for a GPU"
    return None


def sync() -> None:
    if not tds.cuda.simulated():
        from numba import cuda
        cuda.synchronize()


def resnet_step(device: str, compiled: bool, batch: int, size: int, warm: int, steps: int,
                tiny: bool = False):
    """{ms, first_s, launches} of ResNet-20 SGD steps (the median of `steps` after `warm`);
    tiny: a ResNet-8 of width 4 instead (for the simulator)."""
    tds.manual_seed(0)
    model = (resnet_cifar(8, width=4) if tiny else resnet20()).to(device)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    rng = np.random.default_rng(0)
    x = tds.Tensor(rng.standard_normal((batch, 3, size, size)).astype(np.float32)).to(device)
    y = tds.Tensor(rng.integers(0, 10, batch)).to(device)

    def step(x, y):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    run = tds.compile(step) if compiled else step
    t = time.perf_counter()
    run(x, y).item()
    first = time.perf_counter() - t
    for _ in range(warm - 1):
        run(x, y).item()
    times, launches = [], 0
    for _ in range(steps):
        tds.cuda.reset_launch_stats()
        t = time.perf_counter()
        run(x, y)
        if device == "cuda":
            sync()
        times.append(time.perf_counter() - t)
        launches = tds.cuda.launch_stats()["launches"]
    return {"ms": statistics.median(times) * 1000, "first_s": first, "launches": launches}


def torch_step(batch: int, size: int, warm: int, steps: int) -> float | None:
    """PyTorch's ms per step on CUDA, in a process of its own; None where not importable."""
    proc = subprocess.run([sys.executable, "-c", TORCH, str(batch), str(size), str(warm),
                           str(steps)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def matmul_rows(sizes, sim: bool) -> list[str]:
    """tds's tiled matmul against CuPy or PyTorch (whichever imports), GFLOP/s."""
    from tinygrad_ds import backend

    tds.cuda.require()  # registers the cuda backend
    kernels = backend.get("cuda")
    lib = None
    if not sim:
        try:
            import cupy
            lib = ("CuPy", cupy.asarray, cupy.cuda.Device().synchronize)
        except Exception:
            try:
                import torch
                if torch.cuda.is_available():
                    lib = ("PyTorch", lambda a: torch.from_numpy(a).cuda(),
                           torch.cuda.synchronize)
            except Exception:
                lib = None
    rows = []
    for n in sizes:
        a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
        da = tds.cuda.to_device(a)
        kernels.matmul(da, da)  # compile, warm up
        sync()
        reps = 1 if sim else max(3, int(4e10 / n**3))
        t = time.perf_counter()
        for _ in range(reps):
            kernels.matmul(da, da)
        sync()
        ours = 2 * n**3 * reps / (time.perf_counter() - t) / 1e9
        theirs, ratio = "not importable", ""
        if lib is not None:
            name, put, lsync = lib
            la = put(a)
            la @ la
            lsync()
            t = time.perf_counter()
            for _ in range(reps):
                la @ la
            lsync()
            g = 2 * n**3 * reps / (time.perf_counter() - t) / 1e9
            theirs, ratio = f"{g:.0f} ({name})", f"{ours / g:.2f}"
        rows.append(f"| {n} | {ours:.0f} | {theirs} | {ratio} |")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps and matmul sizes")
    ap.add_argument("--no-append", action="store_true", help="print only")
    ap.add_argument("--simulator", action="store_true",
                    help="under NUMBA_ENABLE_CUDASIM=1: a tiny run that checks this script")
    args = ap.parse_args()
    why = no_gpu_reason()
    sim = args.simulator and tds.cuda.simulated()
    if why is not None and not sim:
        print(f"benchmarks/gpu.py: no GPU here, nothing measured or appended ({why})")
        return 0
    if sim:
        batch, size, warm, steps, sizes = 2, 4, 1, 1, (16,)
    elif args.quick:
        batch, size, warm, steps, sizes = 128, 32, 2, 3, (1024, 2048)
    else:
        batch, size, warm, steps, sizes = 128, 32, 3, 10, (1024, 2048, 4096)
    t0 = time.perf_counter()
    rows = {}
    cpu_steps = max(1, steps // 3)  # this CPU takes about a second a step at batch 128
    for label, device, compiled, n in (("eager, this CPU", "cpu", False, cpu_steps),
                                       ("eager, cuda", "cuda", False, steps),
                                       ("tds.compile, cuda", "cuda", True, steps)):
        rows[label] = resnet_step(device, compiled, batch, size, warm, n, tiny=sim)
        print(f"{label}: {rows[label]}", flush=True)
    torch_ms = None if sim else torch_step(batch, size, warm, steps)
    cpu_ms = rows["eager, this CPU"]["ms"]
    lines = [f"| {'ResNet-8, width 4' if sim else 'ResNet-20'} training step, batch {batch}, "
             f"{size}x{size} | ms per step | "
             "images/s | speed over this CPU | kernel launches per step | first call |",
             "|---|---:|---:|---:|---:|---:|"]
    for label, r in rows.items():
        launches = r["launches"] if label.endswith("cuda") else "-"
        lines.append(f"| {label} | {r['ms']:.1f} | {batch / r['ms'] * 1e3:.0f} | "
                     f"{cpu_ms / r['ms']:.1f}x | {launches} | {r['first_s']:.1f} s |")
    lines.append(f"| PyTorch, cuda | {f'{torch_ms:.1f}' if torch_ms else 'not importable'} | "
                 + (f"{batch / torch_ms * 1e3:.0f} | {cpu_ms / torch_ms:.1f}x | - | - |"
                    if torch_ms else "| | | |"))
    comp = rows["tds.compile, cuda"]["ms"]
    verdict = [f"compiled cuda over this CPU: {cpu_ms / comp:.1f}x (target >= 10x)"]
    if torch_ms:
        verdict.append(f"over PyTorch CUDA: {torch_ms / comp:.2f}x (target >= 0.3x)")
    mm = ["| matmul n x n @ n x n, float32 | tds cuda GFLOP/s | library GFLOP/s | tds / library |",
          "|---|---:|---:|---:|"] + matmul_rows(sizes, sim)
    import numba
    name = tds.cuda.device_name()
    cmd = "python benchmarks/gpu.py" + (" --quick" if args.quick else "") + \
        (" --simulator" if sim else "")
    table = (f"\n### GPU path: {datetime.datetime.now():%Y-%m-%d %H:%M}, {name}, host "
             f"{cpu_model()} ({os.cpu_count()} cores)\n\n`{cmd}` (numba {numba.__version__}; "
             f"median of {steps} timed steps after {warm}, {cpu_steps} on the CPU; first call: "
             "compiling included)\n\n" + "\n".join(lines) + "\n\n" + "; ".join(verdict) +
             "\n\n" + "\n".join(mm) + f"\n\n(run took {time.perf_counter() - t0:.0f} s)\n")
    report(table, append=not (args.no_append or sim))
    if sim:
        print("(simulator: the figures above mean nothing; not appended to RESULTS.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
