"""One-script check of the GPU path on a machine with an NVIDIA GPU (a few minutes at most):

    PYTHONPATH=. python3 scripts/gpu_check.py            # on the GPU machine, repo root
    NUMBA_ENABLE_CUDASIM=1 PYTHONPATH=. python scripts/gpu_check.py --quick   # simulator, no GPU

1. every table kernel the cuda backend has, on test_table.py's cases, against the cpu backend;
2. a small MLP's training steps (SGD with momentum, Adam) on 'cuda' against 'cpu', with the
   host<->device copies each step makes (tds.cuda.transfer_stats()); ResNet-20 steps against
   the cpu's at batch 8, then timed at batch 32 (cpu, cuda) and 128 (cuda);
3. the tiled matmul's GFLOP/s at a few sizes, against CuPy or PyTorch where one is installed.
Prints tables; with $OUT set (the device tool) also writes them to $OUT/gpu_check.md. Exits 1
when a kernel or a step disagrees with the cpu.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import tinygrad_ds as tds  # noqa: E402
from tinygrad_ds import backend  # noqa: E402

LINES: list[str] = []


def say(line: str = "") -> None:
    print(line, flush=True)
    LINES.append(line)


def dev(a):
    if isinstance(a, np.ndarray):
        return tds.cuda.to_device(a)
    if isinstance(a, tuple):
        return tuple(dev(v) for v in a)
    return a


def check_table() -> int:
    import test_table as T
    cuda = backend.get("cuda")
    lacking = backend.missing(cuda)
    bad = 0
    say("## 1. table kernels on cuda against cpu (test_table.py's cases)")
    say("| case | result |")
    say("| --- | --- |")
    for case in T.CASES:
        if case.kernel in lacking:
            continue
        args = dev(case.args)
        try:
            if case.kernel == "bernoulli_mask":  # another generator: the values and the rate
                gen, like, shape, p = case.args
                m = tds.cuda.to_host(cuda.bernoulli_mask(gen, args[1], shape, p))
                keep = np.float32(1 / (1 - p)) if p < 1 else 0.0
                assert set(np.unique(m)) <= {0.0, keep} and m.shape == shape
                assert p >= 1 or abs((m > 0).mean() - (1 - p)) < 0.05, (m > 0).mean()
                say(f"| {case} | ok (values and rate) |")
                continue
            want = T._as_list(T._run_cpu(case))
            t0 = time.perf_counter()
            got = T._as_list(getattr(cuda, case.kernel)(*args))
            got = [g if isinstance(g, np.ndarray) else tds.cuda.to_host(g) for g in got]
            ms = (time.perf_counter() - t0) * 1e3
            for k, (g, w) in enumerate(zip(got, want)):
                assert g.dtype == w.dtype, f"result {k} is {g.dtype}, cpu {w.dtype}"
                T._close(g, w.astype(np.float64) if w.dtype.kind == "f" else w,
                         max(case.rtol, 1e-6) if w.dtype.kind == "f" else 0, f"result {k}")
            say(f"| {case} | ok ({ms:.0f} ms, compile included) |")
        except Exception as e:  # report every case, then fail at the end
            if "only basic indices" in str(e):  # known: not implemented on cuda yet
                say(f"| {case} | not implemented on cuda (a clear error, as intended) |")
                continue
            bad += 1
            say(f"| {case} | FAIL {type(e).__name__}: {str(e)[:200]} |")
    say(f"\ncuda lacks {len(lacking)} table names: {', '.join(lacking)}\n")
    return bad


def mlp_steps(device: str, opt_name: str, steps: int, n: int, d: int):
    tds.manual_seed(0)
    model = tds.nn.Sequential(tds.nn.Linear(d, 4 * d), tds.nn.ReLU(), tds.nn.Linear(4 * d, 1))
    model.to(device)
    if opt_name == "sgd":
        opt = tds.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    else:
        opt = tds.optim.Adam(model.parameters(), lr=0.01)
    rng = np.random.default_rng(0)
    x = tds.Tensor(rng.standard_normal((n, d)).astype(np.float32)).to(device)
    y = tds.Tensor(rng.standard_normal((n, 1)).astype(np.float32)).to(device)
    losses, per_step, secs = [], [], []
    for _ in range(steps):
        tds.cuda.reset_transfer_stats()
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        if device == "cuda" and not tds.cuda.simulated():
            from numba import cuda
            cuda.synchronize()
        secs.append(time.perf_counter() - t0)
        per_step.append(tds.cuda.transfer_stats())
        losses.append(loss.item())  # the one copy a step is meant to make (read after the count)
    return losses, per_step, secs


def check_training(quick: bool) -> int:
    bad = 0
    steps, n, d = (3, 8, 4) if quick else (20, 256, 64)
    say(f"## 2. MLP training steps ({steps} steps, batch {n}, {d} features), cuda against cpu")
    say("| optimizer | max loss difference | cuda copies per step (to device, to host) | "
        "ms per step cuda / cpu |")
    say("| --- | --- | --- | --- |")
    for opt_name in ("sgd", "adam"):
        try:
            lc, _, tcpu = mlp_steps("cpu", opt_name, steps, n, d)
            lg, stats, tgpu = mlp_steps("cuda", opt_name, steps, n, d)
            diff = max(abs(a - b) / max(abs(a), 1e-6) for a, b in zip(lc, lg))
            s = stats[-1]
            ok = diff < 1e-3
            bad += not ok
            say(f"| {opt_name} | {diff:.1e} {'ok' if ok else 'FAIL'} | {s['to_device']}, "
                f"{s['to_host']} ({s['bytes_to_device']} B) | {1e3 * np.median(tgpu[1:]):.2f}"
                f" / {1e3 * np.median(tcpu[1:]):.2f} |")
        except Exception as e:
            bad += 1
            say(f"| {opt_name} | FAIL {type(e).__name__}: {str(e)[:300]} | | |")
    say("")
    return bad


def resnet_step(device: str, batch: int, size: int, steps: int):
    """(losses, seconds per step, copies of the last step) of ResNet-20 SGD steps."""
    from tinygrad_ds.nn import models
    tds.manual_seed(0)
    model = models.resnet20(num_classes=10).to(device)
    opt = tds.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    rng = np.random.default_rng(0)
    x = tds.Tensor(rng.standard_normal((batch, 3, size, size)).astype(np.float32)).to(device)
    y = tds.Tensor(rng.integers(0, 10, batch)).to(device)
    losses, secs, stats = [], [], None
    for _ in range(steps):
        tds.cuda.reset_transfer_stats()
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = tds.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if device == "cuda" and not tds.cuda.simulated():
            from numba import cuda
            cuda.synchronize()
        secs.append(time.perf_counter() - t0)
        stats = tds.cuda.transfer_stats()
        losses.append(loss.item())
    return losses, secs, stats


def check_resnet(quick: bool) -> int:
    """ResNet-20: the first steps agree with the cpu's; the step time at a larger batch."""
    batch, size = (2, 8) if quick else (8, 32)
    say(f"## 2b. ResNet-20 SGD steps (batch {batch}, {size}x{size}), cuda against cpu")
    try:
        lc, _, _ = resnet_step("cpu", batch, size, 2)
        lg, _, st = resnet_step("cuda", batch, size, 2)
        diff = max(abs(a - b) / max(abs(a), 1e-6) for a, b in zip(lc, lg))
        ok = diff < 1e-3
        say(f"losses cpu {lc}, cuda {lg}: relative difference {diff:.1e} "
            f"{'ok' if ok else 'FAIL'}; copies in a step: {st}")
    except Exception as e:
        say(f"FAIL {type(e).__name__}: {str(e)[:300]}\n")
        return 1
    if not quick:
        say("| device | batch | ms per step (median of 3 after 1) | images/s |")
        say("| --- | --- | --- | --- |")
        for device, b in (("cpu", 32), ("cuda", 32), ("cuda", 128)):
            _, secs, _ = resnet_step(device, b, 32, 4)
            ms = 1e3 * float(np.median(secs[1:]))
            say(f"| {device} | {b} | {ms:.0f} | {b / ms * 1e3:.0f} |")
    say("")
    return 0 if ok else 1


def bench_matmul(quick: bool) -> None:
    sizes = (16, 32) if quick else (512, 1024, 2048, 4096)
    say("## 3. float32 matmul (n x n @ n x n)")
    say("| n | tds cuda GFLOP/s | library GFLOP/s |")
    say("| --- | --- | --- |")
    cuda_mod = backend.get("cuda")
    sim = tds.cuda.simulated()
    lib = None
    if not sim:
        try:
            import cupy
            lib = ("cupy", lambda a, b: a @ b, cupy.cuda.Device().synchronize, cupy.asarray)
        except Exception:
            try:
                import torch
                lib = ("torch", lambda a, b: a @ b, torch.cuda.synchronize,
                       lambda a: torch.from_numpy(a).cuda())
            except Exception:
                lib = None
    from numba import cuda
    for n in sizes:
        a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
        da, db = tds.cuda.to_device(a), tds.cuda.to_device(a)
        cuda_mod.matmul(da, db)  # compile and warm up
        sync = (lambda: None) if sim else cuda.synchronize
        sync()
        reps = 1 if quick else max(3, int(2e10 / n**3))
        t0 = time.perf_counter()
        for _ in range(reps):
            cuda_mod.matmul(da, db)
        sync()
        ours = 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9
        theirs = "none installed" if lib is None else ""
        if lib is not None:
            name, mm, lsync, put = lib
            la = put(a)
            mm(la, la)
            lsync()
            t0 = time.perf_counter()
            for _ in range(reps):
                mm(la, la)
            lsync()
            theirs = f"{2 * n**3 * reps / (time.perf_counter() - t0) / 1e9:.0f} ({name})"
        say(f"| {n} | {ours:.1f} | {theirs} |")
    say("")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny shapes (for the simulator)")
    ap.add_argument("--no-resnet", action="store_true", help="skip the ResNet-20 steps")
    args = ap.parse_args()
    say(f"# tds GPU check: available {tds.cuda.is_available()}, device "
        f"{tds.cuda.device_name()!r}, simulator {tds.cuda.simulated()}")
    try:
        import numba
        say(f"numba {numba.__version__}, numba.cuda {getattr(numba.cuda, '__version__', '?')}, "
            f"python {sys.version.split()[0]}\n")
    except Exception:
        pass
    tds.cuda.require()  # the error says what is missing
    t0 = time.perf_counter()
    bad = check_table()
    bad += check_training(args.quick)
    if not (args.no_resnet or args.quick):  # the simulator needs many minutes for ResNet-20
        bad += check_resnet(args.quick)
    bench_matmul(args.quick)
    say(f"{'FAILED: ' + str(bad) + ' check(s)' if bad else 'all checks passed'} in "
        f"{time.perf_counter() - t0:.0f} s")
    out = os.environ.get("OUT")
    if out:
        Path(out, "gpu_check.md").write_text("\n".join(LINES) + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
