"""LeNet-5 on the built-in digits: the README's first training command, measured.

    python benchmarks/lenet_digits.py     # prints a table, appends it to benchmarks/RESULTS.md
    python benchmarks/lenet_digits.py --no-append --curves docs/lenet_digits_curves.png

Runs exactly what `tds train examples/lenet.py --epochs 2` runs (60,000 training and 10,000
validation digits, SGD 0.1 with momentum 0.9, cosine schedule, random crops), into a temporary
run folder, then `tds eval`'s code on best.npz. Rows: the time to draw the 70,000 digits, each
epoch's time and accuracies, and whether eval reproduces the validation accuracy training
printed. The claim it checks: at least 95% validation accuracy after 2 epochs.
"""
from __future__ import annotations

import argparse
import datetime
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from machine import cpu_model  # benchmarks/machine.py (the script's own folder is on sys.path)

RESULTS = Path(__file__).with_name("RESULTS.md")
ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--no-append", action="store_true", help="print only")
    ap.add_argument("--curves", default=None, help="copy the run's curves.png here")
    args = ap.parse_args()

    from tinygrad_ds.app.checkpoint_file import evaluate_checkpoint
    from tinygrad_ds.app.train_run import train_model_file
    from tinygrad_ds.data import make_digits

    t = time.perf_counter()
    make_digits(60000, seed=0)
    make_digits(10000, seed=1)
    gen_s = time.perf_counter() - t

    model_file = str(ROOT / "examples" / "lenet.py")
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        result = train_model_file(model_file, epochs=args.epochs, out=out,
                                  stream=io.StringIO())
        total_s = time.perf_counter() - t
        report = evaluate_checkpoint(model_file, os.path.join(out, "best.npz"))
        if args.curves:
            shutil.copy(os.path.join(out, "curves.png"), args.curves)
    h = result.history
    best = result.best_epoch
    rows = [f"| {int(e['epoch'])} | {e['time_s']:.1f} | {e['images_per_s']:.0f} | "
            f"{e['loss']:.4f} | {e['acc']:.4f} | {e['val_loss']:.4f} | {e['val_acc']:.4f} |"
            for e in h.epochs]
    same = np.isclose(report.metrics["val_acc"], best["val_acc"], rtol=0, atol=0)
    end = os.getloadavg()
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    block = "\n".join([
        f"\n## lenet_digits.py {stamp} on {cpu_model()} ({os.cpu_count()} cores), numpy "
        f"{np.__version__}, Python {sys.version.split()[0]}",
        "",
        f"`tds train examples/lenet.py --epochs {args.epochs}`: LeNet-5 (tanh, average "
        "pooling; 61,706 parameters) on the built-in digits, 60,000 training and 10,000 "
        "validation images, batch 128, SGD 0.1 momentum 0.9, cosine, random crops.",
        f"Load average {load[0]:.1f} at the start, {end[0]:.1f} at the end.",
        "",
        "| epoch | train s | img/s | loss | acc | val_loss | val_acc |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Drawing the 70,000 digits: {gen_s:.1f} s. Whole command: {total_s:.0f} s. "
        f"Best validation accuracy {best['val_acc']:.2%} at epoch {int(best['epoch'])} "
        f"({'meets' if best['val_acc'] >= 0.95 else 'MISSES'} the 95% claim); tds eval on "
        f"best.npz: {report.metrics['val_acc']:.2%} "
        f"({'the same' if same else 'DIFFERENT'}).",
    ])
    print(block)
    if not args.no_append:
        if not RESULTS.exists():
            RESULTS.write_text("# Benchmark results\n")
        with RESULTS.open("a") as f:
            f.write(block + "\n")


if __name__ == "__main__":
    main()
