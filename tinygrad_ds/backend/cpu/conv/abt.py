"""A micro-GEMM for small outputs: out (M, N) += a @ b^T summed in registers, in numba.

A weight gradient with few entries (the 16-channel shifted products: M = 3C = 48, N = O = 16,
with p, the number of output positions summed over, in the thousands; the 3->16 stem; 1x1
convolutions) is a product with a small output and long operands. OpenBLAS spends most of its
time on such a product packing a and b into its blocked layout; _add_abt reads them in place.
It runs on one thread: a second did not pay, as OpenBLAS's idle threads spin on the cores for a
while after each product. Its chunks are a quarter of the GEMM chunks, so
that both operands stay in a core's L2 cache.
"""
from __future__ import annotations

from numba import njit

from . import workspace


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _add_abt(a, off, b, p, zero, out):
    """out (M, N) += a[:, off:off+p] @ b[:, :p]^T, for a (M, >= off+p) and b (N, >= p) whose
    rows are contiguous; zero is a 0 of the arrays' dtype (the sums' type).

    Each 4x4 block of out is 16 sums held in registers over one pass of 4 rows of a and 4 of b,
    which LLVM vectorizes over p."""
    m, n = out.shape
    m4, n4 = m - m % 4, n - n % 4
    for i in range(0, m4, 4):
        a0, a1 = a[i, off:off + p], a[i + 1, off:off + p]
        a2, a3 = a[i + 2, off:off + p], a[i + 3, off:off + p]
        for j in range(0, n4, 4):
            b0, b1, b2, b3 = b[j, :p], b[j + 1, :p], b[j + 2, :p], b[j + 3, :p]
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
            s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = zero
            for q in range(p):
                x0, x1, x2, x3 = a0[q], a1[q], a2[q], a3[q]
                y0, y1, y2, y3 = b0[q], b1[q], b2[q], b3[q]
                s00 += x0 * y0
                s01 += x0 * y1
                s02 += x0 * y2
                s03 += x0 * y3
                s10 += x1 * y0
                s11 += x1 * y1
                s12 += x1 * y2
                s13 += x1 * y3
                s20 += x2 * y0
                s21 += x2 * y1
                s22 += x2 * y2
                s23 += x2 * y3
                s30 += x3 * y0
                s31 += x3 * y1
                s32 += x3 * y2
                s33 += x3 * y3
            out[i, j] += s00
            out[i, j + 1] += s01
            out[i, j + 2] += s02
            out[i, j + 3] += s03
            out[i + 1, j] += s10
            out[i + 1, j + 1] += s11
            out[i + 1, j + 2] += s12
            out[i + 1, j + 3] += s13
            out[i + 2, j] += s20
            out[i + 2, j + 1] += s21
            out[i + 2, j + 2] += s22
            out[i + 2, j + 3] += s23
            out[i + 3, j] += s30
            out[i + 3, j + 1] += s31
            out[i + 3, j + 2] += s32
            out[i + 3, j + 3] += s33
    # the rows and columns left over from the 4x4 blocks, one dot product each
    for i in range(m):
        for j in range(n4 if i < m4 else 0, n):
            x, y = a[i, off:off + p], b[j, :p]
            t = zero
            for q in range(p):
                t += x[q] * y[q]
            out[i, j] += t
    return out


def _abt_chunks(n: int, per_sample: int) -> list[tuple[int, int]]:
    """Chunks for _add_abt: a quarter of CHUNK_ELEMENTS, so that both of its operands stay in a
    core's L2 cache."""
    return workspace._chunks(n, per_sample, max(1, workspace.CHUNK_ELEMENTS // 4))
