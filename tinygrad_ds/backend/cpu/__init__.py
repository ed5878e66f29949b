"""The CPU backend: numpy arrays, numba-compiled loops, numpy's BLAS for matrix products.

Every kernel is a plain module-level function, so `NUMBA_DISABLE_JIT=1` runs them as ordinary
Python that a debugger can step through. Importing this module imports numba; compiling happens
on a kernel's first call (or loads from the on-disk cache, `cache=True`). Importing it also tells
glibc's malloc to keep freed arrays for reuse (malloc.py: a training step then takes no page
faults; TDS_MALLOC_KEEP=0 leaves malloc alone).
"""
from .array import (abs, add, all, any, argmax, bernoulli_mask, cast, concat, contiguous, copy,
                    copy_into, div, equal, erf, exp, expand, full, gather, getitem, index_add,
                    index_errors, leaky_relu, less, less_equal, log, log_softmax, logsumexp,
                    matmul, max, maximum, mean, min, minimum, mul, neg, not_equal, pad, permute,
                    pow, relu, reshape, scatter_add, sigmoid, sign, softmax, sqrt, sub, sum, tanh,
                    where)
from .conv import conv2d_backward_input, conv2d_backward_weight, conv2d_forward
from .loss import softmax_cross_entropy_backward, softmax_cross_entropy_forward
from .norm import (batch_norm_apply, batch_norm_backward_input, batch_norm_backward_reduce,
                   batch_norm_stats, group_norm_backward_affine, group_norm_backward_input,
                   group_norm_forward, layer_norm_backward_affine, layer_norm_backward_input,
                   layer_norm_forward)
from .pool import (adaptive_avg_pool2d_backward, adaptive_avg_pool2d_forward, avg_pool2d_backward,
                   avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward)
from .malloc import keep_freed_memory
from ..table import KERNELS

keep_freed_memory()

__all__ = list(KERNELS)
