"""The cuda backend: the kernel table on numba.cuda device arrays (see table.py; kernels.py for
the generated kernels). Imported only when a tensor goes to 'cuda' (`tds.cuda.require()`).

Every name of the table has a cuda kernel; what some of them refuse (integer-array and boolean
indices) raises a TdsError naming it before any launch.
"""
from ..table import KERNELS
from .nn import (adaptive_avg_pool2d_backward, adaptive_avg_pool2d_forward, avg_pool2d_backward,
                 avg_pool2d_forward, batch_norm_apply, batch_norm_backward_input,
                 batch_norm_backward_reduce, batch_norm_stats, conv2d_backward_input,
                 conv2d_backward_weight, conv2d_forward, group_norm_backward_affine,
                 group_norm_backward_input, group_norm_forward, layer_norm_backward_affine,
                 layer_norm_backward_input, layer_norm_forward, max_pool2d_backward,
                 max_pool2d_forward, softmax_cross_entropy_backward,
                 softmax_cross_entropy_forward)
from .movement import bernoulli_mask, concat, gather, getitem, index_add, pad, scatter_add
from .array import (abs, add, all, any, argmax, cast, contiguous, copy, copy_into, div, equal,
                    erf, exp, expand, full, index_errors, leaky_relu, less, less_equal, log,
                    log_softmax, logsumexp, matmul, max, maximum, mean, min, minimum, mul, neg,
                    not_equal, permute, pow, relu, reshape, sigmoid, sign, softmax, sqrt, sub, sum,
                    tanh, where)


__all__ = list(KERNELS)
