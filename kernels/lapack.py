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
    INVERSE,
    LAPACK_DTYPES,
    LAPACK_OPS,
    LOWER,
    NAN_ON_ERROR,
    POSITIVE_DEFINITE,
    SYMMETRIC,
    UNIT_DIAGONAL,
)
from aotkernels.signature import Signature

_i32, _i64, _ptr = types.int32, types.int64, types.intp

#: the shim's trampolines; a kernel compiled outside the library only ever sees stubs
TRAMPOLINES = tuple(f"aotk_{p}{r}" for r in ("potrf", "trtrs", "getrf", "getrs", "potrs",
                                             "sytrf", "sytrs") for p in "ds")
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


def _trampolines(dtype: str) -> dict:
    """The shim's trampolines for ``dtype`` (their C signatures are in the shim)."""
    p = "d" if dtype == "float64" else "s"
    pivoted_trs = _i32(_i32, _i64, _i64, _ptr, _i64, _ptr, _ptr, _i64)
    sigs = {"potrf": _i32(_i32, _i64, _ptr, _i64),
            "trtrs": _i32(_i32, _i32, _i32, _i64, _i64, _ptr, _i64, _ptr, _i64),
            "getrf": _i32(_i64, _ptr, _i64, _ptr), "getrs": pivoted_trs,
            "potrs": _i32(_i32, _i64, _i64, _ptr, _i64, _ptr, _i64),
            "sytrf": _i32(_i32, _i64, _ptr, _i64, _ptr, _ptr, _i64), "sytrs": pivoted_trs}
    return {r: types.ExternalFunction(f"aotk_{p}{r}", sig) for r, sig in sigs.items()}


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
    lapack = _trampolines(dtype)
    potrf_t, trtrs_t, getrf_t, getrs_t = (lapack[r] for r in ("potrf", "trtrs", "getrf",
                                                               "getrs"))
    potrs_t, sytrf_t, sytrs_t = lapack["potrs"], lapack["sytrf"], lapack["sytrs"]
    size = np.dtype(dtype).itemsize
    zero, one, nan = (getattr(np, dtype)(v) for v in (0, 1, np.nan))

    @njit(inline="always")
    def failed(out, flags):
        if flags & NAN_ON_ERROR:
            for i in range(out.shape[0]):
                for j in range(out.shape[1]):
                    out[i, j] = nan
            return 0
        return FAILED

    @njit(inline="always")
    def cholesky_into(a, lower, out):
        """out = a's Cholesky factor (L of its lower triangle if ``lower``, else U of its
        upper one), the other triangle zero; False if a is not positive definite."""
        n = a.shape[0]
        # w: the factor as a lower triangle (U.T for an upper factor); a's triangle, cleaned
        w = out if lower else out.T
        src = a if lower else a.T
        for i in range(n):
            for j in range(n):
                w[i, j] = src[i, j] if j <= i else zero
        t, ld = _as_lapack(w, size)
        if ld:  # lower of a column-major w, or upper of its row-major transpose
            info = potrf_t(1 - t, n, w.ctypes.data, ld)
            if info != NO_LAPACK:
                return info == 0
        for j in range(n):
            s = w[j, j]
            for k in range(j):
                s -= w[j, k] * w[j, k]
            if s <= zero:  # LAPACK's test: NaN runs on, as in OpenBLAS
                return False
            d = np.sqrt(s)
            w[j, j] = d
            for i in range(j + 1, n):
                s = w[i, j]
                for k in range(j):
                    s -= w[i, k] * w[j, k]
                w[i, j] = s / d
        return True

    @njit
    def cholesky_kernel(a, flags_, out):
        flags = flags_[()]
        if a.shape[0] == 0 or cholesky_into(a, flags & LOWER, out):
            return 0
        return failed(out, flags)

    @njit
    def posdef_kernel(a, flags_, w, out):
        n = a.shape[0]
        for i in range(n):  # SciPy's check_finite, before anything is factored
            for j in range(n):
                if not np.isfinite(a[i, j]):
                    return FAILED
        out[()] = 1 if n == 0 or cholesky_into(a, flags_[()] & LOWER, w) else 0
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

    @njit(inline="always")
    def cholesky_loop(w):
        """w's lower triangle into its Cholesky factor; False if not positive definite."""
        n = w.shape[0]
        for j in range(n):
            s = w[j, j]
            for k in range(j):
                s -= w[j, k] * w[j, k]
            if s <= zero:  # LAPACK's test: NaN runs on, as in OpenBLAS
                return False
            d = np.sqrt(s)
            w[j, j] = d
            for i in range(j + 1, n):
                s = w[i, j]
                for k in range(j):
                    s -= w[i, k] * w[j, k]
                w[i, j] = s / d
        return True

    @njit(inline="always")
    def cholesky_solve_loop(w, out):
        """out = (w w.T)^-1 out for the lower triangle w of a Cholesky factor."""
        n, k = out.shape
        for c in range(k):
            for i in range(n):
                s = out[i, c]
                for p in range(i):
                    s -= w[i, p] * out[p, c]
                out[i, c] = s / w[i, i]
            for i in range(n - 1, -1, -1):
                s = out[i, c]
                for p in range(i + 1, n):
                    s -= w[p, i] * out[p, c]
                out[i, c] = s / w[i, i]

    @njit(inline="always")
    def lu_factor_loop(lu, ipiv):
        """lu into its LU factors by Gaussian elimination with partial pivoting (LAPACK's
        getf2 order: pivots recorded in ipiv, 0-based); False if a pivot is exactly zero."""
        n = lu.shape[0]
        regular = True
        for j in range(n):
            p = j
            for i in range(j + 1, n):
                if abs(lu[i, j]) > abs(lu[p, j]):
                    p = i
            ipiv[j] = p
            if lu[p, j] == zero:
                regular = False
                continue
            if p != j:
                for c in range(n):
                    t = lu[j, c]
                    lu[j, c] = lu[p, c]
                    lu[p, c] = t
            for i in range(j + 1, n):
                lu[i, j] /= lu[j, j]
            for c in range(j + 1, n):
                f = lu[j, c]
                for i in range(j + 1, n):
                    lu[i, c] -= lu[i, j] * f
        return regular

    @njit(inline="always")
    def lu_solve_loop(lu, ipiv, out):
        """out = lu^-1 out: lu factored in place (``lu_factor_loop``), then the two
        triangular solves; False if a pivot is exactly zero."""
        n, k = out.shape
        if not lu_factor_loop(lu, ipiv):
            return False
        for c in range(k):
            for j in range(n):
                p = ipiv[j]
                if p != j:
                    t = out[j, c]
                    out[j, c] = out[p, c]
                    out[p, c] = t
            for i in range(n):
                s = out[i, c]
                for q in range(i):
                    s -= lu[i, q] * out[q, c]
                out[i, c] = s
            for i in range(n - 1, -1, -1):
                s = out[i, c]
                for q in range(i + 1, n):
                    s -= lu[i, q] * out[q, c]
                out[i, c] = s / lu[i, i]
        return True

    @njit
    def solve_kernel(a, b, flags_, lu, ipiv, work, out):
        flags = flags_[()]
        n, k = b.shape
        lower = 1 if flags & LOWER else 0
        if n == 0 or k == 0:
            return 0
        if n == 1:  # SciPy divides by a 1x1 matrix, whatever its structure
            if a[0, 0] == zero:
                return failed(out, flags)
            for j in range(k):
                out[0, j] = b[0, j] / a[0, 0]
            return 0
        for i in range(n):
            for j in range(k):
                out[i, j] = b[i, j]
        for j in range(n):  # the matrix LAPACK factors in place: a column-major copy
            for i in range(n):
                lu[i, j] = a[i, j]
        tl, ld = _as_lapack(lu, size)
        tb, ldb = _as_lapack(out, size)
        if ld and ldb and tl == 0 and tb == 0:
            lu_p, piv, out_p = lu.ctypes.data, ipiv.ctypes.data, out.ctypes.data
            if flags & POSITIVE_DEFINITE:
                info = potrf_t(lower, n, lu_p, ld)
                if info == 0:
                    info = potrs_t(lower, n, k, lu_p, ld, out_p, ldb)
            elif flags & SYMMETRIC:
                info = sytrf_t(lower, n, lu_p, ld, piv, work.ctypes.data, work.shape[0])
                if info == 0:
                    info = sytrs_t(lower, n, k, lu_p, ld, piv, out_p, ldb)
            else:
                info = getrf_t(n, lu_p, ld, piv)
                if info == 0:
                    info = getrs_t(0, n, k, lu_p, ld, piv, out_p, ldb)
            if info != NO_LAPACK:
                return 0 if info == 0 else failed(out, flags)
            for j in range(n):  # a trampoline that is not bound did not touch lu
                for i in range(n):
                    lu[i, j] = a[i, j]
        if flags & POSITIVE_DEFINITE:
            w = lu if lower else lu.T  # the chosen triangle as a lower one
            if not cholesky_loop(w):
                return failed(out, flags)
            cholesky_solve_loop(w, out)
            return 0
        if flags & SYMMETRIC:  # the other triangle mirrored, then LU
            for i in range(n):
                for j in range(i + 1, n):
                    if lower:
                        lu[i, j] = lu[j, i]
                    else:
                        lu[j, i] = lu[i, j]
        return 0 if lu_solve_loop(lu, ipiv, out) else failed(out, flags)

    @njit
    def lu_factor_kernel(a, flags_, ipiv, out):
        flags = flags_[()]
        n = a.shape[0]
        if n == 0:
            return 0
        for j in range(n):
            for i in range(n):
                out[i, j] = a[i, j]
        t, ld = _as_lapack(out, size)
        if ld and t == 0:
            info = getrf_t(n, out.ctypes.data, ld, ipiv.ctypes.data)
            if info != NO_LAPACK:
                for i in range(n):  # LAPACK's 1-based pivots as SciPy returns them
                    ipiv[i] -= 1
                return 0 if info == 0 else failed(out, flags)
        return 0 if lu_factor_loop(out, ipiv) else failed(out, flags)

    @njit
    def slogdet_kernel(a, flags_, lu, ipiv, out):
        n = a.shape[0]
        for j in range(n):  # the column-major copy NumPy factors
            for i in range(n):
                lu[i, j] = a[i, j]
        info, first = NO_LAPACK, 0
        t, ld = _as_lapack(lu, size)
        if n and ld and t == 0:
            info, first = getrf_t(n, lu.ctypes.data, ld, ipiv.ctypes.data), 1
        if info == NO_LAPACK:  # an unbound trampoline did not touch lu
            info, first = (0 if lu_factor_loop(lu, ipiv) else 1), 0
        if info != 0:
            out[0], out[1] = zero, -np.inf
            return 0
        sign, logdet = one, zero
        for i in range(n):  # NumPy's order: pivots' parity, then the diagonal in turn
            if ipiv[i] != i + first:
                sign = -sign
        for i in range(n):
            d = lu[i, i]
            if d < zero:
                sign, d = -sign, -d
            logdet += np.log(d)
        out[0], out[1] = sign, logdet
        return 0

    @njit
    def cho_solve_kernel(c, b, flags_, out):
        flags = flags_[()]
        n, k = b.shape
        lower = 1 if flags & LOWER else 0
        if n == 0 or k == 0:
            return 0
        for i in range(n):
            for j in range(k):
                out[i, j] = b[i, j]
        tc, ldc = _as_lapack(c, size)
        tb, ldb = _as_lapack(out, size)
        if ldc and ldb and tc == 0 and tb == 0:
            info = potrs_t(lower, n, k, c.ctypes.data, ldc, out.ctypes.data, ldb)
            if info != NO_LAPACK:
                return 0 if info == 0 else failed(out, flags)
        cholesky_solve_loop(c if lower else c.T, out)
        return 0

    return {"cholesky": cholesky_kernel, "solve_triangular": solve_triangular_kernel,
            "solve": solve_kernel, "cho_solve": cho_solve_kernel, "lu_factor": lu_factor_kernel,
            "slogdet": slogdet_kernel, "posdef": posdef_kernel}


@njit
def _pivot_to_permutation(piv, flags_, work, out):
    """PyTensor's ``PivotToPermutations``: the pivots' row swaps applied to ``arange(n)``
    (a negative pivot counts from the end, as NumPy's index does), then, unless
    ``INVERSE``, that permutation's inverse (its argsort)."""
    n = piv.shape[0]
    p_inv = out if flags_[()] & INVERSE else work
    for i in range(n):
        p_inv[i] = i
    for i in range(n):
        p = np.int64(piv[i])
        if p < 0:
            p += n
        if p < 0 or p >= n:
            return FAILED
        t = p_inv[i]
        p_inv[i] = p_inv[p]
        p_inv[p] = t
    if not flags_[()] & INVERSE:
        for i in range(n):
            out[p_inv[i]] = i
    return 0


def build(sig: Signature, name: str):
    """``(body, operand specs)`` for ``lapack/<op>/<dtypes>-><dtype>/nd2``."""
    op = LAPACK_OPS[sig.op]
    d = sig.out_dtype
    if (d not in LAPACK_DTYPES if not op.fixed else d != op.fixed[-1]) or (
            sig.in_dtypes != op.in_dtypes(d) or sig.ndim != op.ndim):
        raise TypeError(f"{sig.key} does not match {op.name} ({op.doc})")
    specs = [(t, r, "A") for t, r in zip((*op.in_dtypes(d), d), op.ranks)]
    if op.fixed:
        return _pivot_to_permutation, specs
    _stub_symbols()
    return _bodies(d)[sig.op], specs
