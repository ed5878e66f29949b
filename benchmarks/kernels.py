"""Kernel benchmark: conv2d, pooling and normalization at CIFAR-ResNet sizes (batch 128).

    python benchmarks/kernels.py            # prints a table, appends it to benchmarks/RESULTS.md

Each row is timed through the ops (Python overhead included), median of repeated runs after a
warm-up, float32. Convolutions report GFLOP/s (2 multiply-adds counted per tap, forward plus the
input- and weight-gradient products for fwd+bwd) against numpy's float32 GEMM measured in the same
run; memory-bound ops report GB/s of the bytes they must move (inputs read once, outputs written
once) against a large array copy measured in the same run. Also: cold compile time of every
kernel (empty cache) and warm start (a second process loading the cache).

Each convolution row also shows its "products ms": the kernels' matrix products alone (BLAS, or
numba's _add_abt for small weight gradients), replayed at the same shapes (products_ms).
When PyTorch is installed (it is not a dependency), each row also shows PyTorch's time for the same work, measured right after ours in a process of its own, on
as many threads as the machine has cores: a peer, not a ceiling.

NOTE: the machines are shared; a neighbour's load slows BLAS's threads (a GEMM then waits for a
scheduler tick) as much as it slows our kernels. So each row's ceiling is measured right before
that row, and the table prints the load average at the start and the end of the run.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import tinygrad_ds as tds
from machine import cpu_model  # benchmarks/machine.py (the script's own folder is on sys.path)
import tinygrad_ds.functional as F

N = 128
REPEATS = 7
RESULTS = Path(__file__).with_name("RESULTS.md")

# every kernel in the table, forward and backward (float32, or each dtype given in argv):
# what a warm start must load
ALL_KERNELS = """
import sys, time; t0 = time.perf_counter()
import numpy as np, tinygrad_ds as tds, tinygrad_ds.functional as F
for dt in sys.argv[1:] or ["float32"]:
    def R(*shape, grad=False):
        return tds.randn(*shape, dtype=dt, requires_grad=grad)
    x = R(2, 4, 6, 6, grad=True)
    w = R(4, 2, 3, 3, grad=True)
    y = F.conv2d(x, w, R(4), padding=1, groups=2)
    y = F.conv2d(y, R(4, 1, 3, 3), padding=1, groups=4)
    y = F.conv_transpose2d(y, R(4, 4, 2, 2), stride=2)
    y = F.max_pool2d(y, 2) + F.avg_pool2d(y, 2)
    y = F.batch_norm(y, tds.zeros(4), tds.ones(4), training=True)
    y = F.group_norm(y, 2) + F.layer_norm(y, (6, 6))
    y = F.adaptive_avg_pool2d(y, 1).reshape(2, 4)
    F.cross_entropy(y, tds.Tensor([0, 3])).backward()
print(time.perf_counter() - t0)
"""


def median_ms(fn, repeats: int = REPEATS) -> float:
    fn()  # warm-up (compiles or loads kernels)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


_A = np.random.rand(64, 576).astype(np.float32)
_B = np.random.rand(576, N * 64).astype(np.float32)


def gemm_ceiling(repeats: int = 10) -> float:
    """numpy float32 GEMM GFLOP/s at the size of the 64->64 conv's im2col product.

    NOTE: OpenBLAS's threads spin on the cores for a while after a product; the pause lets them
    sleep before the row after it is timed (without it the conv rows measured up to 1.7x slower:
    a 64-channel fwd+bwd 14.3 ms against 8.3 through the same ops alone)."""
    ms = median_ms(lambda: _A @ _B, repeats)
    time.sleep(0.5)
    return 2 * 64 * 576 * N * 64 / ms / 1e6


def gemm_square() -> float:
    a = np.random.rand(1024, 1024).astype(np.float32)
    ms = median_ms(lambda: a @ a, 10)
    return 2 * 1024**3 / ms / 1e6


_SRC = np.random.rand(64 * 2**20).astype(np.float32)
_DST = np.empty_like(_SRC)


def copy_ceiling(repeats: int = 10) -> float:
    """GB/s of a 256 MB float32 copy (read + write counted)."""
    ms = median_ms(lambda: np.copyto(_DST, _SRC), repeats)
    return 2 * _SRC.nbytes / ms / 1e6


CONV_SHAPES = [  # (label, C, O, H, stride, groups)
    ("conv 3->16 32x32", 3, 16, 32, 1, 1),
    ("conv 16->16 32x32", 16, 16, 32, 1, 1),
    ("conv 32->32 16x16", 32, 32, 16, 1, 1),
    ("conv 64->64 8x8", 64, 64, 8, 1, 1),
    ("conv 16->32 s2 32x32", 16, 32, 32, 2, 1),
    ("conv 32->64 s2 16x16", 32, 64, 16, 2, 1),
    ("depthwise 64 8x8", 64, 64, 8, 1, 64),
]


def torch_times() -> dict[str, float]:
    """PyTorch's median ms for every row, by label (run in a process of its own: see main)."""
    import torch
    import torch.nn.functional as tf

    torch.set_num_threads(os.cpu_count() or 1)
    out = {}

    def warm_median(fn):  # oneDNN builds its kernels over the first calls: more warm-up
        for _ in range(3):
            fn()
        return median_ms(fn, 2 * REPEATS)
    for label, c, o, h, s, g in CONV_SHAPES:
        oh = (h + 2 - 3) // s + 1
        x = torch.randn(N, c, h, h, requires_grad=True)
        w = torch.randn(o, c // g, 3, 3, requires_grad=True)
        gy = torch.randn(N, o, oh, oh)

        def fwd():
            with torch.no_grad():
                tf.conv2d(x, w, None, s, 1, 1, g)

        def fwd_bwd():
            x.grad = w.grad = None
            tf.conv2d(x, w, None, s, 1, 1, g).backward(gy)
        out[f"{label} fwd"], out[f"{label} fwd+bwd"] = warm_median(fwd), warm_median(fwd_bwd)
    a = torch.randn(N, 16, 32, 32, requires_grad=True)
    cases = [
        ("max pool 2x2", lambda: tf.max_pool2d(a, 2)),
        ("batch norm", lambda: tf.batch_norm(a, torch.zeros(16), torch.ones(16), torch.ones(16),
                                             torch.zeros(16), training=True)),
        ("layer norm (16,32,32)", lambda: tf.layer_norm(a, (16, 32, 32), torch.ones(16, 32, 32),
                                                        torch.zeros(16, 32, 32))),
        ("group norm 4 groups", lambda: tf.group_norm(a, 4, torch.ones(16), torch.zeros(16))),
    ]
    for label, fn in cases:
        gy = torch.randn(fn().shape)

        def run(fn=fn, gy=gy):
            a.grad = None
            fn().backward(gy)
        out[f"{label} fwd+bwd"] = warm_median(run)
    return out


def torch_peer() -> tuple[str, dict[str, float]]:
    """(a line naming the peer, its ms by row label); no times when PyTorch is not installed.

    NOTE: in a process of its own, after our rows: in one process PyTorch's OpenMP threads keep
    spinning after each op and took the cores from the next row's BLAS threads (and ours from
    its), which moved both columns by up to 3x."""
    if importlib.util.find_spec("torch") is None:
        return "PyTorch not installed", {}
    r = subprocess.run([sys.executable, __file__, "--torch-only"], capture_output=True,
                       text=True, check=True)
    info = json.loads(r.stdout.splitlines()[-1])
    return (f"PyTorch {info['version']} on {info['threads']} threads, same shapes and dtype, "
            "in a separate process after ours"), info["ms"]


class _RecordingNumpy:
    """Stands in for numpy inside the cpu conv algorithms' modules: records the shape, strides
    and dtype of every np.matmul operand (and of its output), and calls numpy."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return getattr(np, name)

    def matmul(self, a, b, out=None):
        self.calls.append(tuple(None if v is None else (v.shape, v.strides, v.dtype)
                                for v in (a, b, out)))
        return np.matmul(a, b, out=out)


def products_ms(fn) -> float:
    """Median ms of the matrix products alone that one fn() call makes in the cpu conv kernels
    (np.matmul through BLAS, and _add_abt's sums for small weight gradients): the same calls,
    replayed on arrays of the same shapes and strides, one array per layout reused across calls
    (as the kernels reuse their scratch buffers). The rest of the kernel's time is the copies
    those products need (im2col, shifts, layout changes)."""
    from tinygrad_ds.backend.cpu.conv import abt, im2col, im2row, pointwise, shift3, winograd

    recorder = _RecordingNumpy()
    add_abt, abt_calls = abt._add_abt, []

    def recording_add_abt(a, off, b, p, zero, out):
        abt_calls.append(((a.shape, a.strides, a.dtype), off, (b.shape, b.strides, b.dtype), p,
                          zero, (out.shape, out.strides, out.dtype)))
        return add_abt(a, off, b, p, zero, out)

    algorithms = (im2col, im2row, pointwise, shift3, winograd)  # their products: np.matmul
    for m in algorithms:
        m.np = recorder
        if hasattr(m, "_add_abt"):
            m._add_abt = recording_add_abt
    try:
        fn()
    finally:
        for m in algorithms:
            m.np = np
            if hasattr(m, "_add_abt"):
                m._add_abt = add_abt
    arrays: dict = {}

    def array(role, spec):  # outputs apart from inputs, so that inputs keep their values
        if spec is None:
            return None
        if (role, spec) not in arrays:
            shape, strides, dtype = spec
            span = 1 + sum((n - 1) * st for n, st in zip(shape, strides)) // dtype.itemsize
            base = np.random.rand(span).astype(dtype)
            arrays[role, spec] = np.lib.stride_tricks.as_strided(base, shape, strides)
        return arrays[role, spec]

    calls = [(array("in", a), array("in", b), array("out", out))
             for a, b, out in recorder.calls]
    sums = [(array("in", a), off, array("in", b), p, zero, array("out", out))
            for a, off, b, p, zero, out in abt_calls]

    def replay():
        for a, b, out in calls:
            np.matmul(a, b, out=out)
        for a, off, b, p, zero, out in sums:
            add_abt(a, off, b, p, zero, out)
    return median_ms(replay)


def conv_rows() -> list[tuple]:
    rows = []
    for label, c, o, h, s, g in CONV_SHAPES:
        x = tds.randn(N, c, h, h, requires_grad=True)
        w = tds.randn(o, c // g, 3, 3, requires_grad=True)
        oh = (h + 2 - 3) // s + 1
        flops = 2 * N * o * oh * oh * (c // g) * 9
        gy = tds.randn(N, o, oh, oh)

        def fwd():
            with tds.no_grad():
                F.conv2d(x, w, stride=s, padding=1, groups=g)

        def fwd_bwd():
            x.grad = w.grad = None
            F.conv2d(x, w, stride=s, padding=1, groups=g).backward(gy)

        for kind, fn, f in (("fwd", fwd, flops), ("fwd+bwd", fwd_bwd, 3 * flops)):
            gemm = gemm_ceiling(5)
            ms = median_ms(fn)
            rate = f / ms / 1e6
            products = products_ms(fn) if g == 1 else None  # depthwise: loops, no products
            rows.append((f"{label} {kind}", ms, f"{rate:.1f} GFLOP/s", f"{gemm:.1f} GFLOP/s",
                         rate / gemm, gemm, products))
    return rows


def memory_rows() -> list[tuple]:
    shape = (N, 16, 32, 32)
    x = tds.randn(*shape, requires_grad=True)
    gy = tds.randn(*shape)
    nbytes = x.size * 4
    rm, rv = tds.zeros(16), tds.ones(16)
    w, b = tds.ones(16, requires_grad=True), tds.zeros(16, requires_grad=True)
    lw, lb = tds.ones(16, 32, 32, requires_grad=True), tds.zeros(16, 32, 32, requires_grad=True)
    pool_gy = tds.randn(N, 16, 16, 16)
    cases = [  # label, function, output grad, bytes moved by forward + backward
        ("max pool 2x2", lambda: F.max_pool2d(x, 2), pool_gy,
         nbytes + 2 * (nbytes // 4 + nbytes // 2) + nbytes // 4 + nbytes),
        ("batch norm", lambda: F.batch_norm(x, rm, rv, w, b, training=True), gy, 5 * nbytes),
        ("layer norm (16,32,32)", lambda: F.layer_norm(x, (16, 32, 32), lw, lb), gy, 5 * nbytes),
        ("group norm 4 groups", lambda: F.group_norm(x, 4, w, b), gy, 5 * nbytes),
    ]
    rows = []
    for label, fn, g, moved in cases:
        def run():
            x.grad = None
            fn().backward(g)

        copy = copy_ceiling(5)
        ms = median_ms(run)
        rate = moved / ms / 1e6
        rows.append((f"{label} fwd+bwd", ms, f"{rate:.1f} GB/s", f"{copy:.1f} GB/s", rate / copy,
                     copy, None))
    return rows


def start_times(*dtypes: str) -> tuple[float, float, float, float]:
    """(cold process s, cold kernels s, warm process s, warm kernels s) with a fresh cache."""
    out = []
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for _ in range(2):
            t = time.perf_counter()
            r = subprocess.run([sys.executable, "-c", ALL_KERNELS, *dtypes], env=env,
                               capture_output=True, text=True, check=True)
            out += [time.perf_counter() - t, float(r.stdout.split()[-1])]
    return tuple(out)


def main() -> None:
    load0 = load()
    cold, cold_k, warm, warm_k = start_times()
    cold2, cold2_k, _, _ = start_times("float32", "float64")
    gemm, square, copy = gemm_ceiling(), gemm_square(), copy_ceiling()
    rows = conv_rows() + memory_rows()
    peer, peer_ms = torch_peer()
    gemms, copies = [r[5] for r in rows if "GFLOP" in r[2]], [r[5] for r in rows if "GB" in r[2]]
    date = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [
        f"## {date} on {cpu_model()} ({os.cpu_count()} cores), numpy {np.__version__}",
        "",
        f"Load average (1/5/15 min) {load0} at the start, {load()} at the end.",
        f"Ceilings measured in this run: float32 GEMM (64x576 @ 576x{N * 64}) {gemm:.1f} GFLOP/s "
        f"(1024^3: {square:.1f} GFLOP/s), {min(gemms):.1f} to {max(gemms):.1f} GFLOP/s when "
        f"measured before each row; 256 MB copy {copy:.1f} GB/s ({min(copies):.1f} to "
        f"{max(copies):.1f} before each row). Each row's ratio uses the ceiling measured just "
        "before it.",
        f"Start: cold (empty cache, every kernel compiled) {cold:.1f} s process / {cold_k:.1f} s "
        f"in kernels; warm (second process) {warm:.1f} s process / {warm_k:.2f} s in kernels. "
        f"Cold with float32 and float64 (as the tests compile): {cold2:.1f} s / {cold2_k:.1f} s.",
        f"Peer: {peer}.",
        "",
        "Products ms: the convolution kernels' matrix products alone (BLAS, and _add_abt's sums "
        "for small weight gradients), replayed at the same shapes; the rest of the row's time "
        "is the copies they need and Python.",
        "",
        "| row (batch 128, float32) | ms (median) | achieved | ceiling | ratio | products ms "
        "| PyTorch ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]

    def opt(v):
        return "-" if v is None else f"{v:.2f}"
    lines += [f"| {r[0]} | {r[1]:.2f} | {r[2]} | {r[3]} | {r[4]:.0%} | {opt(r[6])} | "
              f"{opt(peer_ms.get(r[0]))} |" for r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    header = "" if RESULTS.exists() else (
        "# Kernel benchmark results\n\nAppended by `python benchmarks/kernels.py`. Targets "
        "(ratios in the same run): conv fwd+bwd >= 50% of the GEMM ceiling on the 16-, 32- and "
        "64-channel shapes; normalization fwd+bwd >= 30% of copy bandwidth; warm start < 3 s. "
        "Machines are shared and noisy: compare ratios, not absolute times.\n\n")
    with RESULTS.open("a") as f:
        f.write(header + text + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--torch-only", action="store_true",
                        help="print PyTorch's times as JSON and stop (what main runs for the "
                             "PyTorch column)")
    if parser.parse_args().torch_only:
        import torch
        print(json.dumps({"version": torch.__version__, "threads": os.cpu_count() or 1,
                          "ms": torch_times()}))
    else:
        main()
