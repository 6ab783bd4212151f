"""Dense-solver template: LAPACK through the shim's trampolines, a plain loop otherwise.

LAPACK reads column-major matrices. A kernel describes each matrix as column-major (unit
row stride) or as the transpose of one (unit column stride), and a transposed matrix flips
the triangle (``uplo``) and, for a solve, ``trans``, which is how PyTensor's own ``perform``
hands C-ordered matrices to SciPy. The runtime allocates results column-major (as SciPy's
wrappers return them) and copies matrices LAPACK cannot read; anything else and a library
loaded without LAPACK run the loops, so a kernel is never wrong, only slower.
"""

from __future__ import annotations

import ctypes
from functools import cache

import numpy as np
from numba import njit, types

from aotkernels.kernels.lapack_ops import (
    FAILED,
    LAPACK_DTYPES,
    LAPACK_OPS,
    LOWER,
    NAN_ON_ERROR,
    UNIT_DIAGONAL,
)
from aotkernels.signature import Signature

_i32, _i64, _ptr = types.int32, types.int64, types.intp

#: the shim's trampolines; a kernel compiled outside the library only ever sees stubs
TRAMPOLINES = ("aotk_dpotrf", "aotk_spotrf", "aotk_dtrtrs", "aotk_strtrs")
#: what a trampoline returns when no LAPACK is bound or the sizes exceed its 32-bit ints
NO_LAPACK = -(2 ** 31)


@cache
def _stub_symbols() -> ctypes.CFUNCTYPE:
    """Resolve the trampolines in numba's own JIT to a stub answering "no LAPACK" (see
    ``kernels/blas.py``); the library link binds the IR's declarations to the shim."""
    import llvmlite.binding as llvm

    stub = ctypes.CFUNCTYPE(ctypes.c_int32)(lambda: NO_LAPACK)
    for name in TRAMPOLINES:
        llvm.add_symbol(name, ctypes.cast(stub, ctypes.c_void_p).value)
    return stub


def _trampolines(dtype: str):
    p = "d" if dtype == "float64" else "s"
    potrf = types.ExternalFunction(f"aotk_{p}potrf", _i32(_i32, _i64, _ptr, _i64))
    trtrs = types.ExternalFunction(f"aotk_{p}trtrs", _i32(_i32, _i32, _i32, _i64, _i64, _ptr,
                                                           _i64, _ptr, _i64))
    return potrf, trtrs


@njit(inline="always")
def _col_major_ld(s0, s1, rows, cols, size):
    """Leading dimension (in items) if LAPACK can read the matrix as column-major, else 0."""
    if rows > 1 and s0 != size:
        return 0
    if cols == 1:
        return max(1, rows)
    if s1 <= 0 or s1 % size:
        return 0
    ld = s1 // size
    return ld if ld >= max(1, rows) else 0


@njit(inline="always")
def _as_lapack(m, size):
    """(transposed, ld) describing ``m`` as op(column-major matrix); ld 0: LAPACK cannot."""
    r, c = m.shape
    ld = _col_major_ld(m.strides[0], m.strides[1], r, c, size)
    if ld:
        return 0, ld
    return 1, _col_major_ld(m.strides[1], m.strides[0], c, r, size)


def _bodies(dtype: str) -> dict:
    potrf_t, trtrs_t = _trampolines(dtype)
    size = np.dtype(dtype).itemsize
    zero, nan = getattr(np, dtype)(0), getattr(np, dtype)(np.nan)

    @njit(inline="always")
    def failed(out, flags):
        if flags & NAN_ON_ERROR:
            for i in range(out.shape[0]):
                for j in range(out.shape[1]):
                    out[i, j] = nan
            return 0
        return FAILED

    @njit
    def cholesky_kernel(a, flags_, out):
        flags = flags_[()]
        n = a.shape[0]
        if n == 0:
            return 0
        # w: the factor as a lower triangle (U.T for an upper factor); a's triangle, cleaned
        w = out if flags & LOWER else out.T
        src = a if flags & LOWER else a.T
        for i in range(n):
            for j in range(n):
                w[i, j] = src[i, j] if j <= i else zero
        t, ld = _as_lapack(w, size)
        if ld:  # lower of a column-major w, or upper of its row-major transpose
            info = potrf_t(1 - t, n, w.ctypes.data, ld)
            if info != NO_LAPACK:
                return 0 if info == 0 else failed(out, flags)
        for j in range(n):
            s = w[j, j]
            for k in range(j):
                s -= w[j, k] * w[j, k]
            if s <= zero:  # LAPACK's test: NaN runs on, as in OpenBLAS
                return failed(out, flags)
            d = np.sqrt(s)
            w[j, j] = d
            for i in range(j + 1, n):
                s = w[i, j]
                for k in range(j):
                    s -= w[i, k] * w[j, k]
                w[i, j] = s / d
        return 0

    @njit
    def solve_triangular_kernel(a, b, flags_, out):
        flags = flags_[()]
        n, k = b.shape
        unit, lower = flags & UNIT_DIAGONAL, flags & LOWER
        if n == 0 or k == 0:
            return 0
        for i in range(n):
            for j in range(k):
                out[i, j] = b[i, j]
        if not unit:  # trtrs refuses an exact zero on the diagonal before solving
            for i in range(n):
                if a[i, i] == zero:
                    return failed(out, flags)
        ta, lda = _as_lapack(a, size)
        tb, ldb = _as_lapack(out, size)
        if lda and ldb and tb == 0:  # a row-major a is a transposed column-major one
            uplo = (1 if lower else 0) if ta == 0 else (0 if lower else 1)
            info = trtrs_t(uplo, ta, 1 if unit else 0, n, k, a.ctypes.data, lda,
                           out.ctypes.data, ldb)
            if info != NO_LAPACK:
                return 0 if info == 0 else failed(out, flags)
        for c in range(k):
            for step in range(n):
                i = step if lower else n - 1 - step
                s = out[i, c]
                if lower:
                    for p in range(i):
                        s -= a[i, p] * out[p, c]
                else:
                    for p in range(i + 1, n):
                        s -= a[i, p] * out[p, c]
                out[i, c] = s if unit else s / a[i, i]
        return 0

    return {"cholesky": cholesky_kernel, "solve_triangular": solve_triangular_kernel}


def build(sig: Signature, name: str):
    """``(body, operand specs)`` for ``lapack/<op>/<dtypes>-><dtype>/nd2``."""
    op = LAPACK_OPS[sig.op]
    d = sig.out_dtype
    if d not in LAPACK_DTYPES or sig.in_dtypes != op.in_dtypes(d) or sig.ndim != op.ndim:
        raise TypeError(f"{sig.key} does not match {op.name} ({op.doc}) over one float dtype")
    _stub_symbols()
    specs = [(t, r, "A") for t, r in zip((*op.in_dtypes(d), d), op.ranks)]
    return _bodies(d)[sig.op], specs
