"""The CPU backend: numpy arrays, numba-compiled loops, numpy's BLAS for matrix products.

Every kernel is a plain module-level function, so `NUMBA_DISABLE_JIT=1` runs them as ordinary
Python that a debugger can step through. Importing this module imports numba; compiling happens
on a kernel's first call (or loads from the on-disk cache, `cache=True`).
"""
from .conv import conv2d_backward_input, conv2d_backward_weight, conv2d_forward
from .loss import softmax_cross_entropy_backward, softmax_cross_entropy_forward
from .norm import (batch_norm_apply, batch_norm_backward_input, batch_norm_backward_reduce,
                   batch_norm_stats, group_norm_backward_affine, group_norm_backward_input,
                   group_norm_forward, layer_norm_backward_affine, layer_norm_backward_input,
                   layer_norm_forward)
from .pool import (adaptive_avg_pool2d_backward, adaptive_avg_pool2d_forward, avg_pool2d_backward,
                   avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward)

__all__ = [
    "conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight",
    "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
    "adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_backward",
    "batch_norm_stats", "batch_norm_apply", "batch_norm_backward_reduce",
    "batch_norm_backward_input", "layer_norm_forward", "layer_norm_backward_input",
    "layer_norm_backward_affine", "group_norm_forward", "group_norm_backward_input",
    "group_norm_backward_affine", "softmax_cross_entropy_forward",
    "softmax_cross_entropy_backward",
]
