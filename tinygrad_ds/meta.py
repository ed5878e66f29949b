"""MetaArray: an array with a shape and a dtype but no data, for tracing a model in no time.

The ops' forwards are written with numpy (`np.add`, `np.sum(x, axis, keepdims=True)`,
`np.concatenate`, `x.reshape`, `x[index]`, ...). A MetaArray answers every one of those calls
with another MetaArray of the right shape and dtype, through numpy's `__array_ufunc__` and
`__array_function__` protocols, without touching a single number. Heavy kernels (convolution,
pooling, norms) go to the 'meta' backend (`tinygrad_ds.backend.meta`), registered here.

    x = MetaArray((8, 3, 32, 32))          # float32 by default
    np.sum(x * 2.0, axis=1, keepdims=True)  # MetaArray((8, 1, 32, 32), float32)

NOTE: MetaArray subclasses np.ndarray (a view of one shared, read-only element with all strides
0) so that code that asks `isinstance(v, np.ndarray)` (the tape's saved values, backend dispatch)
treats it as an array. Asking for a value (`bool(x)`, `x.item()`) raises MetaValueError: a
model whose control flow depends on tensor values cannot be traced by shape alone.
"""
from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from .backend import register_backend
from .errors import TdsError

_one: dict[np.dtype, np.ndarray] = {}


class MetaValueError(TdsError, TypeError):
    """Code asked a shape-only array for a value (data-dependent control flow)."""


def _buffer(dtype: np.dtype) -> np.ndarray:
    buf = _one.get(dtype)
    if buf is None:
        buf = np.zeros(1, dtype)
        buf.flags.writeable = False
        _one[dtype] = buf
    return buf


def _shape(shape) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(s) for s in shape)


class _MetaFlags:
    """What `.flags` says of a MetaArray: contiguous (kernels get it as it is, never a copy)."""

    c_contiguous = contiguous = aligned = True
    f_contiguous = fortran = writeable = owndata = False

    def __getitem__(self, key: str) -> bool:
        return bool(getattr(self, key.lower().replace("_contiguous", "_contiguous")
                            if key.upper() not in ("C", "F") else
                            {"C": "c_contiguous", "F": "f_contiguous"}[key.upper()]))


_FLAGS = _MetaFlags()


class MetaArray(np.ndarray):
    """shape and dtype only: `MetaArray((N, C, H, W), 'float32')`."""

    @property
    def flags(self):  # NOTE: Python-level only; numpy's C code sees the zero strides
        return _FLAGS

    def __new__(cls, shape, dtype=np.float32):
        dtype = np.dtype(dtype)
        shape = _shape(shape)
        return np.ndarray.__new__(cls, shape, dtype, buffer=_buffer(dtype),
                                  strides=(0,) * len(shape))

    # ---- no values ------------------------------------------------------------------------------
    def _no_value(self, what: str):
        raise MetaValueError(
            f"{what} of a shape-only array {self.shape} {self.dtype}: the model's forward reads "
            "tensor values (data-dependent control flow), which shape-only tracing cannot follow")

    def __bool__(self): self._no_value("the truth value")
    def __float__(self): self._no_value("float()")
    def __int__(self): self._no_value("int()")
    def __index__(self): self._no_value("an index")
    def item(self, *args): self._no_value("item()")
    def tolist(self): self._no_value("tolist()")

    def __repr__(self) -> str:
        return f"MetaArray(shape={self.shape}, dtype={self.dtype})"

    __str__ = __repr__

    def __reduce__(self):
        return (MetaArray, (self.shape, self.dtype))

    def __setitem__(self, index, value) -> None:
        # writing into a shape-only array: check that the value fits, keep no data
        target = _index_shape(self.shape, index)
        np.broadcast_shapes(np.shape(value), target)

    # ---- methods that would otherwise copy or compute --------------------------------------------
    def reshape(self, *shape, order="C"):
        shape = shape[0] if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)) \
            else shape
        shape = list(_shape(shape))
        if shape.count(-1) == 1:
            known = int(np.prod([s for s in shape if s != -1]))
            if known == 0 or self.size % known:
                raise ValueError(f"cannot reshape array of size {self.size} into shape "
                                 f"{tuple(shape)}")
            shape[shape.index(-1)] = self.size // known
        if int(np.prod(shape)) != self.size:
            raise ValueError(f"cannot reshape array of size {self.size} into shape {tuple(shape)}")
        return MetaArray(shape, self.dtype)

    def astype(self, dtype, order="K", casting="unsafe", subok=True, copy=True):
        return MetaArray(self.shape, dtype)

    def copy(self, order="C"):
        return MetaArray(self.shape, self.dtype)

    def __getitem__(self, index):
        return MetaArray(_index_shape(self.shape, index), self.dtype)

    def transpose(self, *axes):
        axes = axes[0] if len(axes) == 1 and not isinstance(axes[0], (int, np.integer)) else axes
        return _transpose(self, axes or None)

    @property
    def T(self):
        return _transpose(self, None)

    def ravel(self, order="C"):
        return MetaArray((self.size,), self.dtype)

    def flatten(self, order="C"):
        return MetaArray((self.size,), self.dtype)

    def squeeze(self, axis=None):
        return _squeeze(self, axis)

    def sum(self, axis=None, dtype=None, out=None, keepdims=False, **kw):
        return _reduce(np.add, self, axis, keepdims, dtype)

    def prod(self, axis=None, dtype=None, out=None, keepdims=False, **kw):
        return _reduce(np.multiply, self, axis, keepdims, dtype)

    def max(self, axis=None, out=None, keepdims=False, **kw):
        return _reduce(np.maximum, self, axis, keepdims, None)

    def min(self, axis=None, out=None, keepdims=False, **kw):
        return _reduce(np.minimum, self, axis, keepdims, None)

    def mean(self, axis=None, dtype=None, out=None, keepdims=False, **kw):
        return _mean(self, axis, keepdims, dtype)

    def var(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
        return _mean(self, axis, keepdims, dtype)

    std = var

    def any(self, axis=None, out=None, keepdims=False, **kw):
        return _reduce(np.logical_or, self, axis, keepdims, bool)

    def all(self, axis=None, out=None, keepdims=False, **kw):
        return _reduce(np.logical_and, self, axis, keepdims, bool)

    def argmax(self, axis=None, out=None, keepdims=False):
        return _arg(self, axis, keepdims)

    argmin = argmax

    def fill(self, value) -> None:
        pass

    # ---- the numpy protocols ------------------------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = kwargs.pop("out", None)
        if method == "__call__":
            result = _ufunc_call(ufunc, inputs, kwargs)
        elif method == "reduce":
            axis = kwargs.get("axis", 0)
            result = _reduce(ufunc, inputs[0], axis, kwargs.get("keepdims", False),
                             kwargs.get("dtype"))
        elif method == "accumulate":
            result = MetaArray(np.shape(inputs[0]), _ufunc_dtype(ufunc, inputs, kwargs)[0])
        elif method == "at":
            return None  # in place into inputs[0]; a MetaArray has nothing to update
        elif method == "outer":
            dts = _ufunc_dtype(ufunc, inputs, kwargs)
            result = MetaArray(np.shape(inputs[0]) + np.shape(inputs[1]), dts[0])
        else:
            return NotImplemented
        if out is not None:
            outs = out if isinstance(out, tuple) else (out,)
            # In place into real arrays (BatchNorm's running statistics updated by a traced
            # forward): a shape-only result has no values to write, so they stay as they are.
            np.broadcast_shapes(*(np.shape(o) for o in outs),
                                *(np.shape(r) for r in (result if isinstance(result, tuple)
                                                        else (result,))))
            return outs if len(outs) > 1 else outs[0]
        return result

    def __array_function__(self, func, types, args, kwargs):
        handler = _HANDLED.get(func)
        if handler is not None:
            return handler(*args, **kwargs)
        # Anything else: numpy's own implementation, run on the zero-stride views (it still gets
        # the shapes right), then the results made shape-only again.
        return _as_meta(func._implementation(*args, **kwargs))


# ---- shape rules --------------------------------------------------------------------------------
def _as_meta(r):
    if isinstance(r, MetaArray):
        return r
    if isinstance(r, np.ndarray):
        return MetaArray(r.shape, r.dtype)
    if isinstance(r, tuple):
        return tuple(_as_meta(v) for v in r)
    if isinstance(r, list):
        return [_as_meta(v) for v in r]
    return r


def _stand_in(v):
    """A tiny array that has v's dtype (for numpy's own dtype rules); Python scalars stay as
    they are, since NumPy 2 treats them as weakly typed."""
    if isinstance(v, np.ndarray):
        return np.empty((0,), v.dtype)
    if isinstance(v, (list, tuple)):
        return np.empty((0,), np.asarray(v).dtype)
    return v


_dtype_cache: dict = {}


def _ufunc_dtype(ufunc, inputs, kwargs) -> tuple[np.dtype, ...]:
    key = None
    try:
        key = (ufunc, tuple(v.dtype if isinstance(v, np.ndarray) else type(v) for v in inputs),
               tuple(sorted(kwargs.items())))
        hit = _dtype_cache.get(key)
        if hit is not None:
            return hit
    except TypeError:  # unhashable kwargs
        key = None
    with np.errstate(all="ignore"):
        r = ufunc(*(_stand_in(v) for v in inputs), **kwargs)
    dts = tuple(np.asarray(x).dtype for x in (r if isinstance(r, tuple) else (r,)))
    if key is not None:
        _dtype_cache[key] = dts
    return dts


def _ufunc_call(ufunc, inputs, kwargs):
    kwargs = {k: v for k, v in kwargs.items() if k not in ("where", "casting", "order")}
    if ufunc is np.matmul:
        shape = _matmul_shape(np.shape(inputs[0]), np.shape(inputs[1]))
    else:
        shape = np.broadcast_shapes(*(np.shape(v) for v in inputs))
    dts = _ufunc_dtype(ufunc, inputs, kwargs)
    if len(dts) == 1:
        return MetaArray(shape, dts[0])
    return tuple(MetaArray(shape, d) for d in dts)


def _matmul_shape(a: tuple, b: tuple) -> tuple:
    if not a or not b:
        raise ValueError("matmul: Input operand does not have enough dimensions")
    a2 = (1,) + a if len(a) == 1 else a
    b2 = b + (1,) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise ValueError(f"matmul: Input operand 1 has a mismatch in its core dimension 0 "
                         f"(size {b2[-2]} is different from {a2[-1]})")
    out = np.broadcast_shapes(a2[:-2], b2[:-2]) + (a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out


def _axes(axis, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    for a in axes:
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise np.exceptions.AxisError(int(a), ndim)
    return tuple(sorted(int(a) % max(ndim, 1) for a in axes))


def _reduced_shape(shape: tuple, axis, keepdims: bool) -> tuple:
    axes = _axes(axis, len(shape))
    if keepdims:
        return tuple(1 if i in axes else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in axes)


def _reduce(ufunc, x, axis=None, keepdims=False, dtype=None, **kw):
    x_dt = np.asarray(x).dtype if not isinstance(x, np.ndarray) else x.dtype
    if dtype is not None:
        dt = np.dtype(dtype)
    else:
        dt = ufunc.reduce(np.zeros((1,), x_dt)).dtype
    return MetaArray(_reduced_shape(np.shape(x), axis, keepdims), dt)


def _mean(x, axis=None, keepdims=False, dtype=None, **kw):
    dt = np.dtype(dtype) if dtype is not None else np.mean(np.zeros((1,), x.dtype)).dtype
    return MetaArray(_reduced_shape(x.shape, axis, keepdims), dt)


def _var(x, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
    return _mean(x, axis, keepdims, dtype)


def _arg(x, axis=None, keepdims=False, **kw):
    if axis is None:
        shape = (1,) * x.ndim if keepdims else ()
    else:
        shape = _reduced_shape(x.shape, axis, keepdims)
    return MetaArray(shape, np.intp)


def _index_shape(shape: tuple, index) -> tuple:
    # Basic and advanced indexing on a zero-stride view: numpy works the shape out for us
    # (slicing is a view; advanced indexing copies only the selected zeros).
    probe = np.lib.stride_tricks.as_strided(np.zeros(1, np.bool_), shape, (0,) * len(shape))
    if isinstance(index, MetaArray):
        if index.dtype == np.bool_:
            raise MetaValueError("boolean-mask indexing of a shape-only array: the result's "
                                 "shape depends on the mask's values")
        return index.shape + shape[1:]
    return np.shape(probe[index])


def _transpose(x, axes=None):
    nd = np.ndim(x)
    axes = tuple(reversed(range(nd))) if axes is None else tuple(int(a) % max(nd, 1) for a in axes)
    if sorted(axes) != list(range(nd)):
        raise ValueError("axes don't match array")
    shape = np.shape(x)
    return MetaArray(tuple(shape[a] for a in axes), x.dtype)


def _squeeze(x, axis=None):
    shape = np.shape(x)
    if axis is None:
        return MetaArray(tuple(s for s in shape if s != 1), x.dtype)
    axes = _axes(axis, len(shape))
    for a in axes:
        if shape[a] != 1:
            raise ValueError("cannot select an axis to squeeze out which has size not equal to one")
    return MetaArray(tuple(s for i, s in enumerate(shape) if i not in axes), x.dtype)


def _expand_dims(x, axis):
    shape = list(np.shape(x))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    nd = len(shape) + len(axes)
    for a in sorted(int(a) % nd for a in axes):
        shape.insert(a, 1)
    return MetaArray(shape, x.dtype)


def _result_dtype(arrays) -> np.dtype:
    return np.result_type(*(np.empty((0,), a.dtype) if isinstance(a, np.ndarray) else a
                            for a in arrays))


def _concatenate(arrays, axis=0, out=None, dtype=None, **kw):
    arrays = list(arrays)
    shapes = [np.shape(a) for a in arrays]
    if axis is None:
        return MetaArray((builtins.sum(int(np.prod(s)) for s in shapes),), _result_dtype(arrays))
    nd = len(shapes[0])
    ax = int(axis) % nd
    for s in shapes[1:]:
        if len(s) != nd or any(a != b for i, (a, b) in enumerate(zip(s, shapes[0])) if i != ax):
            raise ValueError(f"all the input array dimensions except for the concatenation axis "
                             f"must match exactly, got {shapes}")
    shape = list(shapes[0])
    shape[ax] = builtins.sum(s[ax] for s in shapes)
    return MetaArray(shape, dtype or _result_dtype(arrays))


def _stack(arrays, axis=0, out=None, dtype=None, **kw):
    arrays = list(arrays)
    return _concatenate([_expand_dims(a if isinstance(a, MetaArray)
                                      else MetaArray(np.shape(a), np.asarray(a).dtype), axis)
                         for a in arrays], axis, dtype=dtype)


def _pad(x, pad_width, mode="constant", **kw):
    pw = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (x.ndim, 2))
    return MetaArray(tuple(s + int(b) + int(a) for s, (b, a) in zip(x.shape, pw)), x.dtype)


def _where(cond, a=None, b=None):
    if a is None and b is None:
        raise MetaValueError("np.where(cond) with one argument: the result's shape depends on "
                             "the values of cond")
    shape = np.broadcast_shapes(np.shape(cond), np.shape(a), np.shape(b))
    return MetaArray(shape, _result_dtype([a, b]))


def _broadcast_to(x, shape, subok=False):
    shape = _shape(shape)
    np.broadcast_shapes(np.shape(x), shape)
    if len(shape) < np.ndim(x):
        raise ValueError(f"cannot broadcast a shape {np.shape(x)} to {shape}")
    return MetaArray(shape, np.asarray(x).dtype if not isinstance(x, np.ndarray) else x.dtype)


def _like(x, *args, dtype=None, shape=None, **kw):
    return MetaArray(np.shape(x) if shape is None else shape, dtype or x.dtype)


def _full_like(x, fill_value, dtype=None, shape=None, **kw):
    return _like(x, dtype=dtype, shape=shape)


def _reshape(x, *args, **kw):
    shape = kw.get("shape", kw.get("newshape", args[0] if args else None))
    return x.reshape(shape)


def _moveaxis(x, source, destination):
    nd = x.ndim
    src = [int(a) % nd for a in np.atleast_1d(source)]
    dst = [int(a) % nd for a in np.atleast_1d(destination)]
    order = [n for n in range(nd) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return _transpose(x, order)


def _swapaxes(x, a, b):
    axes = list(range(x.ndim))
    a, b = int(a) % x.ndim, int(b) % x.ndim
    axes[a], axes[b] = axes[b], axes[a]
    return _transpose(x, axes)


def _take_along_axis(x, indices, axis):
    return MetaArray(np.broadcast_shapes(np.shape(indices), np.shape(indices)), x.dtype)


def _put_along_axis(x, indices, values, axis):
    return None


def _copy(x, *args, **kw):
    return MetaArray(np.shape(x), x.dtype)


def _clip(x, a_min=None, a_max=None, *args, **kw):
    return MetaArray(np.broadcast_shapes(np.shape(x), np.shape(a_min), np.shape(a_max)), x.dtype)


def _dot(a, b, out=None):
    if np.ndim(a) <= 2 and np.ndim(b) <= 2:
        return MetaArray(_matmul_shape(np.shape(a), np.shape(b)), _result_dtype([a, b]))
    return MetaArray(np.shape(a)[:-1] + np.shape(b)[:-2] + np.shape(b)[-1:], _result_dtype([a, b]))


def _tensordot(a, b, axes=2):
    sa, sb = np.shape(a), np.shape(b)
    if isinstance(axes, (int, np.integer)):
        ka, kb = list(range(len(sa) - axes, len(sa))), list(range(axes))
    else:
        ka, kb = [list(np.atleast_1d(v)) for v in axes]
    ka = [int(k) % len(sa) for k in ka]
    kb = [int(k) % len(sb) for k in kb]
    shape = tuple(s for i, s in enumerate(sa) if i not in ka) + \
        tuple(s for i, s in enumerate(sb) if i not in kb)
    return MetaArray(shape, _result_dtype([a, b]))


def _result_type(*arrays_and_dtypes):
    return np.result_type(*(np.empty((0,), v.dtype) if isinstance(v, MetaArray) else v
                            for v in arrays_and_dtypes))


def _shape_of(a):
    return tuple(a.shape)


def _ndim_of(a):
    return len(a.shape)


def _size_of(a, axis=None):
    return int(np.prod(a.shape)) if axis is None else a.shape[axis]


def _red(ufunc):
    def handler(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
        return _reduce(ufunc, a, axis, keepdims, dtype)
    return handler


def _maxmin(ufunc):
    def handler(a, axis=None, out=None, keepdims=False, **kw):
        return _reduce(ufunc, a, axis, keepdims, None)
    return handler


_HANDLED: dict[Any, Any] = {
    np.sum: _red(np.add), np.prod: _red(np.multiply),
    np.max: _maxmin(np.maximum), np.min: _maxmin(np.minimum),
    np.amax: _maxmin(np.maximum), np.amin: _maxmin(np.minimum),
    np.any: _maxmin(np.logical_or), np.all: _maxmin(np.logical_and),
    np.mean: lambda a, axis=None, dtype=None, out=None, keepdims=False, **kw:
        _mean(a, axis, keepdims, dtype),
    np.var: _var, np.std: _var,
    np.argmax: _arg, np.argmin: _arg,
    np.transpose: lambda a, axes=None: _transpose(a, axes),
    np.permute_dims: lambda a, axes=None: _transpose(a, axes),
    np.concatenate: _concatenate, np.stack: _stack,
    np.pad: _pad, np.where: _where, np.broadcast_to: _broadcast_to,
    np.squeeze: lambda a, axis=None: _squeeze(a, axis),
    np.expand_dims: _expand_dims, np.reshape: _reshape,
    np.moveaxis: _moveaxis, np.swapaxes: _swapaxes,
    np.zeros_like: _like, np.ones_like: _like, np.empty_like: _like, np.full_like: _full_like,
    np.copy: _copy, np.ascontiguousarray: _copy, np.asfortranarray: _copy,
    np.clip: _clip, np.dot: _dot, np.tensordot: _tensordot,
    np.take_along_axis: _take_along_axis, np.put_along_axis: _put_along_axis,
    np.result_type: _result_type, np.shape: _shape_of, np.ndim: _ndim_of, np.size: _size_of,
    np.round: _copy, np.around: _copy,
}


def meta_like(x) -> MetaArray:
    """A MetaArray with x's shape and dtype (x: an array, a Tensor or a MetaArray)."""
    data = getattr(x, "data", x)
    return MetaArray(np.shape(data), np.asarray(data).dtype if not isinstance(data, np.ndarray)
                     else data.dtype)


register_backend("meta", "tinygrad_ds.backend.meta", MetaArray)

__all__ = ["MetaArray", "MetaValueError", "meta_like"]
