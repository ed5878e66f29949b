"""Functions on Tensors, as `torch.nn.functional`: `import tinygrad_ds.functional as F`."""
from .ops.conv import conv2d, conv_transpose2d
from .ops.elementwise import Where, gelu
from .ops.loss import binary_cross_entropy_with_logits, cross_entropy, mse_loss, nll_loss
from .ops.movement import concat, pad, split, stack
from .ops.norm import batch_norm, group_norm, layer_norm
from .ops.pool import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from .ops.softmax import log_softmax, logsumexp, softmax


def relu(x):
    return x.relu()


def leaky_relu(x, negative_slope: float = 0.01):
    return x.leaky_relu(negative_slope)


def sigmoid(x):
    return x.sigmoid()


def tanh(x):
    return x.tanh()


def where(cond, a, b):
    """a where cond is true, else b; cond, a, b broadcast. No gradient flows to cond."""
    from .tensor import Tensor

    cond, a, b = (v if isinstance(v, Tensor) else Tensor(v) for v in (cond, a, b))
    if a.dtype != b.dtype and a.dtype.kind == "f" and b.ndim == 0:
        b = b.astype(a.dtype)
    if a.dtype != b.dtype and b.dtype.kind == "f" and a.ndim == 0:
        a = a.astype(b.dtype)
    return Where.apply(cond, a, b)


cat = concat

__all__ = [
    "relu", "leaky_relu", "sigmoid", "tanh", "gelu", "where", "softmax", "log_softmax",
    "logsumexp", "mse_loss", "binary_cross_entropy_with_logits", "nll_loss", "cross_entropy",
    "concat", "cat", "stack", "pad", "split",
    "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
    "batch_norm", "layer_norm", "group_norm",
]
