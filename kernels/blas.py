"""Matrix-product template: BLAS through the shim's trampolines, a plain loop otherwise.

Each kernel works out how BLAS can read every matrix without a copy: row-major (unit
column stride) or column-major (unit row stride, passed as a transposed row-major matrix),
with a leading dimension BLAS accepts. A column-major output is computed as the transposed
product. Anything else (negative, zero or odd strides) and a library loaded without a BLAS
run the loop, so a kernel is never wrong, only slower; the runtime copies odd operands to
keep large products on BLAS.
"""

from __future__ import annotations

import ctypes
from functools import cache

import numpy as np
from numba import njit, types

from aotkernels.kernels.blas_ops import BLAS_DTYPES, BLAS_OPS
from aotkernels.signature import Signature

_i32, _i64, _ptr = types.int32, types.int64, types.intp

#: the shim's trampolines; a kernel compiled outside the library only ever sees stubs
TRAMPOLINES = ("aotk_dgemm", "aotk_sgemm", "aotk_dgemv", "aotk_sgemv", "aotk_ddot",
               "aotk_sdot")


@cache
def _stub_symbols() -> ctypes.CFUNCTYPE:
    """numba finalises every cfunc in its own JIT, which must resolve external symbols;
    here they resolve to a stub answering "no BLAS". The IR keeps plain declarations, which
    the library link binds to the shim."""
    import llvmlite.binding as llvm

    stub = ctypes.CFUNCTYPE(ctypes.c_int32)(lambda: -1)
    for name in TRAMPOLINES:
        llvm.add_symbol(name, ctypes.cast(stub, ctypes.c_void_p).value)
    return stub


def _trampolines(dtype: str):
    t = types.float64 if dtype == "float64" else types.float32
    p = "d" if dtype == "float64" else "s"
    gemm = types.ExternalFunction(f"aotk_{p}gemm", _i32(_i32, _i32, _i64, _i64, _i64, t, _ptr,
                                                         _i64, _ptr, _i64, t, _ptr, _i64))
    gemv = types.ExternalFunction(f"aotk_{p}gemv", _i32(_i32, _i64, _i64, t, _ptr, _i64,
                                                         _ptr, _i64, t, _ptr, _i64))
    dot = types.ExternalFunction(f"aotk_{p}dot", _i32(_i64, _ptr, _i64, _ptr, _i64, _ptr))
    return gemm, gemv, dot


@njit(inline="always")
def _row_major_ld(s0, s1, rows, cols, size):
    """Leading dimension (in items) if BLAS can read the matrix as row-major, else 0."""
    if cols > 1 and s1 != size:
        return 0
    if rows == 1:
        return max(1, cols)
    if s0 <= 0 or s0 % size:
        return 0
    ld = s0 // size
    return ld if ld >= max(1, cols) else 0


@njit(inline="always")
def _as_blas(m, size):
    """(transposed, ld) describing ``m`` as op(row-major matrix); ld 0: BLAS cannot."""
    r, c = m.shape
    ld = _row_major_ld(m.strides[0], m.strides[1], r, c, size)
    if ld:
        return 0, ld
    return 1, _row_major_ld(m.strides[1], m.strides[0], c, r, size)


@njit(inline="always")
def _inc(v, size):
    """BLAS increment of a vector view, or 0 if it has none (negative, zero, unaligned)."""
    if v.shape[0] <= 1:
        return 1
    s = v.strides[0]
    return s // size if s > 0 and s % size == 0 else 0


def _bodies(dtype: str) -> dict:
    gemm_t, gemv_t, dot_t = _trampolines(dtype)
    size = np.dtype(dtype).itemsize
    zero = getattr(np, dtype)(0)

    @njit(inline="always")
    def gemm(a, b, alpha, beta, c):
        m, k = a.shape
        n = b.shape[1]
        if m == 0 or n == 0:
            return 0
        ta, lda = _as_blas(a, size)
        tb, ldb = _as_blas(b, size)
        tc, ldc = _as_blas(c, size)
        if lda and ldb and ldc and k > 0:
            pa, pb, pc = a.ctypes.data, b.ctypes.data, c.ctypes.data
            if tc == 0:
                st = gemm_t(ta, tb, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc)
            else:  # C' = B' A' into the row-major view of C'
                st = gemm_t(1 - tb, 1 - ta, n, m, k, alpha, pb, ldb, pa, lda, beta, pc, ldc)
            if st == 0:
                return 0
        for i in range(m):
            for j in range(n):
                s = zero
                for p in range(k):
                    s += a[i, p] * b[p, j]
                c[i, j] = alpha * s + (beta * c[i, j] if beta != 0 else zero)
        return 0

    @njit
    def gemm_kernel(a, b, alpha, beta, c):
        return gemm(a, b, alpha[()], beta[()], c)

    @njit
    def gemv_kernel(a, x, alpha_, beta_, y):
        alpha, beta = alpha_[()], beta_[()]
        m, n = a.shape
        if m == 0:
            return 0
        ta, lda = _as_blas(a, size)
        incx, incy = _inc(x, size), _inc(y, size)
        if lda and incx and incy and n > 0:
            if ta == 0:
                st = gemv_t(0, m, n, alpha, a.ctypes.data, lda, x.ctypes.data, incx, beta,
                            y.ctypes.data, incy)
            else:  # A is the transpose of a row-major (n, m) matrix
                st = gemv_t(1, n, m, alpha, a.ctypes.data, lda, x.ctypes.data, incx, beta,
                            y.ctypes.data, incy)
            if st == 0:
                return 0
        for i in range(m):
            s = zero
            for p in range(n):
                s += a[i, p] * x[p]
            y[i] = alpha * s + (beta * y[i] if beta != 0 else zero)
        return 0

    @njit
    def dot_kernel(x, y, out):
        n = x.shape[0]
        incx, incy = _inc(x, size), _inc(y, size)
        if n > 0 and incx and incy:
            if dot_t(n, x.ctypes.data, incx, y.ctypes.data, incy, out.ctypes.data) == 0:
                return 0
        s = zero
        for p in range(n):
            s += x[p] * y[p]
        out[()] = s
        return 0

    one = getattr(np, dtype)(1)

    @njit
    def matmul_kernel(a, b, c):
        for i in range(c.shape[0]):
            gemm(a[i], b[i], one, zero, c[i])
        return 0

    return {"dot": dot_kernel, "gemv": gemv_kernel, "gemm": gemm_kernel,
            "matmul": matmul_kernel}


def build(sig: Signature, name: str):
    """``(body, operand specs)`` for ``blas/<op>/<dtypes>-><dtype>/nd<k>``."""
    op = BLAS_OPS[sig.op]
    d = sig.out_dtype
    if d not in BLAS_DTYPES or sig.in_dtypes != (d,) * op.nin or sig.ndim != op.ndim:
        raise TypeError(f"{sig.key} does not match {op.name} ({op.doc}) over one float dtype")
    _stub_symbols()
    return _bodies(d)[sig.op], [(d, r, "A") for r in op.ranks]
