"""Training benchmark: ResNet-20 (CIFAR, 0.27M parameters) at batch 128 on 3x32x32 inputs.

    python benchmarks/train.py                 # prints a table, appends it to benchmarks/RESULTS.md
    python benchmarks/train.py --steps 5 --time-to-accuracy 0.9   # also trains on the built-in set

Rows: a training step (forward, cross-entropy, backward, SGD update with momentum) and an
inference pass (eval mode, no tape), in images per second, median of --steps timed runs after
one warm-up run; peak memory as the largest numpy allocation total that tracemalloc saw during
one training step, and the process's peak resident size. Where PyTorch is importable the same
network is timed in PyTorch in the same run, with the same number of threads, and the table
gives the ratio. --time-to-accuracy A trains on the built-in dataset until validation accuracy
reaches A (or --max-epochs) and reports the wall-clock time.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

import tinygrad_ds as tds
from machine import cpu_model  # benchmarks/machine.py (the script's own folder is on sys.path)
import tinygrad_ds.functional as F
from tinygrad_ds import optim

RESULTS = Path(__file__).with_name("RESULTS.md")
BATCH = 128


def median_s(fn, steps: int) -> float:
    fn()  # warm-up: kernels compile (or load from the cache), buffers get allocated
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def bench_tds(steps: int) -> dict:
    from tinygrad_ds.nn.models import resnet20

    tds.manual_seed(0)
    model = resnet20()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    rng = np.random.default_rng(0)
    x = tds.Tensor(rng.standard_normal((BATCH, 3, 32, 32)).astype(np.float32))
    y = tds.Tensor(rng.integers(0, 10, BATCH))

    def train_step():
        model.train()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def infer():
        model.eval()
        with tds.no_grad():
            model(x)

    t_train = median_s(train_step, steps)
    tracemalloc.start()
    train_step()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    t_infer = median_s(infer, steps)
    return {"params": model.num_parameters(), "train": BATCH / t_train,
            "infer": BATCH / t_infer, "peak_mb": peak / 2**20}


def bench_torch(steps: int) -> dict | None:
    try:
        import torch
        import torch.nn as tnn
    except ImportError:
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)

    from torch_models import resnet20  # benchmarks/torch_models.py

    model = resnet20()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x, y = torch.randn(BATCH, 3, 32, 32), torch.randint(0, 10, (BATCH,))

    def train_step():
        model.train()
        loss = tnn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def infer():
        model.eval()
        with torch.no_grad():
            model(x)

    return {"params": sum(p.numel() for p in model.parameters()),
            "train": BATCH / median_s(train_step, steps), "infer": BATCH / median_s(infer, steps),
            "version": torch.__version__}


def time_to_accuracy(target: float, max_epochs: int, train_size: int) -> str:
    from tinygrad_ds import data
    from tinygrad_ds.nn.models import resnet20
    from tinygrad_ds.train import fit

    tds.manual_seed(0)
    model = resnet20()
    train, val = data.load_builtin(n_train=train_size, n_val=2000, seed=0)
    norm = data.Normalize(data.synthetic.MEAN, data.synthetic.STD)
    train.transform = data.Compose([data.RandomCrop(padding=4), data.RandomHorizontalFlip(), norm])
    val.transform = data.Compose([norm])
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    sched = optim.CosineAnnealingLR(opt, T_max=max_epochs)
    start, reached = time.perf_counter(), None

    class Stop:
        def on_train_begin(self, trainer): ...
        def on_train_end(self, trainer): ...

        def on_epoch_end(self, trainer, epoch, logs):
            nonlocal reached
            if logs["val_acc"] >= target and reached is None:
                reached = (epoch, time.perf_counter() - start)
                trainer.stop = f"reached val_acc {logs['val_acc']:.3f}"

    h = fit(model, data.DataLoader(train, BATCH, shuffle=True, drop_last=True, seed=0),
            data.DataLoader(val, 256), opt, epochs=max_epochs, scheduler=sched,
            callbacks=[Stop()])
    if reached is None:
        return (f"not reached in {max_epochs} epochs of {train_size} images "
                f"({time.perf_counter() - start:.0f} s, best val_acc {max(h['val_acc']):.3f})")
    return (f"{reached[1] / 60:.1f} min ({reached[0]} epochs of {train_size} images, "
            "SGD 0.1 momentum 0.9, cosine, crop+flip)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3, help="timed runs per row (after a warm-up)")
    ap.add_argument("--time-to-accuracy", type=float, default=None)
    ap.add_argument("--max-epochs", type=int, default=30)
    ap.add_argument("--train-size", type=int, default=10000)
    ap.add_argument("--no-append", action="store_true", help="print only")
    args = ap.parse_args()

    ours = bench_tds(args.steps)
    theirs = bench_torch(args.steps)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = [("training step (fwd, loss, bwd, SGD)", "train"),
            ("inference (eval, no tape)", "infer")]
    head = "| ResNet-20, batch 128, float32 | tinygrad_ds img/s |"
    sep = "|---|---:|"
    if theirs:
        head += f" PyTorch {theirs['version']} img/s | ratio |"
        sep += "---:|---:|"
    lines = [head, sep]
    for label, key in rows:
        line = f"| {label} | {ours[key]:.1f} |"
        if theirs:
            line += f" {theirs[key]:.1f} | {ours[key] / theirs[key]:.2f} |"
        lines.append(line)
    notes = [f"Parameters: {ours['params']:,}. Peak numpy memory during one training step "
             f"(tracemalloc): {ours['peak_mb']:.0f} MB; process peak RSS {rss_mb:.0f} MB."]
    if not theirs:
        notes.append("PyTorch is not installed here: no ratio in this run.")
    if args.time_to_accuracy:
        took = time_to_accuracy(args.time_to_accuracy, args.max_epochs, args.train_size)
        notes.append(f"Time to {args.time_to_accuracy:.0%} validation accuracy on the built-in "
                     f"dataset: {took}.")
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    block = (f"\n## train.py {stamp} on {cpu_model()} ({os.cpu_count()} cores), numpy "
             f"{np.__version__}, Python {platform.python_version()}\n\n"
             + "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n")
    print(block)
    if not args.no_append:
        if not RESULTS.exists():
            RESULTS.write_text("# Benchmark results\n")
        with RESULTS.open("a") as f:
            f.write(block)


if __name__ == "__main__":
    sys.exit(main())
