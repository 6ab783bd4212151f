"""Dense solvers on the ``lapack`` kernels: Cholesky and LU factors, triangular, general,
symmetric and positive definite solves, solves with a Cholesky factor, and what NumPy
computes from the same factors (``slogdet``, ``det``, ``inv``, a positive-definiteness
test).

The kernels call the LAPACK bound at load time (``lapack_source``: SciPy's) or, without
one, their own loops, and are never JIT-compiled (their trampolines live in the library's
C shim); when the library lacks them, NumPy (and SciPy for a triangular solve) compute
instead, recorded as such. Integer matrices are converted to float64 first, as PyTensor's
Ops do; matrices LAPACK cannot read in place (neither unit row nor unit column stride) are
copied. Results are column-major, like the arrays SciPy's wrappers and PyTensor's
``perform`` return, or written into ``out=`` (LAPACK needs a unit row stride there, else the
kernels' loops run). A matrix that is not positive definite, or a triangular one with a zero
on its diagonal, or a singular one for ``solve``, raises ``numpy.linalg.LinAlgError``, or
with ``on_error="nan"`` gives a result full of NaN, which is what PyTensor's ``Cholesky``,
``SolveTriangular`` and ``Solve`` do (``Solve.perform`` makes its NaN result the shape of
``a``, not of the solution: here it has the solution's shape, the type PyTensor declares).
"""

from __future__ import annotations

import numpy as np

from aotkernels import call, record
from aotkernels.families.elemwise import elemwise
from aotkernels.kernels.lapack_ops import (
    FAILED,
    FLAGS_DTYPE,
    INVERSE,
    LAPACK_DTYPES,
    LAPACK_OPS,
    LOWER,
    NAN_ON_ERROR,
    POSITIVE_DEFINITE,
    SYMMETRIC,
    SYTRF_BLOCK,
    UNIT_DIAGONAL,
)

ON_ERROR = ("raise", "nan")
#: ``solve``'s ``assume_a`` (SciPy's names) -> its structure flag
STRUCTURES = {"gen": 0, "general": 0, "sym": SYMMETRIC, "symmetric": SYMMETRIC,
              "pos": POSITIVE_DEFINITE, "positive definite": POSITIVE_DEFINITE}


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


def _flags(lower: bool, unit: bool, on_error: str, structure: int = 0) -> np.ndarray:
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be 'raise' or 'nan', not {on_error!r}")
    bits = (LOWER if lower else 0) | (UNIT_DIAGONAL if unit else 0) | structure
    return record.literal(np.array(bits | (NAN_ON_ERROR if on_error == "nan" else 0),
                                   FLAGS_DTYPE))


def _result(out: np.ndarray | None, shape: tuple, dtype: str, *inputs) -> np.ndarray:
    """The caller's ``out`` (checked), else a new column-major array (as SciPy returns)."""
    if out is None:
        return np.empty(shape, dtype, order="F")
    if not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != dtype:
        raise ValueError(f"out must be a {dtype} array of shape {shape}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    if any(np.may_share_memory(out, x) for x in inputs):
        raise ValueError("out shares memory with an input")
    return out


def _check_finite(*arrays: np.ndarray) -> None:
    """SciPy's ``check_finite``: refuse infinities and NaN before solving."""
    if not all(np.isfinite(a).all() for a in arrays):
        raise ValueError("array must not contain infs or NaNs")


def _run(op: str, dtype: str, operands: list[np.ndarray], error: type = np.linalg.LinAlgError
         ) -> None:
    spec = LAPACK_OPS[op]
    geometry = call.Geometry.operands(operands, spec.ndim)
    errors = {FAILED: (error, spec.failure)}
    call.shipped("lapack", op, spec.in_dtypes(dtype), dtype, geometry, errors=errors).run(
        operands)


def _result_dtype(*names: str) -> str:
    """PyTensor's (SciPy's) result dtype: float32 stays, anything else computes in float64."""
    dtype = names[0] if len(set(names)) == 1 else np.result_type(*names).name
    return dtype if dtype in LAPACK_DTYPES else "float64"


def cholesky(a, lower: bool = True, *, on_error: str = "raise", check_finite: bool = True,
             out: np.ndarray | None = None) -> np.ndarray:
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
    out = _result(out, a.shape, dtype, a)
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
                     on_error: str = "raise", check_finite: bool = True,
                     out: np.ndarray | None = None) -> np.ndarray:
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
    out = _result(out, b.shape, dtype, a, b)
    if out.size == 0:
        return out
    if not _ships("solve_triangular", dtype):
        record.opaque("numpy")
        return _solve_triangular_numpy(a, b, out, lower, unit_diagonal, on_error)
    matrix = (lambda v: v[:, None]) if b.ndim == 1 else (lambda v: v)
    _run("solve_triangular", dtype, [_lapack_ready(a), matrix(b), flags, matrix(out)])
    return out


def _column_major(m: np.ndarray) -> np.ndarray:
    """``m`` itself if LAPACK reads it as it is (unit row stride), else a recorded
    column-major copy: what SciPy's wrappers hand LAPACK, so the results are the same bits."""
    size = m.dtype.itemsize
    if (m.shape[0] <= 1 or m.strides[0] == size) and (
            m.shape[1] <= 1 or (m.strides[1] > 0 and m.strides[1] % size == 0
                                and m.strides[1] >= m.shape[0] * size)):
        return m
    return record.convert(m, np.asfortranarray(m))


def _solve_operands(a, b, what: str):
    """(a, b as a matrix, b's original rank, result dtype) for ``a @ x = b``, checked."""
    (a, a_name), (b, b_name) = call.operand(a), call.operand(b)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"{what}: expected square matrix, got an array of shape {a.shape}")
    if b.ndim not in (1, 2) or a.shape[0] != b.shape[0]:
        raise ValueError(f"{what}: shapes of a {a.shape} and b {b.shape} are incompatible")
    dtype = _result_dtype(a_name, b_name)
    return _float(a, dtype), _float(b, dtype), dtype


def _matrix(v: np.ndarray) -> np.ndarray:
    return v[:, None] if v.ndim == 1 else v


def solve(a, b, *, assume_a: str = "gen", lower: bool = False, on_error: str = "raise",
          check_finite: bool = True, out: np.ndarray | None = None) -> np.ndarray:
    """``x`` with ``a @ x == b`` for a square ``a`` (SciPy's ``linalg.solve``): LU with
    partial pivoting (``assume_a="gen"``), Cholesky (``"pos"``) or Bunch-Kaufman
    (``"sym"``), the last two reading ``a``'s lower triangle if ``lower``, else its upper
    one; ``b`` is a vector or a matrix. The LAPACK calls are SciPy's, so are the results."""
    if assume_a not in STRUCTURES:
        raise ValueError(f"assume_a must be one of {sorted(STRUCTURES)}, not {assume_a!r}")
    a, b, dtype = _solve_operands(a, b, "solve")
    structure = STRUCTURES[assume_a]
    flags = _flags(lower, False, on_error, structure)
    if check_finite:
        _check_finite(a, b)
    out = _result(out, b.shape, dtype, a, b)
    if out.size == 0:
        return out
    n = a.shape[0]
    if not _ships("solve", dtype):
        record.opaque("numpy")
        try:
            out[...] = _solve_numpy(a, b, structure, lower)
        except np.linalg.LinAlgError:
            if on_error == "raise":
                raise np.linalg.LinAlgError(LAPACK_OPS["solve"].failure) from None
            out[...] = np.nan
        return out
    lu = record.workspace((n, n), dtype, order="F")
    pivots = record.workspace((n,), "int32")
    work = record.workspace((SYTRF_BLOCK * n if structure == SYMMETRIC else 1,), dtype)
    _run("solve", dtype, [a, _matrix(b), flags, lu, pivots, work, _matrix(out)])
    return out


def lu_factor(a, *, on_error: str = "raise", check_finite: bool = True
              ) -> tuple[np.ndarray, np.ndarray]:
    """``(lu, piv)`` of a square matrix (SciPy's ``lu_factor``, LAPACK's ``getrf``): ``L``
    (unit diagonal, below) and ``U`` in one column-major matrix, and the 0-based int32 row
    pivots. An exactly singular matrix raises ``LinAlgError``, or with ``on_error="nan"``
    gives an ``lu`` full of NaN (PyTensor's ``LUFactor``), its pivots kept."""
    (a, name) = call.operand(a)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"lu_factor: expected square matrix, got an array of shape {a.shape}")
    dtype = _result_dtype(name)
    flags = _flags(False, False, on_error)
    a = _float(a, dtype)
    if check_finite:
        _check_finite(a)
    n = a.shape[0]
    lu = np.empty((n, n), dtype, order="F")
    pivots = record.workspace((n,), "int32")
    if n == 0:
        return lu, pivots
    if not _ships("lu_factor", dtype):
        record.opaque("numpy")
        return _lu_factor_numpy(a, lu, pivots, on_error)
    _run("lu_factor", dtype, [a, flags, pivots, lu])
    return lu, pivots


def pivot_to_permutation(pivots, *, inverse: bool = False) -> np.ndarray:
    """The row permutation of an LU factorisation's pivots (PyTensor's
    ``PivotToPermutations``): ``arange(n)`` with row ``i`` swapped with ``pivots[i]`` in
    turn, ``perm`` with ``a[perm] == (L @ U)`` if ``inverse``, else its inverse. A pivot out
    of range raises ``IndexError``."""
    (piv, name) = call.operand(pivots)
    if piv.ndim != 1:
        raise ValueError(f"pivots must be a vector, got an array of shape {piv.shape}")
    if not np.issubdtype(piv.dtype, np.integer):
        raise TypeError(f"pivots must be integers, not {name}")
    if name != "int32":
        if piv.size and np.abs(piv.astype(np.int64)).max() >= 2 ** 31:
            raise IndexError(LAPACK_OPS["pivot_to_permutation"].failure)
        piv = record.astype(piv, "int32")
    flags = record.literal(np.array(INVERSE if inverse else 0, FLAGS_DTYPE))
    n = piv.shape[0]
    out = np.empty(n, "int64")
    work = record.workspace((n,), "int64")
    if n:
        _run("pivot_to_permutation", "int64", [piv, flags, work, out], IndexError)
    return out


def _lu_factor_numpy(a, lu, pivots, on_error: str):
    """The fallback without the library's kernel: SciPy's ``lu_factor`` (NumPy has none)."""
    import warnings

    from scipy.linalg import LinAlgWarning, lu_factor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LinAlgWarning)
        factors, piv = lu_factor(a, check_finite=False)
    lu[...], pivots[...] = factors, piv
    if (np.diagonal(factors) == 0).any():
        if on_error == "raise":
            raise np.linalg.LinAlgError(LAPACK_OPS["lu_factor"].failure)
        lu[...] = np.nan
    return lu, pivots


def cho_solve(c_and_lower, b, *, on_error: str = "raise", check_finite: bool = True,
              out: np.ndarray | None = None) -> np.ndarray:
    """``x`` with ``a @ x == b`` given ``a``'s Cholesky factor (SciPy's ``cho_solve``):
    ``c_and_lower = (c, lower)``, ``c @ c.T == a`` with ``c`` read from its lower triangle if
    ``lower``, else ``c.T @ c == a`` from its upper one; ``b`` is a vector or a matrix."""
    c, lower = c_and_lower
    c, b, dtype = _solve_operands(c, b, "cho_solve")
    flags = _flags(lower, False, on_error)
    if check_finite:
        _check_finite(c, b)
    out = _result(out, b.shape, dtype, c, b)
    if out.size == 0:
        return out
    if not _ships("cho_solve", dtype):
        record.opaque("numpy")
        factor = np.tril(c) if lower else np.triu(c).T
        out[...] = np.linalg.solve(factor.T, np.linalg.solve(factor, b))
        return out
    _run("cho_solve", dtype, [_column_major(c), _matrix(b), flags, _matrix(out)])
    return out


def _solve_numpy(a, b, structure: int, lower: bool) -> np.ndarray:
    """The fallback: NumPy's general solve, of the symmetric matrix ``a``'s triangle
    describes for ``sym`` and ``pos`` (which must then be positive definite)."""
    if structure:
        t = np.tril(a) if lower else np.triu(a)
        a = t + t.T - np.diag(np.diagonal(t))
        if structure == POSITIVE_DEFINITE:
            np.linalg.cholesky(a)  # LinAlgError if it is not positive definite
    return np.linalg.solve(a, b)


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


def _square(a, what: str) -> tuple[np.ndarray, str]:
    (a, name) = call.operand(a)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"{what}: expected square matrix, got an array of shape {a.shape}")
    dtype = _result_dtype(name)
    return _float(a, dtype), dtype


def slogdet(a, *, out: tuple[np.ndarray, np.ndarray] | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """``(sign, logabsdet)`` of a square matrix as 0-d arrays (or into ``out``, a pair of
    them), NumPy's ``slogdet``: the LU factors (``getrf``), the pivots' parity and the
    diagonal accumulated in NumPy's order; a singular matrix gives ``(0, -inf)``, an empty
    one ``(1, 0)``."""
    a, dtype = _square(a, "slogdet")
    n = a.shape[0]
    pair = record.workspace((2,), dtype)
    if not _ships("slogdet", dtype):
        record.opaque("numpy")
        pair[...] = np.linalg.slogdet(a)
    else:
        flags = record.literal(np.array(0, FLAGS_DTYPE))
        lu = record.workspace((n, n), dtype, order="F")
        pivots = record.workspace((n,), "int32")
        _run("slogdet", dtype, [a, flags, lu, pivots, pair])
    sign, logdet = (None, None) if out is None else out
    return (elemwise("identity", pair[0:1].reshape(()), out=sign),
            elemwise("identity", pair[1:2].reshape(()), out=logdet))


def det(a, *, out: np.ndarray | None = None) -> np.ndarray:
    """The determinant as a 0-d array, NumPy's ``det``: ``sign * exp(logabsdet)`` of
    ``slogdet``, as NumPy computes it."""
    a, dtype = _square(a, "det")
    sign, logdet = slogdet(a, out=(record.workspace((), dtype), record.workspace((), dtype)))
    return elemwise("mul", sign, elemwise("exp", logdet, out=logdet), out=out)


def inv(a, *, on_error: str = "raise", out: np.ndarray | None = None) -> np.ndarray:
    """The inverse of a square matrix, NumPy's ``inv``: ``gesv`` of the identity, i.e. LU
    factors (``getrf``) and their solve (``getrs``), as ``solve`` does. An exactly singular
    matrix raises ``LinAlgError`` (or gives NaN with ``on_error="nan"``)."""
    a, dtype = _square(a, "inv")
    n = a.shape[0]
    return solve(a, record.literal(np.eye(n, dtype=dtype)), on_error=on_error,
                 check_finite=False, out=out)


def is_positive_definite(a, *, lower: bool = False) -> np.ndarray:
    """Whether ``scipy.linalg.cholesky(a, lower=lower)`` succeeds, as a 0-d bool array
    (PyMC's ``PosDefMatrix``): the triangle it reads (upper by default) has a Cholesky
    factor (``potrf``). A NaN or infinite element raises ``ValueError``, as SciPy's
    ``check_finite`` does."""
    a, dtype = _square(a, "is_positive_definite")
    n = a.shape[0]
    out = record.workspace((), dtype)
    if not _ships("posdef", dtype):
        record.opaque("numpy")
        _check_finite(a)
        try:
            np.linalg.cholesky(np.tril(a) + np.tril(a, -1).T if lower
                               else np.triu(a) + np.triu(a, 1).T)
            out[...] = 1
        except np.linalg.LinAlgError:
            out[...] = 0
    else:
        flags = record.literal(np.array(LOWER if lower else 0, FLAGS_DTYPE))
        work = record.workspace((n, n), dtype, order="F")
        _run("posdef", dtype, [_lapack_ready(a), flags, work, out], ValueError)
    return elemwise("neq", out, record.literal(np.zeros((), dtype)))
