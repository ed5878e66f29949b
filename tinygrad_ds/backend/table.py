"""The table of kernel names: every backend (cpu, meta, cuda) exports exactly these functions.

Ops validate their arguments in Python, then call one of these names on the backend that
`tinygrad_ds.backend.kernels_for(*arrays)` picks. A kernel takes arrays and plain Python values
and returns arrays; it never sees a Tensor and never raises on user input (the op has checked it).
The 'meta' backend implements each name as a shape and dtype rule (tracing); the 'cpu' backend
computes (numpy, or numba where that measures faster).

Conventions. Arrays: float32 or float64 data, int64 indices, bool masks. `axes` is a sorted tuple
of non-negative axes; `shape` a tuple of ints. Unless said otherwise a result is a new array the
caller may keep; "view" results may share memory with an input and must not be written.

Elementwise (numpy broadcasting; a binary op's operands have one dtype, the op casts first):
  neg exp log sqrt abs sign relu sigmoid tanh erf (x) -> same shape and dtype
  leaky_relu(x, slope)
  add sub mul div pow maximum minimum (a, b) -> broadcast shape, a's dtype
  less less_equal equal not_equal (a, b) -> bool
  where(cond bool, a, b) -> broadcast shape, a's dtype
  cast(x, dtype) -> x in dtype (x itself when it has it)

Reductions over `axes` (keepdims keeps them as size 1):
  sum(x, axes, keepdims)        float sums keep the dtype; int and bool sums give int64
  mean(x, axes, keepdims)       divides by the count of the reduced elements at run time
  max min (x, axes, keepdims)
  argmax(x, axis or None, keepdims) -> int64 (None: index into the flattened array)
  any all (x) -> 0-d bool

Movement:
  reshape(x, shape) -> view when possible
  permute(x, axes) -> view
  expand(x, shape) -> broadcast view
  contiguous(x) -> x, or a C-contiguous copy
  copy(x) -> a C-contiguous copy, always
  getitem(x, index) -> numpy indexing (ints, slices, None, Ellipsis, int64 and bool arrays)
  index_add(g, shape, index) -> zeros(shape) with g added at index (repeated indices add)
  pad(x, pad_width ((before, after) per axis), value)
  concat(xs (a tuple of arrays), axis)
  gather(x, index int64, axis) -> x's values at index along axis (numpy's take_along_axis)
  scatter_add(g, index int64, axis, size) -> zeros with g added at index along axis, that axis
      of length size (the adjoint of gather)

Products and softmax:
  matmul(a (..., n, k), b (..., k, m)) -> (..., n, m), batch axes broadcast
  softmax log_softmax (x, axis)       (stable: the max is subtracted first)
  logsumexp(x, axes, keepdims)

Creation, state and randomness:
  full(shape, value, dtype)
  copy_into(dst, src) -> dst, written in place with src (broadcast to dst's shape): the one
      kernel that writes an existing array (parameters, buffers, optimizer state)
  bernoulli_mask(gen, like, shape, p) -> like's dtype, 1/(1-p) with probability 1-p else 0 (all
      0 for p = 1), drawn from gen (the backend's generator; cpu: numpy's Generator)
  index_errors(t int64, low, high, ignore) -> int64 (2,): [how many entries of t are outside
      [low, high) and differ from ignore, the first such entry (0 if none)]

Convolution (weight (O, C/G, KH, KW), stride sh, sw, padding ph, pw, dilation dh, dw):
  conv2d_forward(x (N,C,H,W), w, b (O,) or None, sh, sw, ph, pw, dh, dw, groups, oh, ow)
      -> y (N, O, OH, OW)
  conv2d_backward_input(gy (N,O,OH,OW), w, sh, sw, ph, pw, dh, dw, groups, h, w)
      -> gx (N, C, H, W)                       (also the forward of conv_transpose2d)
  conv2d_backward_weight(gy (N,O,OH,OW), x (N,C,H,W), sh, sw, ph, pw, dh, dw, groups, kh, kw)
      -> gw (O, C/G, KH, KW)

Pooling (kernel kh, kw, stride sh, sw, padding ph, pw; padding counts as -inf for max, 0 for avg;
oh, ow may include a last window past the bottom or right edge (ceil_mode); the average divides
by the window's size within the padded input (count_pad true) or by its values from x (false),
as PyTorch's count_include_pad):
  max_pool2d_forward(x (N,C,H,W), kh, kw, sh, sw, ph, pw, oh, ow)
      -> (y (N,C,OH,OW), argmax (N,C,OH,OW) int64, flat index into H*W)
  max_pool2d_backward(gy (N,C,OH,OW), argmax (N,C,OH,OW), h, w) -> gx (N, C, H, W)
  avg_pool2d_forward(x (N,C,H,W), kh, kw, sh, sw, ph, pw, oh, ow, count_pad)
      -> y (N, C, OH, OW)
  avg_pool2d_backward(gy (N,C,OH,OW), kh, kw, sh, sw, ph, pw, h, w, count_pad)
      -> gx (N, C, H, W)
  adaptive_avg_pool2d_forward(x (N,C,H,W), oh, ow) -> y (N, C, OH, OW)
      (window i spans floor(i*H/OH) .. ceil((i+1)*H/OH), as PyTorch)
  adaptive_avg_pool2d_backward(gy (N,C,OH,OW), h, w) -> gx (N, C, H, W)

Normalization (x viewed as (N, C, L): L = 1 for (N, C) input; statistics accumulate in float64):
  batch_norm_stats(x (N,C,L)) -> stats (2, C): [mean, biased var (divides by N*L)]
  batch_norm_apply(x (N,C,L), mean (C,), invstd (C,), weight (C,), bias (C,)) -> y (N, C, L)
      y = (x - mean) * invstd * weight + bias
  batch_norm_backward_reduce(gy (N,C,L), x (N,C,L), mean (C,), invstd (C,))
      -> sums (2, C): [sum gy, sum gy * xhat] over N and L (= grad of bias, grad of weight)
  batch_norm_backward_input(gy, x, mean (C,), invstd (C,), weight (C,), sums (2, C))
      -> gx (N, C, L); training-mode gradient: w*invstd*(gy - sums[0]/M - xhat*sums[1]/M)
      (gy, x may also come as (N, C, ...), gx then in that shape: see below)
  layer_norm_forward(x (R,D), weight (D,), bias (D,), eps)
      -> (y (R, D), mean (R,), invstd (R,))        normalizes each row
  layer_norm_backward_input(gy (R,D), x (R,D), mean (R,), invstd (R,), weight (D,)) -> gx (R, D)
      (or gy, x of any shape whose trailing axes hold D, weight of D elements: gx in x's shape)
  layer_norm_backward_affine(gy (R,D), x (R,D), mean (R,), invstd (R,))
      -> sums (2, D): [sum_r gy, sum_r gy * xhat]
  group_norm_forward(x (N,C,L), weight (C,), bias (C,), groups, eps)
      -> (y (N, C, L), mean (N, G), invstd (N, G))  statistics over (C/G, L) per sample and group
  group_norm_backward_input(gy (N,C,L), x, mean (N,G), invstd (N,G), weight (C,), groups)
      -> gx (N, C, L)  (or (N, C, ...) in, the same shape out)
  The three input-gradient kernels accept the input's own shape so that the op need not reshape
  gx: a reshaped view (or an array numba allocated) becomes a leaf's .grad only after a copy.
  group_norm_backward_affine(gy (N,C,L), x, mean (N,G), invstd (N,G), groups)
      -> sums (2, C): [sum gy, sum gy * xhat] over N and L

Fused softmax cross-entropy (class-index targets, label smoothing e):
  softmax_cross_entropy_forward(logits (N,C), target (N,) int64, smoothing)
      -> (loss (N,), lse (N,) float64)   loss = lse - (1-e) x[target] - e mean(x) (no e term
      when e = 0, so that a logit of -inf, a masked class, gives no 0 * inf)
  softmax_cross_entropy_backward(gloss (N,), logits (N,C), target (N,), lse (N,), smoothing)
      -> glogits (N, C) = gloss * (softmax - (1-e) onehot - e/C)
"""
from __future__ import annotations

UNARY: tuple[str, ...] = ("neg", "exp", "log", "sqrt", "abs", "sign", "relu", "sigmoid", "tanh",
                          "erf")
BINARY: tuple[str, ...] = ("add", "sub", "mul", "div", "pow", "maximum", "minimum")
COMPARE: tuple[str, ...] = ("less", "less_equal", "equal", "not_equal")

KERNELS: tuple[str, ...] = (
    # elementwise
    *UNARY, "leaky_relu", *BINARY, *COMPARE, "where", "cast",
    # reductions
    "sum", "mean", "max", "min", "argmax", "any", "all",
    # movement
    "reshape", "permute", "expand", "contiguous", "copy", "getitem", "index_add", "pad",
    "concat", "gather", "scatter_add",
    # products and softmax
    "matmul", "softmax", "log_softmax", "logsumexp",
    # creation, state, randomness, checks
    "full", "copy_into", "bernoulli_mask", "index_errors",
    # convolution
    "conv2d_forward",
    "conv2d_backward_input",
    "conv2d_backward_weight",
    # pooling
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "adaptive_avg_pool2d_forward",
    "adaptive_avg_pool2d_backward",
    # normalization
    "batch_norm_stats",
    "batch_norm_apply",
    "batch_norm_backward_reduce",
    "batch_norm_backward_input",
    "layer_norm_forward",
    "layer_norm_backward_input",
    "layer_norm_backward_affine",
    "group_norm_forward",
    "group_norm_backward_input",
    "group_norm_backward_affine",
    # loss
    "softmax_cross_entropy_forward",
    "softmax_cross_entropy_backward",
)


def missing(module) -> list[str]:
    """The table names `module` does not define (empty when it covers the table)."""
    return [name for name in KERNELS if not callable(getattr(module, name, None))]
