"""The cuda backend's array primitives on numba device arrays (see table.py for the contracts).

Every array this backend makes is C-contiguous: movement ops that are views on the CPU (permute,
expand) are copies here, made by the elementwise kernel with the input's strides. A 0-d numpy
constant an op made on the host (a Python number turned into an array) is copied to the device
and counted in `tds.cuda.transfer_stats()`.
"""
from __future__ import annotations

import builtins
import math

import numpy as np

from ... import cuda as tcuda
from ...errors import TdsError
from . import kernels as K

# ---- helpers -------------------------------------------------------------------------------------


_consts: dict[tuple, object] = {}  # 0-d host constants already copied, by dtype and bytes


def _dev(x):
    """x on the device: device arrays as they are, numpy arrays copied (counted). A 0-d constant
    (an optimizer's learning rate, a Python number an op turned into an array) is copied once and
    kept, so that a training step's later calls copy nothing; kernels never write their inputs."""
    if isinstance(x, np.ndarray) or np.isscalar(x):
        a = np.asarray(x)
        if a.ndim:
            return tcuda.to_device(a)
        key = (a.dtype.str, a.tobytes())
        d = _consts.get(key)
        if d is None:
            if len(_consts) >= 1024:  # a schedule's ever-changing learning rates
                _consts.clear()
            d = _consts[key] = tcuda.to_device(a)
        return d
    return x


def _empty(shape, dtype):
    return tcuda.empty(shape, dtype)  # out of memory: CudaOutOfMemoryError, bytes and free


def _flat(x):
    return x.reshape(builtins.max(x.size, 1)) if x.size else x.reshape(0)


def _c_strides(shape) -> tuple[int, ...]:
    st, acc = [], 1
    for n in reversed(shape):
        st.append(acc)
        acc *= n
    return tuple(reversed(st))


def _bstrides(shape, out_shape) -> tuple[int, ...]:
    """x's element strides seen from out_shape (numpy broadcasting: 0 along broadcast axes)."""
    st = _c_strides(shape)
    lead = len(out_shape) - len(shape)
    return tuple(0 if d < lead or shape[d - lead] == 1 else st[d - lead]
                 for d in range(len(out_shape)))


def _launch(expr, out_shape, dtype, inputs, strides, params=(), out=None):
    """Run the elementwise kernel of `expr` into a new array (or `out`) of out_shape."""
    out_shape = tuple(out_shape)
    if out is None:
        out = _empty(out_shape, dtype)
    n = math.prod(out_shape)
    if n == 0:
        return out
    shape = out_shape or (1,)
    strides = [s or (0,) for s in strides]
    k = K.elementwise(expr, len(inputs), len(params))
    k[K.blocks(n), K.TPB](_flat(out), *[_flat(x) for x in inputs], shape, *strides, *params)
    return out


def _ew(expr, *xs, dtype=None, params=()):
    xs = [_dev(x) for x in xs]
    out_shape = np.broadcast_shapes(*[x.shape for x in xs])
    dt = xs[0].dtype if dtype is None else dtype
    return _launch(expr, out_shape, dt, xs, [_bstrides(x.shape, out_shape) for x in xs],
                   params)


# ---- elementwise ------------------------------------------------------------------------------
def neg(x): return _ew("-a0", x)
def exp(x): return _ew("F.exp(a0)", x)
def log(x): return _ew("F.log(a0) if a0 > 0 else (-F.inf if a0 == 0 else F.nan)", x)
def sqrt(x): return _ew("F.sqrt(a0) if a0 >= 0 else F.nan", x)
def abs(x): return _ew("abs(a0)", x)  # noqa: A001
def sign(x): return _ew("1 if a0 > 0 else (-1 if a0 < 0 else a0)", x)
def relu(x): return _ew("a0 if not (a0 <= 0) else 0", x)
def tanh(x): return _ew("F.tanh(a0)", x)
def erf(x): return _ew("F.erf(a0)", x)


def sigmoid(x):
    return _ew("1 / (1 + F.exp(-a0)) if a0 >= 0 else F.exp(a0) / (1 + F.exp(a0))", x)


def leaky_relu(x, slope):
    return _ew("a0 if a0 > 0 else a0 * p0", x, params=(float(slope),))


def add(a, b): return _ew("a0 + a1", a, b)
def sub(a, b): return _ew("a0 - a1", a, b)
def mul(a, b): return _ew("a0 * a1", a, b)
def div(a, b): return _ew("a0 / a1", a, b)
def pow(a, b): return _ew("F.pow(a0, a1)", a, b)  # noqa: A001
def maximum(a, b): return _ew("a0 if (a0 >= a1 or a0 != a0) else a1", a, b)
def minimum(a, b): return _ew("a0 if (a0 <= a1 or a0 != a0) else a1", a, b)
def less(a, b): return _ew("a0 < a1", a, b, dtype=np.bool_)
def less_equal(a, b): return _ew("a0 <= a1", a, b, dtype=np.bool_)
def equal(a, b): return _ew("a0 == a1", a, b, dtype=np.bool_)
def not_equal(a, b): return _ew("a0 != a1", a, b, dtype=np.bool_)


def where(cond, a, b):
    cond, a, b = _dev(cond), _dev(a), _dev(b)
    out_shape = np.broadcast_shapes(cond.shape, a.shape, b.shape)
    return _launch("a1 if a0 else a2", out_shape, a.dtype, [cond, a, b],
                   [_bstrides(x.shape, out_shape) for x in (cond, a, b)])


def cast(x, dtype):
    x = _dev(x)
    if x.dtype == np.dtype(dtype):
        return x
    expr = "a0 != 0" if np.dtype(dtype) == np.bool_ else "a0"
    return _launch(expr, x.shape, dtype, [x], [_c_strides(x.shape)])


# ---- reductions ----------------------------------------------------------------------------------
def _rows(x, axes):
    """x with the reduced axes moved last, as (M rows, K) flat, and the kept shape."""
    axes = tuple(sorted(a % builtins.max(x.ndim, 1) for a in axes)) if x.ndim else ()
    keep = [d for d in range(x.ndim) if d not in axes]
    if list(axes) != list(range(x.ndim - len(axes), x.ndim)):
        x = permute(x, tuple(keep) + axes)
    m = math.prod(x.shape[d] for d in range(len(keep)))
    k = math.prod(x.shape[len(keep):])
    return x, m, k, tuple(x.shape[: len(keep)])


def _keepdims_shape(shape, axes):
    return tuple(1 if d in axes else n for d, n in enumerate(shape))


def _reduce(x, axes, keepdims, load, combine, ident, acc, out_dtype, final="v"):
    x = _dev(x)
    if axes is None:
        axes = tuple(range(x.ndim))
    axes = tuple(axes)
    xr, m, k, kept = _rows(x, axes)
    out = _empty((m,), out_dtype)
    if m:
        K.reduce_rows(load, combine, ident, acc, final)[m, K.TPB](_flat(xr), out, k)
    shape = _keepdims_shape(x.shape, axes) if keepdims else kept
    return out.reshape(shape) if shape else out.reshape(())


def _is_float(dt) -> bool:
    return np.dtype(dt).kind == "f"


def sum(x, axes, keepdims):  # noqa: A001
    x = _dev(x)
    if _is_float(x.dtype):
        return _reduce(x, axes, keepdims, "a", "u + w", "0.0", np.float64, x.dtype)
    return _reduce(x, axes, keepdims, "np.int64(a)", "u + w", "0", np.int64, np.int64)


def mean(x, axes, keepdims):
    x = _dev(x)
    n = math.prod(x.shape[a] for a in axes)
    s = sum(x, axes, keepdims)
    if not _is_float(s.dtype):
        s = cast(s, np.float64)
    return _ew("a0 * p0", s, params=(1.0 / n if n else math.nan,))


_MAX = "u if (u >= w or u != u) else w"
_MIN = "u if (u <= w or u != u) else w"


def max(x, axes, keepdims):  # noqa: A001
    x = _dev(x)
    if _is_float(x.dtype):
        return _reduce(x, axes, keepdims, "a", _MAX, "-F.inf", np.float64, x.dtype)
    return _reduce(x, axes, keepdims, "np.int64(a)", _MAX, "-(2**62)", np.int64, x.dtype)


def min(x, axes, keepdims):  # noqa: A001
    x = _dev(x)
    if _is_float(x.dtype):
        return _reduce(x, axes, keepdims, "a", _MIN, "F.inf", np.float64, x.dtype)
    return _reduce(x, axes, keepdims, "np.int64(a)", _MIN, "2**62", np.int64, x.dtype)


def argmax(x, axis, keepdims):
    x = _dev(x)
    if axis is None:
        xr, m, k = x.reshape(1, x.size) if x.ndim else x.reshape(1, 1), 1, builtins.max(x.size, 1)
        out = _empty((1,), np.int64)
        K.argmax_rows()[1, K.TPB](_flat(xr), out, k)
        return out.reshape((1,) * x.ndim) if keepdims else out.reshape(())
    xr, m, k, kept = _rows(x, (axis,))
    out = _empty((m,), np.int64)
    if m:
        K.argmax_rows()[m, K.TPB](_flat(xr), out, k)
    shape = _keepdims_shape(x.shape, (axis,)) if keepdims else kept
    return out.reshape(shape) if shape else out.reshape(())


def any(x):  # noqa: A001
    return _reduce(x, None, False, "np.int64(a != 0)", _MAX, "0", np.int64, np.bool_,
                   "v != 0")


def all(x):  # noqa: A001
    return _reduce(x, None, False, "np.int64(a != 0)", _MIN, "1", np.int64, np.bool_,
                   "v != 0")


# ---- movement -----------------------------------------------------------------------------------
def reshape(x, shape):
    return _dev(x).reshape(tuple(shape)) if tuple(shape) else _dev(x).reshape(())


def permute(x, axes):
    x = _dev(x)
    st = _c_strides(x.shape)
    out_shape = tuple(x.shape[a] for a in axes)
    return _launch("a0", out_shape, x.dtype, [x], [tuple(st[a] for a in axes)])


def expand(x, shape):
    x = _dev(x)
    return _launch("a0", shape, x.dtype, [x], [_bstrides(x.shape, tuple(shape))])


def contiguous(x):
    return _dev(x)


def copy(x):
    x = _dev(x)
    return _launch("a0", x.shape, x.dtype, [x], [_c_strides(x.shape)])


# ---- products and softmax -----------------------------------------------------------------------
def matmul(a, b):
    a, b = _dev(a), _dev(b)
    va, vb = a.ndim == 1, b.ndim == 1
    if va:
        a = a.reshape(1, a.shape[0])
    if vb:
        b = b.reshape(b.shape[0], 1)
    sa, sb = tuple(a.shape), tuple(b.shape)  # the simulator's shapes lack negative indexing
    n, k = sa[-2:]
    m = sb[-1]
    batch = tuple(np.broadcast_shapes(sa[:-2], sb[:-2]))
    rows = (n + K.TILE - 1) // K.TILE
    if rows > K.MAX_GRID_YZ:  # the grid's y counts row tiles: checked before any launch
        raise TdsError(f"matmul on cuda: {sa} @ {sb} has {n:,} rows, {rows:,} tiles of {K.TILE}; "
                       f"the GPU's grid allows {K.MAX_GRID_YZ:,} (at most "
                       f"{K.MAX_GRID_YZ * K.TILE:,} rows): split the rows, or run it on the cpu")
    if sa[:-2] != batch:
        a = expand(a, batch + (n, k))
    if sb[:-2] != batch:
        b = expand(b, batch + (k, m))
    z = math.prod(batch)
    out = _empty(batch + (n, m), a.dtype)
    if z and n and m:
        acc = np.float64 if a.dtype == np.float64 else np.float32
        kernel = K.matmul_tiled(acc)
        for z0 in range(0, z, K.MAX_GRID_YZ):  # a batch of more products: launched in parts
            grid = ((m + K.TILE - 1) // K.TILE, rows, builtins.min(z - z0, K.MAX_GRID_YZ))
            kernel[grid, (K.TILE, K.TILE)](_flat(a), _flat(b), _flat(out), n, k, m, z0)
    if va and vb:
        return out.reshape(batch) if batch else out.reshape(())
    if va:
        return out.reshape(batch + (m,))
    if vb:
        return out.reshape(batch + (n,))
    return out


def _shift(x, axes):
    """(m, x - m, log(sum(exp(x - m)))) with m the max over axes (0 where not finite)."""
    m = max(x, axes, True)
    m = _ew("a0 if (a0 - a0) == 0 else 0", m)  # inf - inf and nan - nan are nan
    shifted = sub(x, m)
    return m, shifted, log(sum(exp(shifted), axes, True))


def softmax(x, axis):
    x = _dev(x)
    if x.size == 0:
        return _empty(x.shape, x.dtype)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    _, shifted, _ = _shift(x, axes)
    e = exp(shifted)
    return div(e, sum(e, axes, True))


def log_softmax(x, axis):
    x = _dev(x)
    if x.size == 0:
        return _empty(x.shape, x.dtype)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    _, shifted, log_s = _shift(x, axes)
    return sub(shifted, log_s)


def logsumexp(x, axes, keepdims):
    x = _dev(x)
    axes = tuple(axes)
    m, _, log_s = _shift(x, axes)
    out = add(m, log_s)
    if keepdims:
        return out
    shape = tuple(n for d, n in enumerate(x.shape) if d not in axes)
    return out.reshape(shape) if shape else out.reshape(())


# ---- creation, state, checks ---------------------------------------------------------------------
def full(shape, value, dtype):
    shape = tuple(shape)
    value = bool(value) if np.dtype(dtype) == np.bool_ else value
    return _launch("p0", shape, dtype, [], [], params=(np.dtype(dtype).type(value),))


def copy_into(dst, src):
    src = _dev(src)
    _launch("a0", dst.shape, dst.dtype, [src], [_bstrides(src.shape, dst.shape)], out=dst)
    return dst


def index_errors(t, low, high, ignore):
    """[count of entries outside [low, high) that differ from ignore, the first one (0 if none)],
    from two reductions (a count, and the first bad position by argmax over the bad mask)."""
    t = _dev(t)
    if t.size == 0:
        return full((2,), 0, np.int64)
    bad = _ew("(a0 < p0 or a0 >= p1) and a0 != p2", t, dtype=np.bool_,
              params=(int(low), int(high), int(ignore)))
    n = sum(bad, tuple(range(bad.ndim)), False) if bad.ndim else cast(bad, np.int64)
    first = argmax(bad, None, False)
    # value at the first bad position, 0 if there is none
    tf = _flat(t)
    out = _empty((2,), np.int64)
    pick = K._compile(("pick",), """
def k(out, n, first, t):
    if cuda.grid(1) == 0:
        c = n[0]
        out[0] = c
        out[1] = t[first[0]] if c > 0 else 0
""")
    pick[1, 1](out, _flat(n), _flat(first), tf)
    return out
