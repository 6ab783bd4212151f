"""Dense solvers on the ``lapack`` kernels: Cholesky factors and triangular solves.

The kernels call the LAPACK bound at load time (``lapack_source``: SciPy's) or, without
one, their own loops, and are never JIT-compiled (their trampolines live in the library's
C shim); when the library lacks them, NumPy (and SciPy for a triangular solve) compute
instead, recorded as such. Integer matrices are converted to float64 first, as PyTensor's
Ops do; matrices LAPACK cannot read in place (neither unit row nor unit column stride) are
copied. Results are column-major, like the arrays SciPy's wrappers and PyTensor's
``perform`` return. A matrix that is not positive definite, or a triangular one with a zero
on its diagonal, raises ``numpy.linalg.LinAlgError``, or with ``on_error="nan"`` gives a
result full of NaN, which is what PyTensor's ``Cholesky`` and ``SolveTriangular`` do.
"""

from __future__ import annotations

import numpy as np

from aotkernels import call, record
from aotkernels.kernels.lapack_ops import (
    FAILED,
    FLAGS_DTYPE,
    LAPACK_DTYPES,
    LAPACK_OPS,
    LOWER,
    NAN_ON_ERROR,
    UNIT_DIAGONAL,
)

ON_ERROR = ("raise", "nan")


def _ships(op: str, dtype: str) -> bool:
    spec = LAPACK_OPS[op]
    return call.ships("lapack", op, spec.in_dtypes(dtype), dtype, spec.ndim)


def _float(a: np.ndarray, dtype: str) -> np.ndarray:
    return a if a.dtype == dtype else record.astype(a, dtype)


def _lapack_ready(m: np.ndarray) -> np.ndarray:
    """``m`` itself if LAPACK can read it (a unit stride, a positive multiple of the item
    size along the other axis), else a recorded column-major copy."""
    size = m.dtype.itemsize
    dims = [(n, s) for n, s in zip(m.shape, m.strides) if n > 1]
    if not dims:
        return m
    if all(s > 0 and s % size == 0 for _, s in dims) and any(s == size for _, s in dims):
        return m
    return record.convert(m, np.asfortranarray(m))


def _flags(lower: bool, unit: bool, on_error: str) -> np.ndarray:
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be 'raise' or 'nan', not {on_error!r}")
    bits = (LOWER if lower else 0) | (UNIT_DIAGONAL if unit else 0)
    return record.literal(np.array(bits | (NAN_ON_ERROR if on_error == "nan" else 0),
                                   FLAGS_DTYPE))


def _check_finite(*arrays: np.ndarray) -> None:
    """SciPy's ``check_finite``: refuse infinities and NaN before solving."""
    if not all(np.isfinite(a).all() for a in arrays):
        raise ValueError("array must not contain infs or NaNs")


def _run(op: str, dtype: str, operands: list[np.ndarray]) -> None:
    spec = LAPACK_OPS[op]
    geometry = call.Geometry.operands(operands, spec.ndim)
    errors = {FAILED: (np.linalg.LinAlgError, spec.failure)}
    call.shipped("lapack", op, spec.in_dtypes(dtype), dtype, geometry, errors=errors).run(
        operands)


def _result_dtype(*names: str) -> str:
    """PyTensor's (SciPy's) result dtype: float32 stays, anything else computes in float64."""
    dtype = names[0] if len(set(names)) == 1 else np.result_type(*names).name
    return dtype if dtype in LAPACK_DTYPES else "float64"


def cholesky(a, lower: bool = True, *, on_error: str = "raise",
             check_finite: bool = True) -> np.ndarray:
    """The Cholesky factor of a symmetric positive definite matrix: ``L`` with
    ``L @ L.T == a`` read from its lower triangle (``lower``), else ``U`` with
    ``U.T @ U == a`` from its upper one; the other triangle of the result is zero."""
    a, name = call.operand(a)
    if a.ndim != 2:
        raise ValueError(f"cholesky needs a matrix, got an array of shape {a.shape}")
    if a.shape[0] != a.shape[1]:
        raise ValueError(f"Input array is expected to be square but has the shape: {a.shape}.")
    dtype = _result_dtype(name)
    flags = _flags(lower, False, on_error)
    a = _float(a, dtype)
    if check_finite:
        _check_finite(a)
    out = np.empty(a.shape, dtype, order="F")
    if a.size == 0:
        return out
    if not _ships("cholesky", dtype):
        record.opaque("numpy")
        try:
            out[...] = np.linalg.cholesky(a) if lower else np.linalg.cholesky(a.T).T
        except np.linalg.LinAlgError:
            if on_error == "raise":
                raise np.linalg.LinAlgError(LAPACK_OPS["cholesky"].failure) from None
            out[...] = np.nan
        return out
    _run("cholesky", dtype, [_lapack_ready(a), flags, out])
    return out


def solve_triangular(a, b, *, trans=0, lower: bool = False, unit_diagonal: bool = False,
                     on_error: str = "raise", check_finite: bool = True) -> np.ndarray:
    """``x`` with ``a @ x == b`` (``trans`` 1, 'T' or 2, 'C': ``a.T @ x == b``) for a
    triangular ``a``, read from its lower triangle (``lower``) or its upper one, with ones
    on its diagonal if ``unit_diagonal``; ``b`` is a vector or a matrix."""
    (a, a_name), (b, b_name) = call.operand(a), call.operand(b)
    if trans not in (0, 1, 2, "N", "T", "C"):
        raise ValueError(f"trans must be 0, 1, 2, 'N', 'T' or 'C', not {trans!r}")
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError("expected square matrix")
    if b.ndim not in (1, 2) or a.shape[0] != b.shape[0]:
        raise ValueError(f"shapes of a {a.shape} and b {b.shape} are incompatible")
    if trans in (1, 2, "T", "C"):  # real matrices: a.T, whose other triangle is the one
        a, lower = a.T, not lower
    dtype = _result_dtype(a_name, b_name)
    flags = _flags(lower, unit_diagonal, on_error)
    a, b = _float(a, dtype), _float(b, dtype)
    if check_finite:
        _check_finite(a, b)
    out = np.empty(b.shape, dtype, order="F")
    if out.size == 0:
        return out
    if not _ships("solve_triangular", dtype):
        record.opaque("numpy")
        return _solve_triangular_numpy(a, b, out, lower, unit_diagonal, on_error)
    matrix = (lambda v: v[:, None]) if b.ndim == 1 else (lambda v: v)
    _run("solve_triangular", dtype, [_lapack_ready(a), matrix(b), flags, matrix(out)])
    return out


def _solve_triangular_numpy(a, b, out, lower: bool, unit: bool, on_error: str) -> np.ndarray:
    """The fallback: ``a``'s triangle solved by NumPy (a general solve of a triangular
    matrix), refusing a zero on its diagonal first as LAPACK's ``trtrs`` does."""
    t = np.tril(a) if lower else np.triu(a)
    if unit:
        np.fill_diagonal(t, 1)
    elif (np.diagonal(t) == 0).any():
        if on_error == "raise":
            raise np.linalg.LinAlgError(LAPACK_OPS["solve_triangular"].failure)
        out[...] = np.nan
        return out
    out[...] = np.linalg.solve(t, b)
    return out
