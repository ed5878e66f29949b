"""Interleaved A/B of the cpu convolution kernels of two source trees, in one process.

    git archive BASE tinygrad_ds | tar -x -C /tmp/base     # the tree to compare against
    python benchmarks/conv_ab.py /tmp/base                 # prints a table, appends it to RESULTS.md

A is OTHER's `tinygrad_ds/backend/cpu/conv` (the module conv.py or the package conv/), B this
tree's. Both are loaded side by side under names of their own, and each repetition runs A's and
B's kernels on the same arrays, in alternating order, so that a neighbour's load falls on both
alike: on a shared machine, separate runs of benchmarks/kernels.py differ by more than any
change a refactor could make. A row is forward + input gradient + weight gradient at
kernels.py's shapes (batch 128, float32), median ms over the repetitions. Every output of B is
checked to be bitwise equal to A's, so the table also says whether the results changed. The
pairs' column is the median over repetitions of B's time over A's in the same repetition,
which a slow drift in the load affects less than the medians' ratio.
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import os
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
from machine import cpu_model  # benchmarks/machine.py (the script's own folder is on sys.path)

N = 128
RESULTS = Path(__file__).with_name("RESULTS.md")
THIS_TREE = Path(__file__).resolve().parent.parent
SHAPES = [  # (label, C, O, H, stride, groups), as benchmarks/kernels.py
    ("conv 3->16 32x32", 3, 16, 32, 1, 1),
    ("conv 16->16 32x32", 16, 16, 32, 1, 1),
    ("conv 32->32 16x16", 32, 32, 16, 1, 1),
    ("conv 64->64 8x8", 64, 64, 8, 1, 1),
    ("conv 16->32 s2 32x32", 16, 32, 32, 2, 1),
    ("conv 32->64 s2 16x16", 32, 64, 16, 2, 1),
    ("depthwise 64 8x8", 64, 64, 8, 1, 64),
]


def load_conv(tree: Path, alias: str) -> types.ModuleType:
    """tree's backend/cpu/conv as the module alias.conv, its siblings as alias.* (the cpu
    package's __init__ is not run, so two trees load side by side)."""
    parent = types.ModuleType(alias)
    parent.__path__ = [str(tree / "tinygrad_ds" / "backend" / "cpu")]
    sys.modules[alias] = parent
    return importlib.import_module(f"{alias}.conv")


def step(conv, x, w, gy, s: int, groups: int) -> tuple[np.ndarray, ...]:
    """Forward, input gradient and weight gradient of a 3x3 'same'-padded convolution."""
    h, oh = x.shape[2], gy.shape[2]
    y = conv.conv2d_forward(x, w, None, s, s, 1, 1, 1, 1, groups, oh, oh)
    gx = conv.conv2d_backward_input(gy, w, s, s, 1, 1, 1, 1, groups, h, h)
    gw = conv.conv2d_backward_weight(gy, x, s, s, 1, 1, 1, 1, groups, 3, 3)
    return y, gx, gw


def ab_rows(a, b, repeats: int) -> list[tuple[str, float, float, float, bool]]:
    """Per shape: (label, A's median ms, B's median ms, the median of the repetitions' B/A
    ratios, whether B's outputs equal A's bitwise)."""
    rng = np.random.default_rng(0)
    rows = []
    for label, c, o, h, s, g in SHAPES:
        oh = (h + 2 - 3) // s + 1
        x = rng.standard_normal((N, c, h, h), dtype=np.float32)
        w = rng.standard_normal((o, c // g, 3, 3), dtype=np.float32)
        gy = rng.standard_normal((N, o, oh, oh), dtype=np.float32)
        same = all(np.array_equal(p, q) for p, q in zip(step(a, x, w, gy, s, g),
                                                         step(b, x, w, gy, s, g)))
        times = {"a": [], "b": []}
        for r in range(repeats):
            for name in ("ab" if r % 2 == 0 else "ba"):
                t = time.perf_counter()
                step(a if name == "a" else b, x, w, gy, s, g)
                times[name].append(time.perf_counter() - t)
        paired = float(np.median(np.array(times["b"]) / np.array(times["a"])))
        rows.append((label, 1e3 * float(np.median(times["a"])),
                     1e3 * float(np.median(times["b"])), paired, same))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("other", type=Path, help="the tree to compare against (A)")
    parser.add_argument("--repeats", type=int, default=15, help="repetitions per row and side")
    parser.add_argument("--note", default="", help="a line to print under the table's title")
    args = parser.parse_args()
    # a cache of its own: numba's on-disk cache records a kernel's module by name, and here the
    # modules have other names than in the package (compiling both sides takes a few seconds)
    with tempfile.TemporaryDirectory(prefix="conv_ab_numba_") as cache:
        os.environ["NUMBA_CACHE_DIR"] = cache
        a = load_conv(args.other.resolve(), "conv_ab_a")
        b = load_conv(THIS_TREE, "conv_ab_b")
        load0 = "/".join(f"{v:.1f}" for v in os.getloadavg())
        rows = ab_rows(a, b, args.repeats)
        load1 = "/".join(f"{v:.1f}" for v in os.getloadavg())
    date = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    threads = os.environ.get("OPENBLAS_NUM_THREADS")
    setup = (f"A: {a.__file__}; B: {b.__file__}. Load average (1/5/15 min) {load0} at the "
             f"start, {load1} at the end. Medians of {args.repeats} repetitions a side, A and B "
             f"alternating" + (f"; OPENBLAS_NUM_THREADS={threads}." if threads else "."))
    header = ("| forward + both gradients (batch 128, float32) | A ms | B ms | B/A of medians "
              "| median B/A of pairs | outputs equal |")
    lines = [
        f"## conv_ab.py {date} on {cpu_model()} ({os.cpu_count()} cores), numpy {np.__version__}",
        "",
        *([args.note, ""] if args.note else []),
        setup,
        "",
        header,
        "|---|---:|---:|---:|---:|---|",
        *(f"| {label} | {ta:.2f} | {tb:.2f} | {tb / ta:.2f} | {pair:.2f} | "
          f"{'yes' if same else 'NO'} |" for label, ta, tb, pair, same in rows),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    with RESULTS.open("a") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
