"""The GPU path without a GPU: the cuda kernels under numba's CUDA simulator against the cpu
backend, on small shapes, and the errors a user meets with no GPU or with mixed devices.

The simulator has to be switched on before numba.cuda is imported (NUMBA_ENABLE_CUDASIM=1), so
those checks run in one subprocess each, which prints a JSON report this file asserts on. Tests
that need numba-cuda skip, saying so, where it is not installed (`pip install numba-cuda`).
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tinygrad_ds as tds

HERE = Path(__file__).resolve().parent
HAS_NUMBA_CUDA = importlib.util.find_spec("numba_cuda") is not None or \
    importlib.util.find_spec("numba.cuda") is not None
needs_numba_cuda = pytest.mark.skipif(
    not HAS_NUMBA_CUDA, reason="numba.cuda is not importable (pip install numba-cuda)")


def _sim(code: str, timeout: int = 120) -> dict:
    """Run `code` in a fresh Python with the CUDA simulator on; it prints one JSON line last."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=str(HERE))
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"simulator run failed:\n{proc.stdout[-3000:]}\n" \
                                 f"{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- every table kernel the cuda backend has, against cpu, on test_table's cases --------------
TABLE_RUN = """
import json
import numpy as np
import tinygrad_ds.cuda as tc
tc.require()
import test_table as T
from tinygrad_ds import backend
cuda = backend.get("cuda")
lacking = backend.missing(cuda)

def dev(a):
    if isinstance(a, np.ndarray):
        return tc.to_device(a)
    if isinstance(a, tuple):
        return tuple(dev(v) for v in a)
    return a

def host(a):
    return a if isinstance(a, np.ndarray) else tc.to_host(a)

# the simulator runs a Python thread per GPU thread: these larger convolutions take 5-10 s each
# there, so they are left to scripts/gpu_check.py (the grouped, strided, dilated case stays)
SLOW = {"conv2d_forward-3x3", "conv2d_forward-depthwise", "conv2d_backward_input-3x3",
        "conv2d_backward_weight-3x3"}
ran, failures, unsupported = [], [], []
for case in T.CASES:
    if case.kernel in lacking or str(case) in SLOW:
        continue
    args = dev(case.args)  # copied before the cpu run: copy_into writes its dst
    try:
        if case.kernel == "bernoulli_mask":  # another generator: check the values and the rate
            gen, like, shape, p = case.args
            m = host(cuda.bernoulli_mask(gen, args[1], shape, p))
            assert m.shape == shape and m.dtype == like.dtype
            keep = 1 / (1 - p) if p < 1 else 0.0
            assert set(np.unique(m)) <= {0.0, np.float32(keep)}, np.unique(m)
            if p < 1:
                assert abs((m > 0).mean() - (1 - p)) < 0.05, (m > 0).mean()
            ran.append(str(case))
            continue
        want = T._as_list(T._run_cpu(case))
        got = T._as_list(getattr(cuda, case.kernel)(*args))
        assert len(got) == len(want), f"{len(got)} results, cpu {len(want)}"
        for k, (g, w) in enumerate(zip(got, want)):
            assert not isinstance(g, np.ndarray), f"result {k} came back on the host"
            g = host(g)
            assert g.dtype == w.dtype, f"result {k} is {g.dtype}, cpu gives {w.dtype}"
            T._close(g, w.astype(np.float64) if w.dtype.kind == "f" else w,
                     max(case.rtol, 1e-6) if w.dtype.kind == "f" else 0, f"result {k}")
        if case.kernel == "copy_into":
            assert got[0] is args[0], "copy_into returns its dst"
        ran.append(str(case))
    except Exception as e:
        if "only basic indices" in str(e):
            unsupported.append(str(case))
            continue
        failures.append(f"{case}: {type(e).__name__}: {e}")
print(json.dumps({"ran": ran, "failures": failures, "lacking": lacking,
                  "unsupported": unsupported}))
"""


@pytest.fixture(scope="module")
def table_report():
    if not HAS_NUMBA_CUDA:
        pytest.skip("numba.cuda is not importable (pip install numba-cuda)")
    return _sim(TABLE_RUN)


def test_cuda_kernels_match_cpu_under_the_simulator(table_report):
    assert table_report["failures"] == []
    # the core of the table runs: elementwise, reductions, matmul, movement, softmax, state
    for name in ("add-broadcast", "sum-keep0", "argmax-flat", "matmul-batched", "permute",
                 "softmax", "logsumexp-keep1", "copy_into", "index_errors", "cast-toint",
                 "conv2d_forward-grouped", "conv2d_backward_input-grouped",
                 "conv2d_backward_weight-grouped", "max_pool2d_backward",
                 "avg_pool2d_backward-no_pad",
                 "adaptive_avg_pool2d_backward", "batch_norm_backward_input",
                 "layer_norm_backward_input", "group_norm_backward_input",
                 "softmax_cross_entropy_backward", "bernoulli_mask", "bernoulli_mask-p1", "pad",
                 "concat", "gather", "scatter_add", "getitem-basic", "index_add-basic"):
        assert name in table_report["ran"], f"{name} did not run on cuda"


def test_cuda_says_which_indices_it_lacks(table_report):
    """Integer-array and boolean indices are not implemented on cuda: a clear error, no launch."""
    assert sorted(table_report["unsupported"]) == ["getitem-bool_mask", "getitem-int_array",
                                                   "index_add-repeated"]


def test_cuda_names_what_it_lacks(table_report):
    from tinygrad_ds.backend import KERNELS
    lacking = table_report["lacking"]
    assert set(lacking) < set(KERNELS)  # (empty now: every name has a cuda kernel)
    print(f"\ncuda lacks {len(lacking)} of {len(KERNELS)} table names: {', '.join(lacking)}")


# ---- tensors and modules on 'cuda', the transfer counter ---------------------------------------
TENSOR_RUN = """
import json
import numpy as np
import tinygrad_ds as tds
from tinygrad_ds import nn
out = {}
tds.manual_seed(0)
x = tds.randn(4, 3)
w = tds.randn(3, 5, requires_grad=True)
b = tds.randn(5, requires_grad=True)
tds.cuda.reset_transfer_stats()
xc, wc, bc = x.cuda(), w.cuda(), b.to("cuda")
out["devices"] = [xc.device, wc.device, x.device, xc.cpu().device]
out["leaf"] = [wc.is_leaf, wc.requires_grad]
out["after_to"] = tds.cuda.transfer_stats()
tds.cuda.reset_transfer_stats()
lc = ((xc @ wc + bc).tanh() * 0.5 - 1).relu().mean()  # numbers stay on the device: no copy
lc.backward()
out["step"] = tds.cuda.transfer_stats()
l = (((x @ w + b).tanh() * 0.5).softmax(axis=1) * 3).sum()
lc = (((xc @ wc + bc).tanh() * 0.5).softmax(axis=1) * 3).sum()
w.grad = b.grad = wc.grad = bc.grad = None
l.backward()
lc.backward()
out["loss"] = [l.item(), lc.item()]
out["gw"] = float(np.abs(wc.grad.numpy() - w.grad.numpy()).max())
out["gb"] = float(np.abs(bc.grad.numpy() - b.grad.numpy()).max())
out["numpy_type"] = type(xc.numpy()).__name__
m = nn.Linear(3, 2).to("cuda")
opt = tds.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
steps, launches = [], []
for _ in range(3):
    tds.cuda.reset_transfer_stats()
    tds.cuda.reset_launch_stats()
    opt.zero_grad()
    loss = ((m(xc) - 1.0) ** 2).mean()
    loss.backward()
    opt.step()
    steps.append(tds.cuda.transfer_stats())
    launches.append(tds.cuda.launch_stats()["launches"])
out["sgd_steps"] = steps
out["launches"] = launches
out["module"] = sorted({p.device for p in m.parameters()})
y = m(xc)
out["module_out"] = [y.device, list(y.shape)]
try:
    x + xc
except tds.TdsError as e:
    out["mixed"] = str(e)
print(json.dumps(out))
"""


@needs_numba_cuda
def test_tensors_and_modules_on_cuda_under_the_simulator():
    r = _sim(TENSOR_RUN)
    assert r["devices"] == ["cuda", "cuda", "cpu", "cpu"]
    assert r["leaf"] == [True, True]
    assert r["after_to"]["to_device"] == 3 and r["after_to"]["bytes_to_device"] == (12 + 15 + 5) * 4
    # a forward and backward on the device copy nothing either way
    assert r["step"] == {"to_device": 0, "to_host": 0, "bytes_to_device": 0, "bytes_to_host": 0}
    assert r["loss"][0] == pytest.approx(r["loss"][1], rel=1e-5)
    assert r["gw"] < 1e-5 and r["gb"] < 1e-5
    assert r["numpy_type"] == "ndarray"
    assert r["module"] == ["cuda"] and r["module_out"] == ["cuda", [4, 2]]
    assert "'cpu'" in r["mixed"] and "'cuda'" in r["mixed"]
    # an SGD step: its 0-d hyperparameters reach the device once; the next step copies nothing
    assert r["sgd_steps"][0]["to_host"] == 0 and r["sgd_steps"][0]["bytes_to_device"] < 64
    assert r["sgd_steps"][1] == {"to_device": 0, "to_host": 0, "bytes_to_device": 0,
                                 "bytes_to_host": 0}
    # kernel launches per step: counted, and the same for two equal steps (the first one also
    # makes the momentum buffers)
    assert r["launches"][1] == r["launches"][2] > 10


CNN_RUN = """
import json
import numpy as np
import tinygrad_ds as tds
from tinygrad_ds import nn
import tinygrad_ds.functional as F

def make():
    tds.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16, 3))

rng = np.random.default_rng(0)
xn = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
res = {}
for dev in ("cpu", "cuda"):
    m = make().to(dev)
    opt = tds.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    x, y = tds.Tensor(xn).to(dev), tds.Tensor(np.array([0, 2])).to(dev)
    tds.cuda.reset_transfer_stats()
    loss = F.cross_entropy(m(x), y)
    loss.backward()
    opt.step()
    stats = tds.cuda.transfer_stats()
    res[dev] = ([p.numpy() for p in m.parameters()] + [b.numpy() for _, b in m.named_buffers()],
                loss.item(), stats, sorted({p.device for p in m.parameters()}))
diff = max(float(np.abs(a.astype(np.float64) - b).max())
           for a, b in zip(res["cpu"][0], res["cuda"][0]))
print(json.dumps({"diff": diff, "loss": [res["cpu"][1], res["cuda"][1]], "stats": res["cuda"][2],
                  "devices": res["cuda"][3]}))
"""


@needs_numba_cuda
def test_a_cnn_training_step_on_cuda_equals_the_cpu_step():
    """Conv, batch norm, ReLU, max pool, linear, cross-entropy and SGD with momentum: one step
    on 'cuda' (simulated) leaves the parameters and running statistics the cpu step leaves."""
    r = _sim(CNN_RUN)
    assert r["devices"] == ["cuda"]
    assert r["diff"] < 1e-6
    assert r["loss"][0] == pytest.approx(r["loss"][1], rel=1e-6)
    # the step copies no array either way; the optimizer's hyperparameters are 0-d numpy values
    # that reach the device once (a few bytes each, counted)
    assert r["stats"]["to_host"] == 0 and r["stats"]["bytes_to_device"] < 100


# ---- compiled plans on the GPU: generated CUDA kernels for the fused groups -------------------
COMPILED_RUN = """
import json
import os
import time
import numpy as np
import tinygrad_ds as tds
import tinygrad_ds.functional as F
from tinygrad_ds import nn, optim

def mlp():
    return nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))

def cnn():
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12, 3))

def trainer(build, dev):
    tds.manual_seed(0)
    model = build().to(dev)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    def step(x, y):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss
    return model, step

out = {}
rng = np.random.default_rng(0)
for name, build, shape in [("mlp", mlp, (4, 6)), ("cnn", cnn, (2, 2, 4, 4))]:
    data = [(rng.standard_normal(shape).astype(np.float32), rng.integers(0, 3, shape[0]))
            for _ in range(2)]
    r = {}
    for kind in ("cpu", "cuda", "compiled"):
        t = time.time()
        dev = "cpu" if kind == "cpu" else "cuda"
        model, step = trainer(build, dev)
        f = tds.compile(step) if kind == "compiled" else step
        losses = []
        for k, (xn, yn) in enumerate(data):
            x, y = tds.Tensor(xn).to(dev), tds.Tensor(yn).to(dev)
            tds.cuda.reset_transfer_stats()
            tds.cuda.reset_launch_stats()
            loss = f(x, y)
            if k == 1:  # the second step: nothing left to compile, no state to create
                r[kind + "_stats"] = tds.cuda.transfer_stats()
                r[kind + "_launches"] = tds.cuda.launch_stats()["launches"]
            losses.append(loss.item())
            if k == 1:
                r[kind + "_item"] = tds.cuda.transfer_stats()["to_host"]
        state = [np.asarray(v.numpy() if hasattr(v, "numpy") else v, np.float64)
                 for v in model.state_dict().values()]
        grads = [p.grad.numpy().astype(np.float64) for p in model.parameters()]
        r[kind] = (losses, state, grads)
        if kind == "compiled":
            r["explain"] = [line for line in f.explain(file=open(os.devnull, "w")).splitlines()
                            if "on the GPU" in line]
        r[kind + "_devices"] = sorted({p.device for p in model.parameters()} |
                                      {p.grad.device for p in model.parameters()})
        r[kind + "_s"] = time.time() - t
    def diff(a, b):
        return max(float(np.abs(u - v).max() / max(np.abs(v).max(), 1e-30))
                   for u, v in zip(a, b))
    out[name] = {
        "loss": [r[k][0] for k in ("cpu", "cuda", "compiled")],
        "state_vs_cpu": diff(r["compiled"][1], r["cpu"][1]),
        "state_vs_cuda": diff(r["compiled"][1], r["cuda"][1]),
        "grad_vs_cpu": max(float(np.abs(u - v).max())
                           for u, v in zip(r["compiled"][2], r["cpu"][2]))
        / max(float(np.abs(v).max()) for v in r["cpu"][2]),
        "stats": r["compiled_stats"], "item": r["compiled_item"], "eager_stats": r["cuda_stats"],
        "explain": r["explain"],
        "launches": [r["cuda_launches"], r["compiled_launches"]],
        "devices": r["compiled_devices"], "s": [r[k + "_s"] for k in ("cpu", "cuda", "compiled")],
    }
# one compiled function called on cpu, then on cuda tensors of the same shape: a plan each
f = tds.compile(lambda x: (x * 2.0).relu() - 1.0)
a = tds.randn(3, 4)
want = f(a).numpy()
got = f(a.cuda())
out["switch"] = [float(np.abs(got.numpy() - want).max()), got.device, len(f.plans)]
print(json.dumps(out))
"""


@needs_numba_cuda
def test_compiled_training_steps_on_cuda_equal_eager_cuda_and_cpu():
    """An MLP and a conv + batch norm net: two SGD steps with momentum and weight decay, eager
    on 'cpu', eager on 'cuda' and tds.compile'd on 'cuda' (its fused groups generated as CUDA
    kernels) leave the same losses, parameters, running statistics and gradients."""
    r = _sim(COMPILED_RUN, timeout=240)
    for name in ("mlp", "cnn"):
        m = r[name]
        cpu, cuda, compiled = m["loss"]
        assert compiled == pytest.approx(cpu, rel=1e-5) and compiled == pytest.approx(cuda,
                                                                                 rel=1e-5)
        assert m["state_vs_cpu"] < 1e-5 and m["state_vs_cuda"] < 1e-5, name
        assert m["grad_vs_cpu"] < 1e-5, name
        assert m["devices"] == ["cuda"]  # parameters and their gradients stay on the GPU
        # the compiled step copies nothing; .item() then reads the loss (one copy)
        assert m["stats"] == {"to_device": 0, "to_host": 0, "bytes_to_device": 0,
                              "bytes_to_host": 0}, name
        assert m["item"] == 1
        # and so does the eager step on cuda, once its state exists (batch norm's step count + 1
        # and cross-entropy's ignore_index are made on the device, not copied there)
        assert m["eager_stats"] == m["stats"], name
        eager, fused = m["launches"]
        assert 0 < fused < eager, (name, m["launches"])  # fused loops: fewer launches
        assert m["explain"] == [f"  on the GPU the last replay launched {fused} kernels (a "
                                "generated loop is one launch; an op by its own forward one or "
                                "more)"]
    assert r["switch"] == [0.0, "cuda", 2]


# ---- bad input on the GPU: out of memory, shapes the kernels do not take --------------------
BAD_RUN = """
import json
import numpy as np
from numba import cuda
import tinygrad_ds as tds
import tinygrad_ds.backend.cuda.kernels as K
from tinygrad_ds.ops.state import assign
out = {}
tds.manual_seed(0)
x, w = tds.randn(4, 3).cuda(), tds.randn(3, 5).cuda()
w_before = w.numpy()


class CudaAPIError(Exception):  # what numba raises when cuMemAlloc fails
    pass


def refuse(*args, **kwargs):
    raise CudaAPIError(2, "Call to cuMemAlloc results in CUDA_ERROR_OUT_OF_MEMORY")


class Context:  # the simulator cannot say what is free: a device that can
    def get_memory_info(self):
        return 1000, 2000


real_alloc, real_copy, real_ctx = cuda.device_array, cuda.to_device, cuda.current_context
cuda.device_array, cuda.to_device, cuda.current_context = refuse, refuse, Context
tds.cuda.reset_launch_stats()
for name, fn in [("matmul", lambda: x @ w), ("to", lambda: tds.ones(2, 3).cuda()),
                 ("assign", lambda: assign(w, w * w))]:
    try:
        fn()
    except tds.cuda.CudaOutOfMemoryError as e:
        out[name] = [str(e), e.requested, e.free]
out["w_unchanged"] = bool(np.array_equal(w.numpy(), w_before))
out["launches_oom"] = tds.cuda.launch_stats()["launches"]
cuda.device_array, cuda.to_device, cuda.current_context = real_alloc, real_copy, real_ctx
# the grid's y (row tiles) has a limit, checked before any launch; its z (the batch) is
# launched in parts: a limit of 2 here stands for CUDA's 65,535
K.MAX_GRID_YZ = 2
tds.cuda.reset_launch_stats()
try:
    tds.ones(17, 3).cuda() @ tds.ones(3, 2).cuda()  # 3 row tiles of 8
except tds.TdsError as e:
    out["rows"] = str(e)
out["launches_rows"] = tds.cuda.launch_stats()["launches"]
a, b = tds.randn(5, 2, 3), tds.randn(5, 3, 2)
out["batched"] = float(np.abs((a.cuda() @ b.cuda()).numpy() - (a @ b).numpy()).max())
print(json.dumps(out))
"""


@needs_numba_cuda
def test_out_of_gpu_memory_and_unsupported_shapes_are_clear_errors():
    r = _sim(BAD_RUN)
    msg, requested, free = r["matmul"]
    assert requested == 4 * 5 * 4 and free == 1000
    assert "out of GPU memory" in msg and "(4, 5) float32 needs 80 bytes" in msg
    assert "1,000 bytes are free of 2,000" in msg and "nothing was written" in msg
    assert "a copy to the GPU of shape (2, 3) float32 needs 24 bytes" in r["to"][0]
    # the assign's new value could not be made: the parameter keeps its old value
    assert r["assign"][1] == 60 and r["w_unchanged"]
    assert r["launches_oom"] == 0  # every op failed before launching anything
    assert "matmul on cuda: (17, 3) @ (3, 2) has 17 rows, 3 tiles of 8" in r["rows"]
    assert "grid allows 2" in r["rows"] and r["launches_rows"] == 0
    assert r["batched"] < 1e-5  # 5 products launched in parts of 2


# ---- errors that need no GPU ---------------------------------------------------------------------
def test_cuda_without_the_extra_says_how_to_install(monkeypatch):
    from tinygrad_ds import cuda
    monkeypatch.setattr(cuda, "_registered", False)
    monkeypatch.setattr(cuda, "_numba_cuda", lambda: None)
    assert not cuda.is_available() and cuda.device_name() is None
    with pytest.raises(cuda.CudaUnavailableError, match=r"numba-cuda.*pip install"):
        tds.ones(2).to("cuda")
    with pytest.raises(tds.TdsError, match=r"numba-cuda.*pip install"):
        tds.zeros(2, device="cuda")


def test_cuda_without_a_gpu_says_so(monkeypatch):
    from tinygrad_ds import cuda

    class NoGpu:
        @staticmethod
        def is_available():
            return False

    monkeypatch.setattr(cuda, "_registered", False)
    monkeypatch.setattr(cuda, "_numba_cuda", lambda: NoGpu)
    with pytest.raises(cuda.CudaUnavailableError, match=r"no usable NVIDIA GPU.*nvidia-smi"):
        tds.ones(2).cuda()
    with pytest.raises(cuda.CudaUnavailableError, match="no usable NVIDIA GPU"):
        tds.nn.Linear(2, 2).to("cuda")


def test_unknown_device_names_it():
    with pytest.raises(tds.TdsError, match=r"unknown device 'tpu'.*'cpu' or 'cuda'"):
        tds.ones(2).to("tpu")


def test_mixed_devices_name_both():
    """kernels_for refuses a cpu array beside another backend's (a stand-in type here)."""
    from tinygrad_ds import backend

    class FakeDeviceArray:
        backend = "cuda"
        shape = (2,)

    with pytest.raises(tds.TdsError, match=r"two devices, 'cpu' and 'cuda'.*\.to\('cpu'\)"):
        backend.kernels_for(np.zeros(2), FakeDeviceArray())
    # a 0-d numpy constant beside a device array is let through (the cuda kernels copy it)
    assert backend._mixed((np.array(1.0), FakeDeviceArray()), "cpu", "cuda") == "cuda"


def test_import_does_not_import_numba_cuda():
    code = "import sys, tinygrad_ds; print('numba.cuda' in sys.modules, 'numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60).stdout.split()
    assert out == ["False", "False"]


# ---- the GPU build of the kernels (no GPU needed, but CUDA's NVVM and NVRTC libraries are) -------
def test_kernels_compile_to_ptx_for_the_gpu():
    """The simulator runs the kernels' Python; this compiles the GPU build (math.* functions,
    typed shared arrays) to PTX for sm_90, where numba finds NVVM and NVRTC (pip install
    'cuda-toolkit[nvvm,nvrtc]==13.*'); it skips otherwise."""
    code = """
    import numpy as np
    from numba import cuda, types as T
    import tinygrad_ds.backend.cuda.kernels as K
    from tinygrad_ds.backend.cuda import array as A, movement as M, nn as N
    f32, i64, b1 = (T.Array(t, 1, "C") for t in (T.float32, T.int64, T.boolean))
    tup = T.UniTuple(T.int64, 2)
    todo = [
        (K.elementwise("1 / (1 + F.exp(-a0)) if a0 >= 0 else F.exp(a0) / (1 + F.exp(a0))", 1),
         (f32, f32, tup, tup)),
        (K.elementwise("a0 if (a0 >= a1 or a0 != a0) else a1", 2), (f32, f32, f32, tup, tup, tup)),
        (K.elementwise("a1 if a0 else a2", 3), (f32, b1, f32, f32, tup, tup, tup, tup)),
        (K.elementwise("p0", 0, 1), (f32, tup, T.float32)),
        (K.reduce_rows("a", A._MAX, "-F.inf", np.float64), (f32, f32, T.int64)),
        (K.reduce_rows("np.int64(a != 0)", A._MAX, "0", np.int64, "v != 0"), (b1, b1, T.int64)),
        (K.argmax_rows(), (f32, i64, T.int64)),
        (K.matmul_tiled(np.float32), (f32, f32, f32) + (T.int64,) * 4),
        (K._compile(("col2im",), N._COL2IM), (f32, f32) + (T.int64,) * 14),
        (K._compile(("sce_fwd",), N._SCE_FWD), (f32, i64, f32, T.Array(T.float64, 1, "C"),
                                                T.int64, T.int64, T.float64)),
        (K._compile(("scatter",), M._SCATTER), (f32, f32, i64, tup, tup, T.int64, T.int64)),
        (K._compile(("mask",), M._MASK), (f32, T.int64, T.int64, T.float64)),
    ]
    try:
        cuda.compile_ptx(todo[0][0].py_func, todo[0][1], cc=(9, 0))
    except Exception as e:
        if "nvvm" in str(e).lower() or "nvrtc" in str(e).lower():
            print("SKIP", str(e).splitlines()[0][:200])
            raise SystemExit(0)
        raise
    for disp, sig in todo:
        ptx, _ = cuda.compile_ptx(disp.py_func, sig, cc=(9, 0))
        assert ".entry" in ptx
    print("OK", len(todo))
    """
    if not HAS_NUMBA_CUDA:
        pytest.skip("numba.cuda is not importable (pip install numba-cuda)")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    if last.startswith("SKIP"):
        pytest.skip(f"numba cannot build PTX here: {last[5:]}")
    assert last == "OK 12"


def test_generated_cuda_kernels_compile_to_ptx_for_the_gpu(tmp_path):
    """The compiler's CUDA kernels for every fused group of a conv + batch norm training step
    (batch norm's apply, ReLU's backward, the optimizer's folded stores) and of a chain of
    every unary op compile to PTX for sm_90, where numba finds NVVM (else it skips, as above):
    the simulator runs the kernels' Python, which accepts things the GPU's compiler does not."""
    code = """
    import numpy as np
    from numba import cuda, types as T
    from numba.np.numpy_support import from_dtype
    import tinygrad_ds as tds
    from tinygrad_ds.compile import PASSES, fuse
    from tinygrad_ds.compile.codegen import load_kernel
    from tinygrad_ds.compile.cuda_codegen import cuda_group_source
    import test_compile as TC

    def sources(fn, *args):
        g = tds.trace(fn, *args)
        for p in PASSES:
            g = PASSES[p](g).check()
        for grp in fuse(g).groups:
            sig = tuple(T.Array(from_dtype(np.dtype(g.nodes[i].dtype)), len(g.nodes[i].shape),
                                "C") for i in grp.inputs + grp.outputs)
            yield cuda_group_source(g, grp)[0], sig

    b = tds.Tensor(np.linspace(-1, 1, 5, dtype=np.float32))

    def unary(x):
        y = ((x + b).relu() * 2.0 - x.sigmoid()).maximum(x.tanh()).abs().sign()
        return (y + x.exp().log().sqrt() * x.sum()).leaky_relu(0.1)

    _, step = TC._trainer(TC._convnet)
    todo = dict(sources(unary, tds.Tensor(np.ones((3, 5), np.float32))))
    todo.update(sources(step, tds.Tensor(np.ones((2, 3, 8, 8), np.float32)),
                        tds.Tensor(np.zeros(2, np.int64))))
    first = next(iter(todo))
    try:
        cuda.compile_ptx(load_kernel(first).py_func, todo[first], cc=(9, 0))
    except Exception as e:
        if "nvvm" in str(e).lower() or "nvrtc" in str(e).lower():
            print("SKIP", str(e).splitlines()[0][:200])
            raise SystemExit(0)
        raise
    names = set()
    for src, sig in todo.items():
        kernel = load_kernel(src)
        ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(9, 0))
        assert ".entry" in ptx
        names.add(kernel.py_func.__name__)
    print("OK", len(todo), " ".join(sorted(names)))
    """
    if not HAS_NUMBA_CUDA:
        pytest.skip("numba.cuda is not importable (pip install numba-cuda)")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env.update(PYTHONPATH=str(HERE), TDS_CACHE=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    if last.startswith("SKIP"):
        pytest.skip(f"numba cannot build PTX here: {last[5:]}")
    n, names = last.split()[1], last.split()[2:]
    assert int(n) >= 10
    for part in ("fused_batch_norm_relu", "sigmoid", "assign", "where"):
        assert any(part in name for name in names), (part, names)


def test_gpu_benchmark_without_a_gpu_says_so_and_appends_nothing():
    """benchmarks/gpu.py where no GPU is lent (the simulator counts as none): one line, exit 0,
    RESULTS.md untouched."""
    results = HERE.parent / "benchmarks" / "RESULTS.md"
    before = results.read_bytes()
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, str(HERE.parent / "benchmarks" / "gpu.py"), "--quick"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("benchmarks/gpu.py: no GPU here"), lines
    assert "simulator" in lines[0]
    assert results.read_bytes() == before
