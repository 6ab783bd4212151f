"""Elementwise ops on the ``elemwise`` kernels: ``elemwise``, ``cast``, ``resolve``.

Type resolution is separate from the loops, as in NumPy's ufuncs: the op table
(``kernels/scalar_ops.py``) gives the output and compute dtypes; the kernel is looked up by
exact input dtypes first, then with inputs cast to their compute dtypes (same arithmetic,
one cheap conversion, e.g. the int8 constant in ``x * 2``), and only then JIT-compiled.
"""

from __future__ import annotations

import numpy as np

from aotkernels import call, special
from aotkernels.kernels.scalar_ops import SCALAR_OPS, ScalarOp
from aotkernels.layout import broadcast_strides
from aotkernels.library import default_library
from aotkernels.signature import CODES, Signature

_types_cache: dict = {}


def _types(sop: ScalarOp, ins: tuple[str, ...], dtype) -> tuple[str, tuple]:
    key = (sop.name, ins, dtype)
    res = _types_cache.get(key)
    if res is None:
        res = sop.types(ins, None if dtype is None else np.dtype(dtype).name)
        _types_cache[key] = res
    return res


def _errors(sop: ScalarOp) -> dict | None:
    """The op's failure (integer division by zero, a cast out of range) is status 1."""
    return {1: sop.raises} if sop.raises else None


def unalias(a: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Copy an input that overlaps ``out`` unless it is exactly ``out`` (in-place is safe)."""
    if not np.may_share_memory(a, out):
        return a
    same = (a.ctypes.data == out.ctypes.data and a.dtype.itemsize == out.dtype.itemsize
            and broadcast_strides(a, out.shape) == out.strides)
    return a if same else a.copy()


def prepare(op: str, *inputs, out: np.ndarray | None = None, dtype=None):
    """Validate and resolve a call: ``(Prepared or None if empty, operand arrays, out)``.

    The operand arrays are the inputs as the kernel reads them (native byte order, aligned,
    copied where they overlap ``out``); ``out`` is allocated if not given. Run it with
    ``prepared.run([*arrays, out])``.
    """
    sop = SCALAR_OPS.get(op)
    if sop is None:
        raise ValueError(f"unknown elementwise op {op!r}")
    if sop.scipy is not None:
        special.bind(default_library())
    arrays, ins = zip(*[call.operand(x) for x in inputs]) if inputs else ((), ())
    arrays = list(arrays)
    out_dtype, compute = _types(sop, ins, dtype)
    if out_dtype not in CODES:
        raise TypeError(f"unsupported result dtype {out_dtype} (supported: {', '.join(CODES)})")
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    if out is None:
        out = np.empty(shape, out_dtype)
    else:
        out = call.check_out(out, shape, out_dtype)
        arrays = [unalias(a, out) for a in arrays]
    if out.size == 0:
        return None, arrays, out
    geometry = call.Geometry.broadcast(arrays, out)
    found = call.shipped("elemwise", op, ins, out_dtype, geometry, errors=_errors(sop))
    if found is not None:
        return found, arrays, out
    cast_ins = tuple(c or d for c, d in zip(compute, ins))
    if cast_ins != ins:
        cast_arrays = [a if d == c else a.astype(c) for a, d, c in zip(arrays, ins, cast_ins)]
        casts = [None if d == c else c for d, c in zip(ins, cast_ins)]
        found = call.shipped("elemwise", op, cast_ins, out_dtype,
                             call.Geometry.broadcast(cast_arrays, out), errors=_errors(sop),
                             casts=casts)
        if found is not None:
            return found, arrays, out
    return call.prepare("elemwise", op, ins, out_dtype, geometry, errors=_errors(sop)), arrays, out


def elemwise(op: str, *inputs, out: np.ndarray | None = None,
             dtype=None) -> np.ndarray:
    """Apply the elementwise ``op`` (a name from ``SCALAR_OPS``) with PyTensor's semantics.

    Inputs broadcast like NumPy; ``out`` (optional) receives the result and must have the
    broadcast shape and the result dtype. ``dtype`` is the target of ``cast``.
    """
    if out is not None and self_overlapping(out):  # as NumPy: compute, then copy back
        if not out.flags.writeable or not out.flags.aligned:
            raise ValueError("out is read-only" if not out.flags.writeable
                             else "out is not aligned")
        np.copyto(out, elemwise(op, *inputs, out=np.empty(out.shape, out.dtype), dtype=dtype))
        return out
    prepared, arrays, out = prepare(op, *inputs, out=out, dtype=dtype)
    if prepared is not None:
        prepared.run([*arrays, out])
    return out


def self_overlapping(a) -> bool:
    """True unless ``a``'s elements provably occupy distinct bytes (stride 0, as_strided).

    Sorted by stride, each dimension must step over everything the inner ones span; views
    that interleave without overlapping fail this too and merely take the copying path.
    """
    if not isinstance(a, np.ndarray) or a.flags.c_contiguous or a.flags.f_contiguous:
        return False
    extent = a.itemsize
    for stride, n in sorted((abs(s), n) for s, n in zip(a.strides, a.shape) if n > 1):
        if stride < extent:
            return a.size > 0
        extent += stride * (n - 1)
    return False


def resolve(op: str, *inputs, out: np.ndarray | None = None,
            dtype=None) -> tuple[Signature | None, str | None]:
    """Which kernel ``elemwise`` would run, and from where ('aot' or 'jit'), without running it.

    (None, None) when the result is empty and no kernel runs.
    """
    prepared, _, _ = prepare(op, *inputs, out=out, dtype=dtype)
    return (prepared.sig, prepared.source) if prepared else (None, None)


def cast(x, dtype, out: np.ndarray | None = None) -> np.ndarray:
    """``x`` converted to ``dtype`` with PyTensor's (C) conversion rules.

    The result is in native byte order (``">f8"`` gives float64); a float that is NaN,
    infinite or out of range for an integer ``dtype`` raises ``CastError``.
    """
    a, _ = call.operand(x)
    if a.dtype == np.dtype(dtype).newbyteorder("="):  # no kernel: a copy is the conversion
        if out is None:
            return a.copy()
        np.copyto(call.check_out(out, a.shape, a.dtype.name), a)
        return out
    return elemwise("cast", a, out=out, dtype=dtype)
