"""One-script check of the GPU path on a machine with an NVIDIA GPU (about four minutes):

    PYTHONPATH=. python3 scripts/gpu_check.py            # on the GPU machine, repo root
    NUMBA_ENABLE_CUDASIM=1 PYTHONPATH=. python scripts/gpu_check.py --quick   # simulator, no GPU

1. every table kernel the cuda backend has, on test_table.py's cases, against the cpu backend;
2. a small MLP's training steps (SGD with momentum, Adam) on 'cuda' against 'cpu', with the
   host<->device copies each step makes (tds.cuda.transfer_stats());
3. ResNet-20 SGD steps at batch 8, eager on 'cuda' and tds.compile'd on 'cuda' (generated CUDA
   kernels), against the cpu's, with the copies and kernel launches of a step;
4. then `benchmarks/gpu.py --quick` (ResNet-20 at batch 128 against this CPU and PyTorch, the
   matmul against CuPy or PyTorch, launches per step), in a process of its own.
Prints tables; with $OUT set (the device tool) writes them to $OUT/gpu_check.md and the
benchmark's output to $OUT/gpu_bench.log. Exits 1 when a kernel or a step disagrees with the cpu.
"""
from __future__ import annotations

import argparse
import os
import subprocess
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


def resnet_step(device: str, batch: int, size: int, steps: int, compiled: bool = False):
    """(losses, parameters and buffers after the steps, copies and launches of the last step)
    of ResNet-20 SGD steps; compiled: the step through tds.compile."""
    from tinygrad_ds.nn import models
    tds.manual_seed(0)
    model = models.resnet20(num_classes=10).to(device)
    opt = tds.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    rng = np.random.default_rng(0)
    x = tds.Tensor(rng.standard_normal((batch, 3, size, size)).astype(np.float32)).to(device)
    y = tds.Tensor(rng.integers(0, 10, batch)).to(device)

    def step(x, y):
        loss = tds.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    run = tds.compile(step) if compiled else step
    losses, stats = [], None
    for _ in range(steps):
        tds.cuda.reset_transfer_stats()
        tds.cuda.reset_launch_stats()
        loss = run(x, y)
        stats = {**tds.cuda.transfer_stats(), **tds.cuda.launch_stats()}
        losses.append(loss.item())
    state = [np.asarray(v.numpy() if hasattr(v, "numpy") else v, np.float64)
             for v in model.state_dict().values()]
    return losses, state, stats


def check_resnet(quick: bool) -> int:
    """ResNet-20: eager and compiled steps on cuda agree with the cpu's."""
    batch, size = (2, 8) if quick else (8, 32)
    say(f"## 3. ResNet-20 SGD steps (batch {batch}, {size}x{size}, 3 steps), cuda against cpu")
    say("| run | losses | max parameter difference (relative) | copies, launches in a step |")
    say("| --- | --- | --- | --- |")
    bad = 0
    lc, sc, _ = resnet_step("cpu", batch, size, 3)
    say(f"| eager cpu | {', '.join(f'{v:.5f}' for v in lc)} | | |")
    for label, compiled in (("eager cuda", False), ("compiled cuda", True)):
        try:
            t0 = time.perf_counter()
            lg, sg, st = resnet_step("cuda", batch, size, 3, compiled)
            diff = max(float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))
                       for a, b in zip(sg, sc))
            ldiff = max(abs(a - b) / max(abs(a), 1e-6) for a, b in zip(lc, lg))
            ok = diff < 1e-4 and ldiff < 1e-4 and st["to_device"] == st["to_host"] == 0
            bad += not ok
            say(f"| {label} ({time.perf_counter() - t0:.0f} s) | "
                f"{', '.join(f'{v:.5f}' for v in lg)} | {diff:.1e} {'ok' if ok else 'FAIL'} | "
                f"{st['to_device']} to device, {st['to_host']} to host, {st['launches']} "
                "launches |")
        except Exception as e:
            bad += 1
            say(f"| {label} | FAIL {type(e).__name__}: {str(e)[:300]} | | |")
    say("")
    return bad


def run_benchmark(out: str | None) -> int:
    """benchmarks/gpu.py --quick in a process of its own; its output to $OUT/gpu_bench.log."""
    say("## 4. benchmarks/gpu.py --quick")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--quick"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
        text, rc = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as e:
        partial = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        text, rc = f"{partial}\ntimed out after 240 s", 1
    if out:
        Path(out, "gpu_bench.log").write_text(text)
    say(text.rstrip())
    say("")
    return 0 if rc == 0 else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny shapes (for the simulator)")
    ap.add_argument("--no-resnet", action="store_true", help="skip the ResNet-20 steps")
    ap.add_argument("--no-bench", action="store_true", help="skip benchmarks/gpu.py --quick")
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
    out = os.environ.get("OUT")
    bad = 0
    for check in (check_table, lambda: check_training(args.quick),
                  lambda: 0 if args.no_resnet or args.quick else check_resnet(args.quick)):
        bad += check()
        if out:  # written as it goes: a run cut short still leaves what it did
            Path(out, "gpu_check.md").write_text("\n".join(LINES) + "\n")
    if not (args.quick or args.no_bench or tds.cuda.simulated()):
        bad += run_benchmark(out)
    say(f"{'FAILED: ' + str(bad) + ' check(s)' if bad else 'all checks passed'} in "
        f"{time.perf_counter() - t0:.0f} s")
    if out:
        Path(out, "gpu_check.md").write_text("\n".join(LINES) + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
