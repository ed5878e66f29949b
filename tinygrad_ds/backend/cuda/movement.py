"""The cuda backend's indexing and layout kernels: basic getitem (a strided read), index_add for
basic indices (a strided write), pad, concat, gather, scatter_add (atomic adds), and dropout
masks (splitmix64 of a seed from the cpu generator and the element index).

Integer-array and boolean indices are not implemented on cuda yet: getitem and index_add raise a
TdsError naming the index before any launch.
"""
from __future__ import annotations

import math

import numpy as np

from ...errors import TdsError
from . import array as A
from . import kernels as K

# out[i] = x[base + off(i)] for off the dot product of i's coordinates in `shape` with `st`
_STRIDED_READ = """
def k(out, x, shape, st, total, base):
    i = cuda.grid(1)
    if i >= total:
        return
    rem = i
    j = base
    for d in range(len(shape) - 1, -1, -1):
        n = shape[d]
        j += (rem % n) * st[d]
        rem //= n
    out[i] = x[j]
"""

# out[base + off(i)] (+)= x[i]
_STRIDED_WRITE = """
def k(out, x, shape, st, total, base, accumulate):
    i = cuda.grid(1)
    if i >= total:
        return
    rem = i
    j = base
    for d in range(len(shape) - 1, -1, -1):
        n = shape[d]
        j += (rem % n) * st[d]
        rem //= n
    if accumulate:
        cuda.atomic.add(out, j, x[i])
    else:
        out[j] = x[i]
"""

# the gather and the scatter: out/x position from index's coordinates, axis replaced by index[i]
_GATHER = """
def k(out, x, index, ishape, xst, axis, total):
    i = cuda.grid(1)
    if i >= total:
        return
    rem = i
    j = 0
    for d in range(len(ishape) - 1, -1, -1):
        n = ishape[d]
        q = rem % n
        rem //= n
        if d == axis:
            q = index[i]
        j += q * xst[d]
    out[i] = x[j]
"""

_SCATTER = """
def k(out, g, index, ishape, ost, axis, total):
    i = cuda.grid(1)
    if i >= total:
        return
    rem = i
    j = 0
    for d in range(len(ishape) - 1, -1, -1):
        n = ishape[d]
        q = rem % n
        rem //= n
        if d == axis:
            q = index[i]
        j += q * ost[d]
    cuda.atomic.add(out, j, g[i])
"""


def _go(key, src, total, *args):
    if total:
        K._compile(key, src)[K.blocks(total), K.TPB](*args)


def _basic(shape, index):
    """(offset, out shape, strides in elements) of numpy basic indexing of a C-contiguous array
    of `shape`; None when the index is not basic (integer arrays, boolean masks)."""
    items = index if isinstance(index, tuple) else (index,)
    if not all(i is None or i is Ellipsis or isinstance(i, (int, np.integer, slice))
               for i in items):
        return None
    n_real = sum(1 for i in items if i is not None and i is not Ellipsis)
    if Ellipsis in items:
        e = items.index(Ellipsis)
        items = items[:e] + (slice(None),) * (len(shape) - n_real) + items[e + 1:]
    items = items + (slice(None),) * (len(shape) - sum(1 for i in items if i is not None))
    st = A._c_strides(shape)
    off, out_shape, out_st, d = 0, [], [], 0
    for it in items:
        if it is None:
            out_shape.append(1)
            out_st.append(0)
            continue
        if isinstance(it, slice):
            start, stop, step = it.indices(shape[d])
            out_shape.append(len(range(start, stop, step)))
            out_st.append(step * st[d])
            off += start * st[d]
        else:
            off += (int(it) % shape[d]) * st[d]
        d += 1
    return off, tuple(out_shape), tuple(out_st)


def _unsupported(op: str, shape, index):
    def kind(i):
        dt = getattr(i, "dtype", None)
        if dt is None:
            return type(i).__name__
        if np.dtype(dt) == np.bool_:
            return "a boolean mask"
        return f"an integer array {tuple(i.shape)}"
    kinds = sorted({kind(i) for i in (index if isinstance(index, tuple) else (index,))
                    if getattr(i, "dtype", None) is not None})
    raise TdsError(f"{op} on cuda: only basic indices (ints, slices, None, ...) are implemented; "
                   f"this index has {', '.join(kinds)} (array of shape {tuple(shape)}): move the "
                   f"tensor to the cpu for it, .to('cpu')")


def getitem(x, index):
    x = A._dev(x)
    basic = _basic(tuple(x.shape), index)
    if basic is None:
        _unsupported("getitem", x.shape, index)
    off, shape, st = basic
    out = A._empty(shape, x.dtype)
    total = math.prod(shape)
    if total:
        _go(("sread",), _STRIDED_READ, total, A._flat(out), A._flat(x), shape or (1,),
            st or (0,), total, off)
    return out


def index_add(g, shape, index):
    g = A._dev(g)
    shape = tuple(shape)
    basic = _basic(shape, index)
    if basic is None:
        _unsupported("index_add", shape, index)
    off, gshape, st = basic
    out = A.full(shape, 0, g.dtype)
    g = A.expand(g, gshape) if tuple(g.shape) != gshape else g
    total = math.prod(gshape)
    if total:
        _go(("swrite",), _STRIDED_WRITE, total, A._flat(out), A._flat(g), gshape or (1,),
            st or (0,), total, off, False)
    return out


def pad(x, pad_width, value):
    x = A._dev(x)
    shape = tuple(x.shape)
    out_shape = tuple(n + a + b for n, (a, b) in zip(shape, pad_width))
    out = A.full(out_shape, value, x.dtype)
    off = sum(a * s for (a, _), s in zip(pad_width, A._c_strides(out_shape)))
    total = math.prod(shape)
    if total:
        _go(("swrite",), _STRIDED_WRITE, total, A._flat(out), A._flat(x), shape or (1,),
            A._c_strides(out_shape) or (0,), total, off, False)
    return out


def concat(xs, axis):
    xs = [A._dev(x) for x in xs]
    shape = list(xs[0].shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    out = A._empty(tuple(shape), xs[0].dtype)
    st = A._c_strides(tuple(shape))
    at = 0
    for x in xs:
        total = x.size
        if total:
            _go(("swrite",), _STRIDED_WRITE, total, A._flat(out), A._flat(x), tuple(x.shape), st,
                total, at * st[axis], False)
        at += x.shape[axis]
    return out


def gather(x, index, axis):
    x, index = A._dev(x), A._dev(index)
    out = A._empty(tuple(index.shape), x.dtype)
    total = index.size
    _go(("gather",), _GATHER, total, A._flat(out), A._flat(x), A._flat(index),
        tuple(index.shape), A._c_strides(tuple(x.shape)), axis, total)
    return out


def scatter_add(g, index, axis, size):
    g, index = A._dev(g), A._dev(index)
    shape = list(g.shape)
    shape[axis] = size
    out = A.full(tuple(shape), 0, g.dtype)
    total = index.size
    _go(("scatter",), _SCATTER, total, A._flat(out), A._flat(g), A._flat(index),
        tuple(index.shape), A._c_strides(tuple(shape)), axis, total)
    return out


# splitmix64 of (seed, element index): a counter-based generator, no state kept on the device
_MASK = """
def k(out, total, seed, p):
    i = cuda.grid(1)
    if i >= total:
        return
    z = np.uint64(seed) + np.uint64(i) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    u = np.float64(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)
    out[i] = 1.0 / (1.0 - p) if u >= p else 0.0
"""


def bernoulli_mask(gen, like, shape, p):
    """A dropout mask drawn on the device: splitmix64 of one seed drawn from `gen` (the cpu
    generator, so tds.manual_seed still decides it) and each element's index; the numbers differ
    from the cpu's. Nothing is copied to the device but the seed, a kernel argument."""
    shape = tuple(shape)
    dtype = A._dev(like).dtype
    if p >= 1.0:
        return A.full(shape, 0, dtype)
    out = A._empty(shape, dtype)
    total = math.prod(shape)
    if total:
        seed = int(gen.integers(0, 2**63 - 1, dtype=np.int64))
        with np.errstate(over="ignore"):  # the simulator computes with numpy's uint64
            _go(("mask",), _MASK, total, A._flat(out), total, seed, float(p))
    return out
