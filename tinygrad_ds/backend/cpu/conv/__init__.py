"""Convolution on the CPU: copies in numba, the matrix products through numpy's BLAS.

conv2d_forward, conv2d_backward_input and conv2d_backward_weight (the kernel table's names) pick
one algorithm per convolution from its shape; each algorithm is a module of its own:

- im2col.py: a chunk of samples becomes cols (C*KH*KW, N_c*OH*OW), one row per (channel, kernel
  tap) and one column per output position, and each chunk is one GEMM W @ cols (a batched one
  over groups). The general case.
- im2row.py: the same matrix laid out with one row per output position, copied from a
  channels-last copy of the chunk, for many channels (from ROWS_MIN_CHANNELS, or from 8 with a
  column stride): OpenBLAS prefers a large M, and the copies move longer runs.
- shift3.py: a 3x3 stride-1 'same' convolution from SHIFT3_MIN_CHANNELS channels on copies only
  the 3 column shifts of each channel and reads kernel row ki as the same matrix ki*W columns
  on: a third of the copying.
- winograd.py: a 3x3 stride-1 'same' convolution with many channels as Winograd F(2x2, 3x3):
  tiles transformed by additions, 16 products per chunk with 2.25x fewer multiplications; its
  weight gradient too (from fewer channels than the forward).
- pointwise.py: a 1x1 convolution (groups 1, unpadded) is one product per sample, W @ x[b],
  with no copies but a stride's subsampling.
- depthwise.py: one input channel per group and one output per input runs as direct loops: as a
  GEMM its inner dimension would be only KH*KW, too small for BLAS to pay.

abt.py holds a micro-GEMM for weight gradients with few entries (at most ABT_MAX_OUTPUT), where
OpenBLAS spends its time packing the long operands; workspace.py cuts the batch into chunks that
stay in cache and reuses their scratch buffers. A stride-1 input gradient is a convolution of gy
with the flipped kernel (copying only, where col2im and row2im add): see conv2d_backward_input.

The numba loops themselves are serial (no parallel=True: its threads spin after each loop,
taking the cores from BLAS and from busy neighbours, and serial kernels compile several times
faster). The parallelism is one level up: the batch's chunks are independent, and
workspace.run_chunks hands them to the pool of backend/threads.py, each thread doing a chunk's
copies (kernels compiled nogil=True) and its products (its BLAS calls on one thread). The pool's
threads wait on a queue instead of spinning, and a chunk that lands on a busy core leaves the
remaining chunks to the other threads. Results are the same on any number of threads.

The thresholds below (and workspace.CHUNK_ELEMENTS) are read when a kernel runs, so a test can
move them (monkeypatch) to run every algorithm at small sizes. The measurements behind them are
in benchmarks/RESULTS.md ("Notes moved from the conv kernels' comments").
"""
from __future__ import annotations

import numpy as np

from . import im2col, im2row, pointwise, shift3, winograd
from .depthwise import depthwise_backward_input, depthwise_backward_weight, depthwise_forward

# from this many input channels on (groups 1), or from 8 with a column stride above 1, positions
# as rows (im2row.py)
ROWS_MIN_CHANNELS = 32
# 3x3 stride-1 'same' convolutions with this many input channels or more run as three products
# over column-shifted copies (shift3.py); from ROWS_MIN_CHANNELS on, only on images of at least
# SHIFT3_MIN_HEIGHT rows, where the grid's extra row of zeros costs little
SHIFT3_MIN_CHANNELS = 16
SHIFT3_MIN_HEIGHT = 8
# 3x3 stride-1 'same' convolutions of even height and width with at least this many input and
# output channels run as Winograd F(2x2, 3x3) (winograd.py; its measurements: from 32 channels
# it wins on one and two threads, with 16 it loses)
WINOGRAD_MIN_CHANNELS = 32
# the same for weight gradients (winograd.backward_weight): its 16 products have the chunk's
# tiles as their long inner dimension, which suits BLAS (at batch 128 on two threads: 32
# channels 3.3 ms against shift3's 5.1, 64 channels 3.0 against 4.9; 16 channels 6.1 against
# 4.6)
WINOGRAD_WEIGHT_MIN_CHANNELS = 32
# from this many input channels on, the shifted weight gradient is one product against three
# row-shifted copies of gy (shift3.backward_weight_stacked); below, _add_abt's three products
STACK3_MIN_CHANNELS = 32
# im2col weight gradients (groups 1) with at most this many entries (C*KH*KW*O) are summed by
# _add_abt instead of BLAS (abt.py); above it BLAS's packing pays for itself
ABT_MAX_OUTPUT = 4608

__all__ = ["conv2d_backward_input", "conv2d_backward_weight", "conv2d_forward"]


def _is_depthwise(c: int, o: int, groups: int) -> bool:
    return groups > 1 and groups == c == o


def _shift3(c, h, kh, kw, sh, sw, ph, pw, dh, dw, groups) -> bool:
    """Whether a convolution of an (N, C, H, W) input runs as three products over column-shifted
    copies (shift3.py): 3x3, stride 1, undilated, padding 1, groups 1, from
    SHIFT3_MIN_CHANNELS channels on, and with ROWS_MIN_CHANNELS or more only when H is at least
    SHIFT3_MIN_HEIGHT.

    NOTE: the grid's extra row of zeros adds 1/H to the products' positions (12% at 8 rows, 25%
    at 4): with many channels, on small images, positions as rows are the better choice."""
    return (groups == 1 and kh == kw == 3 and sh == sw == dh == dw == 1 and ph == pw == 1
            and c >= SHIFT3_MIN_CHANNELS and (c < ROWS_MIN_CHANNELS or h >= SHIFT3_MIN_HEIGHT))


def _winograd(c, o, h, w, kh, kw, sh, sw, ph, pw, dh, dw, groups, least=None) -> bool:
    """Whether a convolution runs as Winograd F(2x2, 3x3) (winograd.py): 3x3, stride 1,
    undilated, padding 1, groups 1, even height and width, `least` (WINOGRAD_MIN_CHANNELS)
    or more input and output channels."""
    least = WINOGRAD_MIN_CHANNELS if least is None else least
    return (groups == 1 and kh == kw == 3 and sh == sw == dh == dw == 1 and ph == pw == 1
            and h % 2 == 0 and w % 2 == 0 and min(c, o) >= least)


def _pointwise(kh, kw, ph, pw, groups) -> bool:
    """Whether a convolution is a 1x1 one with no padding (groups 1): pointwise.py."""
    return groups == 1 and kh == kw == 1 and ph == pw == 0


def _by_rows(c: int, sw: int, groups: int) -> bool:
    """Whether to lay the im2col matrix out with one row per output position (channels last)."""
    return groups == 1 and (c >= ROWS_MIN_CHANNELS or (sw > 1 and c >= 8))


# ---- the table's conv kernels --------------------------------------------------------------
def conv2d_forward(x, w, b, sh, sw, ph, pw, dh, dw, groups, oh, ow):
    """x (N, C, H, W), w (O, C/groups, KH, KW), b (O,) or None -> y (N, O, OH, OW)."""
    c = x.shape[1]
    o, _, kh, kw = w.shape
    has_bias = b is not None
    bias = b if has_bias else np.zeros(1, dtype=x.dtype)
    if _is_depthwise(c, o, groups):
        return depthwise_forward(x, w, bias, has_bias, sh, sw, ph, pw, dh, dw, oh, ow)
    if _pointwise(kh, kw, ph, pw, groups):
        return pointwise.forward(x, w, bias, has_bias, sh, sw, oh, ow)
    if _winograd(c, o, x.shape[2], x.shape[3], kh, kw, sh, sw, ph, pw, dh, dw, groups):
        return winograd.forward(x, w, bias, has_bias, oh, ow)
    if _shift3(c, x.shape[2], kh, kw, sh, sw, ph, pw, dh, dw, groups):
        return shift3.forward(x, w, bias, has_bias, oh, ow)
    if _by_rows(c, sw, groups):
        return im2row.forward(x, w, bias, has_bias, sh, sw, ph, pw, dh, dw, oh, ow)
    return im2col.forward(x, w, bias, has_bias, sh, sw, ph, pw, dh, dw, groups, oh, ow)


def conv2d_backward_input(gy, w, sh, sw, ph, pw, dh, dw, groups, h, wd):
    """gy (N, O, OH, OW), w (O, C/groups, KH, KW) -> gx (N, C, H, W)."""
    o, oh, ow = gy.shape[1:]
    _, cg, kh, kw = w.shape
    c = cg * groups
    if _is_depthwise(c, o, groups):
        return depthwise_backward_input(gy, w, sh, sw, ph, pw, dh, dw, h, wd)
    if _pointwise(kh, kw, ph, pw, groups):
        return pointwise.backward_input(gy, w, sh, sw, h, wd)
    og = o // groups
    qh, qw = dh * (kh - 1) - ph, dw * (kw - 1) - pw
    if sh == sw == 1 and o <= c and qh >= 0 and qw >= 0 and oh + 2 * qh - dh * (kh - 1) == h \
            and ow + 2 * qw - dw * (kw - 1) == wd:
        # stride 1: the input gradient is gy convolved with the flipped kernel, channels in and
        # out swapped within each group (im2col only copies; col2im would add). Not when O > C:
        # then gy's im2col is larger than the input's, and the product has only C rows
        wf = w.reshape(groups, og, cg, kh, kw)[:, :, :, ::-1, ::-1].transpose(0, 2, 1, 3, 4)
        wf = np.ascontiguousarray(wf).reshape(c, og, kh, kw)
        return conv2d_forward(gy, wf, None, 1, 1, qh, qw, dh, dw, groups, h, wd)
    if _by_rows(c, sw, groups):
        return im2row.backward_input(gy, w, sh, sw, ph, pw, dh, dw, h, wd)
    return im2col.backward_input(gy, w, sh, sw, ph, pw, dh, dw, groups, h, wd)


def conv2d_backward_weight(gy, x, sh, sw, ph, pw, dh, dw, groups, kh, kw):
    """gy (N, O, OH, OW), x (N, C, H, W) -> gw (O, C/groups, KH, KW)."""
    c = x.shape[1]
    o = gy.shape[1]
    if _is_depthwise(c, o, groups):
        return depthwise_backward_weight(gy, x, sh, sw, ph, pw, dh, dw, kh, kw)
    if _winograd(c, o, x.shape[2], x.shape[3], kh, kw, sh, sw, ph, pw, dh, dw, groups,
                 WINOGRAD_WEIGHT_MIN_CHANNELS):
        return winograd.backward_weight(gy, x)
    if _shift3(c, x.shape[2], kh, kw, sh, sw, ph, pw, dh, dw, groups):
        if c >= STACK3_MIN_CHANNELS:
            return shift3.backward_weight_stacked(gy, x)
        return shift3.backward_weight_small(gy, x)
    if groups == 1 and c * kh * kw * o <= ABT_MAX_OUTPUT:
        # a small weight gradient by _add_abt, also where the forward lays positions out as rows
        return im2col.backward_weight_small(gy, x, sh, sw, ph, pw, dh, dw, kh, kw)
    if _by_rows(c, sw, groups):  # positions as rows, as in conv2d_forward
        return im2row.backward_weight(gy, x, sh, sw, ph, pw, dh, dw, kh, kw)
    return im2col.backward_weight(gy, x, sh, sw, ph, pw, dh, dw, groups, kh, kw)
