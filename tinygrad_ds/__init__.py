"""tinygrad_ds: a small deep-learning framework for learning how deep networks are built.

    import tinygrad_ds as tds
    x = tds.randn(4, 3, requires_grad=True)
    (x * x).sum().backward()
    x.grad  # 2 x

The public names are listed here; everything else is private to its module.
"""
from . import cuda, dtypes, functional, scalar
from ._version import __version__
from .autograd import enable_grad, is_grad_enabled, no_grad
from .backend.threads import get_num_threads, set_num_threads
from .dtypes import bool_, float32, float64, int32, int64
from .errors import DTypeError, GradError, ShapeError, TdsError
from .factory import (arange, eye, full, full_like, ones, ones_like, rand, rand_like, randn,
                      randn_like, zeros, zeros_like)
from .functional import concat, stack, where
from .gradcheck import gradcheck
from .random import manual_seed
from .tensor import Tensor

from . import nn  # noqa: E402  (layers build on everything above)
from . import data, optim  # noqa: E402  (batches of Tensors; updates of Parameters)
from .graph import Graph, trace  # noqa: E402  (tracing runs models: after nn)
from .graph.scalar_lower import trace_scalar  # noqa: E402  (a traced model lowered to Values)
from .compile import compile  # noqa: E402, A004  (passes over traced graphs: after graph)

cat = concat


def load_checkpoint(path: str, model_file: str | None = None):
    """The model of a `tds train` checkpoint (best.npz, last.npz) with the transform it was
    trained with: `ck = tds.load_checkpoint("runs/lenet/best.npz")`, then `ck.model`,
    `ck.transform` (Normalize), `ck.meta` (epoch, metrics, data, versions) and
    `ck.predict(images)` ((N, C, H, W) images in [0, 1] or uint8 -> (N,) classes).
    model_file: the file defining the model [default: the one the checkpoint records]."""
    from .app.checkpoint_file import load_checkpoint as load  # the application layer

    return load(path, model_file)


def tensor(data, dtype=None, requires_grad: bool = False) -> Tensor:
    """Same as Tensor(data, ...), spelled as torch.tensor."""
    return Tensor(data, dtype=dtype, requires_grad=requires_grad)


__all__ = [
    "Tensor", "tensor", "__version__", "dtypes", "functional", "scalar", "nn", "data", "optim",
    "no_grad", "enable_grad", "is_grad_enabled",
    "float32", "float64", "int32", "int64", "bool_",
    "TdsError", "ShapeError", "DTypeError", "GradError",
    "zeros", "ones", "full", "arange", "eye", "randn", "rand",
    "zeros_like", "ones_like", "full_like", "randn_like", "rand_like",
    "concat", "cat", "stack", "where", "gradcheck", "manual_seed", "load_checkpoint",
    "get_num_threads", "set_num_threads",
]
__all__ += ["trace", "Graph", "trace_scalar", "compile"]
