"""Tensor: an n-dimensional array, its gradient, and the tape node that produced it.

Each method calls one op (`tinygrad_ds/ops/`); ops record themselves on the tape when a gradient
is wanted. Semantics follow PyTorch: NCHW layouts, broadcasting as numpy, float32 by default.
"""
from __future__ import annotations

import weakref
from typing import Sequence

import numpy as np

from . import autograd, dtypes
from .errors import DTypeError, GradError, ShapeError, TdsError, fmt_shape
from .ops import elementwise as E
from .ops import matmul as M
from .ops import movement as V
from .ops import reduce as R


def _to_array(data, dtype) -> np.ndarray:
    if isinstance(data, Tensor):  # a copy that keeps the dtype, as torch.tensor(t) does
        data = data.data if isinstance(data.data, np.ndarray) else data.numpy()  # (counted)
        if dtype is None:
            return np.array(data)
    if dtype is not None:
        dt = dtypes.to_dtype(dtype)
        try:
            return np.array(data, dtype=dt)
        except (TypeError, ValueError) as e:
            raise DTypeError(f"Tensor: cannot make {dt} data from {type(data).__name__}: {e}") \
                from None
    try:
        arr = np.array(data)
    except ValueError as e:  # ragged nested lists
        raise TdsError(f"Tensor: data is not rectangular ({e})") from None
    kind = arr.dtype.kind
    if kind == "f":
        return arr.astype(dtypes.default_float, copy=False)
    if kind in "iu":
        return arr if arr.dtype in (dtypes.int32, dtypes.int64) else arr.astype(np.int64)
    if kind == "b":
        return arr
    raise DTypeError(f"Tensor: cannot hold data of numpy dtype {arr.dtype} ({type(data).__name__})")


class Tensor:
    """An array with autodiff. `Tensor(data, dtype=None, requires_grad=False)`.

    data: nested lists, a scalar or a numpy array. Floating-point data becomes float32 unless
    `dtype` says otherwise ('float64' for gradient checks); integers stay integers (class labels).
    """

    __slots__ = ("data", "grad", "requires_grad", "_node", "__weakref__")
    __array_priority__ = 1000  # numpy scalar * Tensor -> Tensor.__rmul__

    def __init__(self, data, dtype=None, requires_grad: bool = False, device: str = "cpu"):
        self.data = _to_array(data, dtype)
        if device != "cpu":
            _check_device(device)
            self.data = _to_device(self.data)
        self.grad: Tensor | None = None
        self._node = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, array: np.ndarray) -> Tensor:
        """Wrap an array the library made, without copying or converting it."""
        t = cls.__new__(cls)
        t.data, t.grad, t._node, t.requires_grad = array, None, None, False
        return t

    # ---- properties -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def device(self) -> str:
        """'cpu', or 'cuda' for data in GPU memory (a numba device array)."""
        return "cpu" if isinstance(self.data, np.ndarray) else _device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def T(self) -> Tensor:
        return self.permute(*reversed(range(self.ndim)))

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        """The sub-tensors along the first axis (each one a getitem, so gradients flow)."""
        return (self[i] for i in range(len(self)))

    def numel(self) -> int:
        return self.size

    def dim(self) -> int:
        return self.ndim

    # ---- conversion ---------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The data as a numpy array (shared, not copied; use .copy() to keep it). Read-only for
        a tensor on the tape (one that requires grad): writing into values a backward may read
        would make its gradient silently wrong (PyTorch refuses .numpy() there). On 'cuda': a
        copy in host memory."""
        if not isinstance(self.data, np.ndarray) and _device_of(self.data) == "cuda":
            return _to_host(self.data)  # a copy, counted in tds.cuda.transfer_stats()
        if self.requires_grad and isinstance(self.data, np.ndarray) and self.data.flags.writeable:
            view = self.data.view()
            view.flags.writeable = False
            return view
        return self.data

    def item(self):
        if self.size != 1:
            raise ShapeError(f"item(): only a tensor with one element has an item, this one has "
                           f"shape {fmt_shape(self.shape)}")
        return self.numpy().item()

    def tolist(self):
        return self.numpy().tolist()

    def __array__(self, dtype=None, copy=None):
        data = self.data if isinstance(self.data, np.ndarray) else self.numpy()
        if dtype is not None and np.dtype(dtype) != self.dtype:
            return data.astype(dtype)
        return data.copy() if copy and data is self.data else data

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.size != 1:
            raise TdsError(f"the truth value of a tensor of shape {fmt_shape(self.shape)} is "
                           "ambiguous: use .any() or .all()")
        return bool(self.data if isinstance(self.data, np.ndarray) else self.numpy())

    def __repr__(self) -> str:
        if not isinstance(self.data, np.ndarray):  # shape-only (tracing) or on a device
            return f"tensor(<{type(self.data).__name__} {fmt_shape(self.shape)} {self.dtype}>)"
        body = np.array2string(self.data, separator=", ", precision=4, prefix="tensor(")
        extra = []
        if self.dtype != dtypes.float32:
            extra.append(f"dtype={self.dtype}")
        if self._node is not None:
            extra.append(f"grad_fn={self._node.op.name}")
        elif self.requires_grad:
            extra.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extra) + ")"

    def astype(self, dtype) -> Tensor:
        """A copy in another dtype. Gradients flow through float-to-float casts only."""
        dt = dtypes.to_dtype(dtype)
        if dt == self.dtype:
            return self
        if dt.kind != "f":
            with autograd.no_grad():
                return E.Cast.apply(self, dtype=dt)
        return E.Cast.apply(self, dtype=dt)

    def float(self) -> Tensor:
        return self.astype(dtypes.float32)

    def double(self) -> Tensor:
        return self.astype(dtypes.float64)

    def long(self) -> Tensor:
        return self.astype(dtypes.int64)

    def to(self, device: str) -> Tensor:
        """This tensor on `device` ('cpu' or 'cuda'): itself when it is there already, else a
        copy (counted in tds.cuda.transfer_stats()) that is a leaf of the tape, requiring grad
        when this one does (as Module.to moves parameters)."""
        _check_device(device)
        here = self.device
        want = "cpu" if device == "cpu" else "cuda"
        if here == want or here not in ("cpu", "cuda"):
            return self
        data = _to_device(self.data) if want == "cuda" else _to_host(self.data)
        t = Tensor._wrap(data)
        return t.requires_grad_(True) if self.requires_grad else t

    def cuda(self) -> Tensor:
        """self.to('cuda')."""
        return self.to("cuda")

    def cpu(self) -> Tensor:
        """self.to('cpu')."""
        return self.to("cpu")

    # ---- autodiff -----------------------------------------------------------------------------
    def requires_grad_(self, flag: bool = True) -> Tensor:
        if flag and not dtypes.is_floating(self.dtype):
            raise GradError(f"requires_grad needs a floating-point tensor, this one is "
                            f"{self.dtype}")
        if not flag and self._node is not None:
            raise GradError("requires_grad_(False) on a non-leaf tensor: use .detach() instead")
        self.requires_grad = flag
        return self

    def detach(self) -> Tensor:
        """The same data, cut from the tape (shares memory, as in PyTorch)."""
        return Tensor._wrap(self.data)

    def clone(self) -> Tensor:
        """A copy in memory of its own; gradients flow through it."""
        return V.Copy.apply(self)

    def ones_like(self) -> Tensor:
        """Ones of this tensor's shape and dtype (no gradient)."""
        return E.FullLike.apply(self, value=1)

    def retain_grad(self) -> Tensor:
        """Keep .grad on this non-leaf tensor after backward (leaves always keep theirs)."""
        if self._node is not None:
            self._node.retain = weakref.ref(self)
        return self

    def backward(self, grad=None, retain_graph: bool | None = None,
                 create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's .grad (see autograd.backward)."""
        autograd.backward(self, grad, retain_graph=retain_graph, create_graph=create_graph)

    def zero_grad(self) -> None:
        self.grad = None

    # ---- elementwise arithmetic ---------------------------------------------------------------
    def _other(self, x) -> Tensor:
        """The other operand of a binary op as a Tensor. A Python number takes this tensor's
        floating dtype (x * 0.5 stays float32), as in PyTorch."""
        if isinstance(x, Tensor):
            return x
        if isinstance(x, _NUMBERS) and self.data.dtype.kind == "f":
            if isinstance(self.data, np.ndarray):
                return Tensor._wrap(np.array(x, dtype=self.data.dtype))
            from .backend import constant_kernels  # on the device: made there, no copy
            return Tensor._wrap(constant_kernels(self.data).full((), x, self.data.dtype))
        if isinstance(x, _NUMBERS) and not isinstance(self.data, np.ndarray):
            from .backend import constant_kernels  # (an integer count + 1 at every step)
            dtype = Tensor(x).dtype
            return Tensor._wrap(constant_kernels(self.data).full((), x, dtype))
        return Tensor(x, device=self.device)

    def __add__(self, x): return E.Add.apply(self, self._other(x))
    def __radd__(self, x): return E.Add.apply(self._other(x), self)
    def __sub__(self, x): return _sub(self, self._other(x))
    def __rsub__(self, x): return _sub(self._other(x), self)
    def __mul__(self, x): return E.Mul.apply(self, self._other(x))
    def __rmul__(self, x): return E.Mul.apply(self._other(x), self)
    def __truediv__(self, x): return E.Div.apply(self, self._other(x))
    def __rtruediv__(self, x): return E.Div.apply(self._other(x), self)
    def __pow__(self, x): return E.Pow.apply(self, self._other(x))
    def __rpow__(self, x): return E.Pow.apply(self._other(x), self)
    def __neg__(self): return E.Neg.apply(self)
    def __abs__(self): return E.Abs.apply(self)
    def __matmul__(self, x): return M.matmul(self, self._other(x))
    def __rmatmul__(self, x): return M.matmul(self._other(x), self)

    def add(self, x): return self + x
    def sub(self, x): return self - x
    def mul(self, x): return self * x
    def div(self, x): return self / x
    def pow(self, x): return self ** x
    def neg(self): return -self
    def matmul(self, x): return self @ x
    def maximum(self, x): return E.Maximum.apply(self, self._other(x))
    def minimum(self, x): return E.Minimum.apply(self, self._other(x))
    def square(self): return self * self
    def clip(self, lo=None, hi=None):
        out = self if lo is None else self.maximum(lo)
        return out if hi is None else out.minimum(hi)

    # ---- comparisons (no gradient) ------------------------------------------------------------
    def __lt__(self, x): return E.Less.apply(self, self._other(x))
    def __gt__(self, x): return _swapped(E.Less, "greater", self, self._other(x))
    def __le__(self, x): return E.LessEqual.apply(self, self._other(x))
    def __ge__(self, x): return _swapped(E.LessEqual, "greater_equal", self, self._other(x))
    # NOTE: t == None is False (not an error), as in PyTorch: Python falls back to identity
    def __eq__(self, x):  # type: ignore[override]
        return NotImplemented if x is None else E.Equal.apply(self, self._other(x))

    def __ne__(self, x):  # type: ignore[override]
        return NotImplemented if x is None else E.NotEqual.apply(self, self._other(x))

    __hash__ = object.__hash__
    def eq(self, x): return self == x
    def ne(self, x): return self != x
    def lt(self, x): return self < x
    def gt(self, x): return self > x
    def le(self, x): return self <= x
    def ge(self, x): return self >= x
    def any(self) -> bool: return bool(R.any(self).data)
    def all(self) -> bool: return bool(R.all(self).data)

    # ---- unary --------------------------------------------------------------------------------
    def exp(self): return E.Exp.apply(self)
    def log(self): return E.Log.apply(self)
    def sqrt(self): return E.Sqrt.apply(self)
    def abs(self): return E.Abs.apply(self)
    def sign(self): return E.Sign.apply(self)
    def relu(self): return E.Relu.apply(self)
    def leaky_relu(self, negative_slope: float = 0.01):
        return E.LeakyRelu.apply(self, negative_slope=float(negative_slope))
    def sigmoid(self): return E.Sigmoid.apply(self)
    def tanh(self): return E.Tanh.apply(self)
    def gelu(self, approximate: str = "none"): return E.gelu(self, approximate)

    # ---- reductions ---------------------------------------------------------------------------
    def sum(self, axis=None, keepdims: bool = False): return R.sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims: bool = False): return R.mean(self, axis, keepdims)
    def max(self, axis=None, keepdims: bool = False): return R.max(self, axis, keepdims)
    def min(self, axis=None, keepdims: bool = False): return R.min(self, axis, keepdims)
    def var(self, axis=None, keepdims: bool = False, correction: int = 1):
        return R.var(self, axis, keepdims, correction)
    def std(self, axis=None, keepdims: bool = False, correction: int = 1):
        return R.var(self, axis, keepdims, correction).sqrt()
    def argmax(self, axis=None, keepdims: bool = False): return R.argmax(self, axis, keepdims)
    def argmin(self, axis=None, keepdims: bool = False): return R.argmax(-self, axis, keepdims)
    def logsumexp(self, axis=-1, keepdims: bool = False):
        from .ops import softmax as S
        return S.logsumexp(self, axis, keepdims)
    def softmax(self, axis: int = -1):
        from .ops import softmax as S
        return S.softmax(self, axis)
    def log_softmax(self, axis: int = -1):
        from .ops import softmax as S
        return S.log_softmax(self, axis)

    # ---- movement -----------------------------------------------------------------------------
    def reshape(self, *shape): return V.reshape(self, _shape_arg(shape))
    def view(self, *shape): return self.reshape(*shape)
    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        return V.flatten(self, start_dim, end_dim)
    def permute(self, *axes): return V.permute(self, _shape_arg(axes))
    def transpose(self, dim0: int = -2, dim1: int = -1): return V.transpose(self, dim0, dim1)
    def expand(self, *shape): return V.expand(self, _shape_arg(shape))
    def unsqueeze(self, dim: int): return V.unsqueeze(self, dim)
    def squeeze(self, dim=None): return V.squeeze(self, dim)
    def __getitem__(self, index): return V.getitem(self, index)
    def pad(self, padding: Sequence[int], value: float = 0.0): return V.pad(self, padding, value)
    def split(self, split_size_or_sections, axis: int = 0):
        return V.split(self, split_size_or_sections, axis)
    def chunk(self, chunks: int, axis: int = 0): return V.chunk(self, chunks, axis)


_NUMBERS = (int, float, bool, np.number)
autograd._Tensor = Tensor  # the tape wraps op outputs without importing this module


def _sub(a: Tensor, b: Tensor) -> Tensor:
    """a - b is a + (-b); the shapes are checked first so that an error names 'sub'."""
    if a.shape != b.shape:
        E.broadcast_shape("sub", a.shape, b.shape)
    return a + (-b)


def _swapped(op, name: str, a: Tensor, b: Tensor) -> Tensor:
    """a > b is b < a (and a >= b is b <= a); an error names the comparison the user wrote."""
    if a.shape != b.shape:
        E.broadcast_shape(name, a.shape, b.shape)
    return op.apply(b, a)


def _shape_arg(shape) -> tuple:
    """reshape(2, 3) and reshape((2, 3)) both mean (2, 3)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def _check_device(device: str) -> None:
    """Return when `device` can be used; else raise saying what is missing (numba-cuda, a GPU)."""
    if device == "cpu":
        return
    if device in ("cuda", "cuda:0"):
        from . import cuda
        cuda.require()
        return
    raise TdsError(f"unknown device {device!r}: use 'cpu' or 'cuda'")


def _device_of(array) -> str:
    from .backend import backend_name
    name = backend_name(array)
    return "cuda" if name == "cuda" else "cpu"


def _to_device(array):
    from . import cuda
    return cuda.to_device(array)


def _to_host(array) -> np.ndarray:
    from . import cuda
    return cuda.to_host(array)
