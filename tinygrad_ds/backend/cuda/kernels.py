"""Generated numba.cuda kernels: elementwise (with broadcasting by strides), row reductions in
shared memory, and the tiled matmul. Each kernel is generated from a source template on its first
use and cached by its parameters; numba compiles it again per argument types.

Arrays reach the kernels flattened (1-D, C-contiguous): an element's position in an input is
found from the output's flat index, the output's shape and the input's strides in elements (0
along a broadcast axis). Under numba's simulator (NUMBA_ENABLE_CUDASIM=1) every thread is a Python
thread, so blocks are small there, and the math functions are numpy's (Python's math.exp raises
OverflowError where a GPU gives inf).
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
from numba import config, cuda

from ... import cuda as tcuda

SIM = bool(config.ENABLE_CUDASIM)
TPB = 4 if SIM else 256  # threads per block, a power of two (the tree reductions halve it)
TILE = 8 if SIM else 16   # matmul tile side: TILE x TILE threads per block
MAX_GRID_YZ = 65535  # CUDA's limit on a grid's y and z sizes (x allows 2**31 - 1 blocks)

if SIM:
    F = SimpleNamespace(exp=np.exp, log=np.log, sqrt=np.sqrt, tanh=np.tanh, pow=np.power,
                        erf=math.erf, inf=math.inf, nan=math.nan)
else:
    F = SimpleNamespace(exp=math.exp, log=math.log, sqrt=math.sqrt, tanh=math.tanh,
                        pow=math.pow, erf=math.erf, inf=math.inf, nan=math.nan)
if SIM:  # the simulator looks names up in the kernel's globals at run time: give it numpy's
    _NS = {"cuda": cuda, "F": F, "math": math, "np": np}
else:  # on the GPU, F.exp would be an attribute of an opaque object: name math's functions
    _NS = {"cuda": cuda, "math": math, "np": np}

_cache: dict[tuple, object] = {}


class Counted:
    """A compiled kernel: `kernel[grid, block](*args)` launches it as numba's does, and counts
    the launch in `tds.cuda.launch_stats()`. Other attributes are the numba kernel's."""

    __slots__ = ("fn",)

    def __init__(self, fn):
        self.fn = fn

    def __getitem__(self, config):
        return _Launch(self.fn[config])

    def __getattr__(self, name: str):
        return getattr(self.fn, name)


class _Launch:
    __slots__ = ("configured",)

    def __init__(self, configured):
        self.configured = configured

    def __call__(self, *args):
        tcuda._launches["launches"] += 1
        return self.configured(*args)


def _compile(key: tuple, src: str, name: str = "k"):
    fn = _cache.get(key)
    if fn is None:
        ns = dict(_NS)
        if not SIM:
            src = src.replace("F.", "math.")
        exec(compile(src, f"<tds cuda {key[0]}>", "exec"), ns)
        fn = _cache[key] = Counted(cuda.jit(ns[name]))
    return fn


def blocks(n: int, tpb: int = TPB) -> int:
    return max(1, (n + tpb - 1) // tpb)


def elementwise(expr: str, nin: int, nparams: int = 0):
    """A kernel k(out, x0.., shape, s0.., p0..) writing out[i] = expr(a0.., p0..) where a_j is
    x_j's element for output index i (out flat, shape the output's, s_j x_j's element strides)."""
    key = ("ew", expr, nin, nparams)
    xs = [f"x{j}" for j in range(nin)]
    ss = [f"s{j}" for j in range(nin)]
    ps = [f"p{j}" for j in range(nparams)]
    lines = [f"def k(out, {', '.join(xs + ['shape'] + ss + ps)}):",
             "    i = cuda.grid(1)",
             "    if i >= out.size:",
             "        return",
             "    rem = i"]
    lines += [f"    j{j} = 0" for j in range(nin)]
    lines += ["    for d in range(len(shape) - 1, -1, -1):",
              "        n = shape[d]",
              "        q = rem % n",
              "        rem //= n"]
    lines += [f"        j{j} += q * s{j}[d]" for j in range(nin)]
    lines += [f"    a{j} = x{j}[j{j}]" for j in range(nin)]
    lines += [f"    out[i] = {expr}"]
    return _compile(key, "\n".join(lines) + "\n")


def reduce_rows(load: str, combine: str, ident: str, acc_dtype, final: str = "v"):
    """A kernel k(x, out, K): one block per row of x (M rows of K, flat); out[row] = final(v) for
    v the fold of load(a) over the row with combine(u, w), in shared memory (a tree of TPB).
    combine is inlined (u, w are locals), so the kernel needs no device function."""
    key = ("red", load, combine, ident, np.dtype(acc_dtype).name, final, TPB)
    dt = f"np.{np.dtype(acc_dtype).name}"
    src = f"""
def k(x, out, K):
    row = cuda.blockIdx.x
    t = cuda.threadIdx.x
    sh = cuda.shared.array({TPB}, {dt})
    acc = {dt}({ident})
    j = t
    while j < K:
        a = x[row * K + j]
        u = acc
        w = {dt}({load})
        acc = {combine}
        j += {TPB}
    sh[t] = acc
    cuda.syncthreads()
    s = {TPB // 2}
    while s > 0:
        if t < s:
            u = sh[t]
            w = sh[t + s]
            sh[t] = {combine}
        cuda.syncthreads()
        s //= 2
    if t == 0:
        v = sh[0]
        out[row] = {final}
"""
    return _compile(key, src)


# (v, i) beats (bv, bi) for argmax: NaN beats numbers, then larger, then the earlier index
_BETTER = ("(bv != bv and v != v and i < bi) or "
           "(bv == bv and (v != v or v > bv or (v == bv and i < bi)))")


def argmax_rows():
    """k(x, out, K): out[row] = the first index of the row's largest value (NaN counts as the
    largest, as numpy's argmax)."""
    key = ("argmax", TPB)
    src = f"""
def k(x, out, K):
    row = cuda.blockIdx.x
    t = cuda.threadIdx.x
    sv = cuda.shared.array({TPB}, np.float64)
    si = cuda.shared.array({TPB}, np.int64)
    bv = -math.inf
    bi = K
    i = t
    while i < K:
        v = np.float64(x[row * K + i])
        if {_BETTER}:
            bv = v
            bi = i
        i += {TPB}
    sv[t] = bv
    si[t] = bi
    cuda.syncthreads()
    s = {TPB // 2}
    while s > 0:
        if t < s:
            v = sv[t + s]
            i = si[t + s]
            bv = sv[t]
            bi = si[t]
            if {_BETTER}:
                sv[t] = v
                si[t] = i
        cuda.syncthreads()
        s //= 2
    if t == 0:
        out[row] = si[0] if si[0] < K else 0
"""
    return _compile(key, src)


def matmul_tiled(acc_dtype):
    """k(A, B, C, n, kk, m, z0): C[z] = A[z] @ B[z] for flat (Z, n, kk) and (Z, kk, m) inputs,
    one TILE x TILE block per output tile, both operands' tiles staged in shared memory; the
    grid's z is the product's index from z0 (a batch over MAX_GRID_YZ is launched in parts)."""
    key = ("matmul", np.dtype(acc_dtype).name, TILE)
    dt = f"np.{np.dtype(acc_dtype).name}"
    src = f"""
def k(A, B, C, n, kk, m, z0):
    sa = cuda.shared.array(({TILE}, {TILE}), {dt})
    sb = cuda.shared.array(({TILE}, {TILE}), {dt})
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    z = cuda.blockIdx.z + z0
    row = cuda.blockIdx.y * {TILE} + ty
    col = cuda.blockIdx.x * {TILE} + tx
    acc = {dt}(0)
    for t0 in range(0, kk, {TILE}):
        if row < n and t0 + tx < kk:
            sa[ty, tx] = A[z * n * kk + row * kk + t0 + tx]
        else:
            sa[ty, tx] = 0
        if col < m and t0 + ty < kk:
            sb[ty, tx] = B[z * kk * m + (t0 + ty) * m + col]
        else:
            sb[ty, tx] = 0
        cuda.syncthreads()
        for q in range({TILE}):
            acc += sa[ty, q] * sb[q, tx]
        cuda.syncthreads()
    if row < n and col < m:
        C[z * n * m + row * m + col] = acc
"""
    return _compile(key, src)
