"""Matrix products on the ``blas`` kernels: dot, gemv, gemm, batched matmul.

The kernels call the BLAS bound at load time (``blas_source``) and are never JIT-compiled
(their trampolines live in the library's C shim); when the library lacks one, or the
operands are not float64/float32, NumPy computes the product instead, the same answer
from the same BLAS. Operands BLAS cannot read in place (negative or zero strides, strides
that are not a multiple of the item size) are copied first, as NumPy does.
"""

from __future__ import annotations

import numpy as np

from aotkernels import call, record
from aotkernels.kernels.blas_ops import BLAS_DTYPES, BLAS_OPS


def _ships(op: str, dtype: str) -> bool:
    spec = BLAS_OPS[op]
    return dtype in BLAS_DTYPES and call.ships("blas", op, (dtype,) * spec.nin, dtype, spec.ndim)


def _blas_ready(a: np.ndarray) -> np.ndarray:
    """``a`` itself if BLAS can read it (a unit stride, positive strides), else a copy."""
    size = a.dtype.itemsize
    dims = [(n, s) for n, s in zip(a.shape, a.strides) if n > 1]
    if a.size == 0 or not dims:
        return a
    if all(s > 0 and s % size == 0 for _, s in dims) and any(s == size for _, s in dims):
        return a
    return record.convert(a, np.ascontiguousarray(a))


def _run(op: str, dtype: str, operands: list[np.ndarray], update: bool = False) -> None:
    """The op's shipped kernel on ``operands`` (checked by ``_ships`` beforehand)."""
    spec = BLAS_OPS[op]
    geometry = call.Geometry.operands(operands, spec.ndim)
    call.shipped("blas", op, (dtype,) * spec.nin, dtype, geometry, update=update).run(operands)


def _unalias(inputs: list[np.ndarray], out: np.ndarray) -> list[np.ndarray]:
    """BLAS needs outputs that overlap no input (``beta * y`` reads ``out`` itself)."""
    return [record.copy(a) if np.may_share_memory(a, out) else a for a in inputs]


def _floats(*xs) -> tuple[list[np.ndarray], str]:
    """Operands in their common dtype (PyTensor upcasts products' inputs the same way)."""
    arrays, dtypes = zip(*[call.operand(x) for x in xs])
    if len(set(dtypes)) == 1:
        return list(arrays), dtypes[0]
    dtype = np.result_type(*arrays).name
    return [a if a.dtype.name == dtype else record.astype(a, dtype) for a in arrays], dtype


def gemm(alpha, a, b, beta, c: np.ndarray) -> np.ndarray:
    """``c = alpha * a @ b + beta * c`` in place (``c`` is returned); ``beta == 0``
    ignores what ``c`` held, NaN included, as BLAS does."""
    (a, b), dtype = _floats(a, b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"gemm needs (m, k) @ (k, n), got {a.shape} @ {b.shape}")
    c = call.check_out(c, (a.shape[0], b.shape[1]), dtype)
    return _product("gemm", alpha, a, b, beta, c, dtype)


def _product(op: str, alpha, a, b, beta, out: np.ndarray, dtype: str) -> np.ndarray:
    """``out = alpha * a @ b + beta * out`` on the op's kernel (gemm, gemv), else NumPy."""
    if not _ships(op, dtype):
        record.opaque("numpy")
        prod = np.dot(a, b) * alpha
        out[...] = prod if beta == 0 else prod + beta * out
        return out
    a, b = _unalias([_blas_ready(a), _blas_ready(b)], out)
    # BLAS reads ``out`` unless beta is a literal 0 (a runtime beta may be anything)
    update = not (type(beta) in (int, float) and beta == 0)
    _run(op, dtype, [a, b, _scalar(alpha, dtype), _scalar(beta, dtype), out], update)
    return out


def _scalar(v, dtype: str) -> np.ndarray:
    """``v`` as the 0-d array the kernel reads: the caller's own array when it already is one
    (a plan then reads the live value), a recorded conversion or literal otherwise."""
    if isinstance(v, np.ndarray):
        return v if v.ndim == 0 and v.dtype == dtype else record.astype(v, dtype)
    a = np.array(v, dtype)
    return record.literal(a) if type(v) in (int, float) else a


def gemv(alpha, a, x, beta, y: np.ndarray) -> np.ndarray:
    """``y = alpha * a @ x + beta * y`` in place (``y`` is returned)."""
    (a, x), dtype = _floats(a, x)
    if a.ndim != 2 or x.ndim != 1 or a.shape[1] != x.shape[0]:
        raise ValueError(f"gemv needs (m, n) @ (n,), got {a.shape} @ {x.shape}")
    return _product("gemv", alpha, a, x, beta, call.check_out(y, (a.shape[0],), dtype), dtype)


def dot(a, b, out: np.ndarray | None = None) -> np.ndarray:
    """``numpy.dot`` for 1-D and 2-D operands (PyTensor's ``Dot``), on BLAS kernels."""
    (a, b), dtype = _floats(a, b)
    if a.ndim not in (1, 2) or b.ndim not in (1, 2) or dtype not in BLAS_DTYPES:
        record.opaque("numpy")
        return np.asarray(np.dot(a, b, out=out))
    if a.shape[-1] != b.shape[0]:
        raise ValueError(f"shapes {a.shape} and {b.shape} not aligned")
    shape = a.shape[:-1] + b.shape[1:]
    out = np.empty(shape, dtype) if out is None else call.check_out(out, shape, dtype)
    if a.ndim == 2 and b.ndim == 2:
        return _product("gemm", 1.0, a, b, 0.0, out, dtype)
    if a.ndim == 2:
        return _product("gemv", 1.0, a, b, 0.0, out, dtype)
    if b.ndim == 2:  # x @ B is B' x
        return _product("gemv", 1.0, b.T, a, 0.0, out, dtype)
    if not _ships("dot", dtype):
        record.opaque("numpy")
        out[()] = np.dot(a, b)
        return out
    _run("dot", dtype, [_blas_ready(a), _blas_ready(b), out])
    return out


def matmul(a, b) -> np.ndarray:
    """Batched ``a[i] @ b[i]`` for 3-D operands (batch dimensions broadcast)."""
    (a, b), dtype = _floats(a, b)
    if a.ndim != 3 or b.ndim != 3 or a.shape[2] != b.shape[1]:
        raise ValueError(f"matmul needs (b, m, k) @ (b, k, n), got {a.shape} @ {b.shape}")
    batch = np.broadcast_shapes(a.shape[:1], b.shape[:1])
    out = np.empty((*batch, a.shape[1], b.shape[2]), dtype)
    if out.size == 0:
        return out
    if not _ships("matmul", dtype):
        record.opaque("numpy")
        return np.matmul(a, b, out=out)
    a = np.broadcast_to(a, (*batch, *a.shape[1:]))
    b = np.broadcast_to(b, (*batch, *b.shape[1:]))
    _run("matmul", dtype, [_blas_ready_batched(a), _blas_ready_batched(b), out])
    return out


def _blas_ready_batched(a: np.ndarray) -> np.ndarray:
    """Each matrix BLAS-readable; the batch stride may be anything (0 when broadcast)."""
    return a if _blas_ready(a[0]) is a[0] else np.ascontiguousarray(a)
