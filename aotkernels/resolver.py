"""Map a request (op, operands) to a kernel, check everything the kernel relies on, call it.

Type resolution is separate from the loops, as in NumPy's ufuncs: the op table gives the
output and compute dtypes; the kernel is looked up by exact input dtypes first, then with
inputs cast to their compute dtypes (same arithmetic, one cheap conversion, e.g. the int8
constant in ``x * 2``), and only then JIT-compiled. Nothing reaches a raw pointer before
dtype, shape, broadcast, writeability, alignment and overlap have been checked here.
"""

from __future__ import annotations

import ctypes
import operator

import numpy as np

from aotkernels import jit, record
from aotkernels.kernels.reductions import REDUCTIONS, start_value
from aotkernels.kernels.scalar_ops import SCALAR_OPS, ScalarOp
from aotkernels.layout import broadcast_strides, collapse, is_flat
from aotkernels.library import default_library
from aotkernels.signature import CODES, Signature

#: Highest rank the catalog ships ``nd`` kernels for; higher collapsed ranks are JIT-compiled.
MAX_NDIM = 4


class KernelError(RuntimeError):
    """A kernel reported a failure it has no more specific exception for."""


#: native dtype -> name; ``dtype.name`` is a slow Python property, this lookup is a hash
_NAMES = {np.dtype(n): n for n in CODES}


def _operand(x) -> tuple[np.ndarray, str]:
    a = np.asarray(x)
    name = _NAMES.get(a.dtype)
    if name is None or not a.flags.aligned:
        native = a.dtype.newbyteorder("=")
        name = _NAMES.get(native)
        if name is None:
            raise TypeError(f"unsupported dtype {a.dtype} (supported: {', '.join(CODES)})")
        a = a.astype(native, order="C")  # not ascontiguousarray: it makes rank 0 rank 1
    return a, name


_types_cache: dict = {}


def _types(sop: ScalarOp, ins: tuple[str, ...], dtype) -> tuple[str, tuple]:
    key = (sop.name, ins, dtype)
    res = _types_cache.get(key)
    if res is None:
        res = sop.types(ins, None if dtype is None else np.dtype(dtype).name)
        _types_cache[key] = res
    return res


def _check_out(out, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array, not {type(out).__name__}")
    if _NAMES.get(out.dtype) != dtype:
        raise TypeError(f"out has dtype {out.dtype}, the result is {dtype}")
    if out.shape != shape:
        raise ValueError(f"out has shape {out.shape}, the broadcast result {shape}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    if not out.flags.aligned:
        raise ValueError("out is not aligned")
    return out


def _unalias(a: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Copy an input that overlaps ``out`` unless it is exactly ``out`` (in-place is safe)."""
    if not np.may_share_memory(a, out):
        return a
    same = (a.ctypes.data == out.ctypes.data and a.dtype.itemsize == out.dtype.itemsize
            and broadcast_strides(a, out.shape) == out.strides)
    return a if same else a.copy()


class _Call:
    """One resolved geometry: the kernel's view of the operands."""

    __slots__ = ("shape", "strides", "flat", "family")

    def __init__(self, arrays: list[np.ndarray], out: np.ndarray):
        strides = [broadcast_strides(a, out.shape) for a in arrays] + [out.strides]
        self.shape, self.strides = collapse(out.shape, strides)
        sizes = [a.dtype.itemsize for a in arrays] + [out.dtype.itemsize]
        self.flat = is_flat(self.shape, self.strides, sizes)
        self.family = "elemwise"

    @classmethod
    def reduction(cls, a: np.ndarray, acc: np.ndarray) -> _Call:
        """Input and accumulator, the latter broadcast (stride 0) along the reduced axes."""
        call = cls.__new__(cls)
        call.shape, call.strides = collapse(a.shape, [a.strides,
                                                      broadcast_strides(acc, a.shape)])
        call.flat, call.family = False, "reduce"
        return call

    @classmethod
    def along(cls, shape: tuple[int, ...], strides: list[tuple[int, ...]]) -> _Call:
        """An already collapsed geometry for the ``axis`` family (the op's axis last)."""
        call = cls.__new__(cls)
        call.shape, call.strides, call.flat, call.family = shape, strides, False, "axis"
        return call

    def exact(self, op: str, ins: tuple[str, ...], out: str) -> Signature:
        """The signature that fits this geometry without padding (what JIT compiles)."""
        if self.flat:
            return Signature(self.family, op, ins, out, "flat", 1)
        return Signature(self.family, op, ins, out, "nd", len(self.shape))

    def candidates(self, op: str, ins: tuple[str, ...], out: str):
        """Shipped kernels that fit, best first; ``nd`` kernels of higher rank also fit."""
        if self.flat:
            yield Signature(self.family, op, ins, out, "flat", 1)
        for nd in range(len(self.shape), MAX_NDIM + 1):
            yield Signature(self.family, op, ins, out, "nd", nd)

    def geometry(self, sig: Signature):
        """The kernel's shapes and strides arrays, padded to ``sig``'s rank with size-1 dims."""
        n = len(self.strides)
        pad = sig.ndim - len(self.shape)
        shapes = (ctypes.c_int64 * (n * sig.ndim))(*(((1,) * pad + self.shape) * n))
        strides = (ctypes.c_int64 * (n * sig.ndim))(
            *[s for st in self.strides for s in (0,) * pad + st])
        return shapes, strides

    def args(self, sig: Signature, arrays: list[np.ndarray], out: np.ndarray):
        """All three kernel arguments for these operands."""
        data = (ctypes.c_void_p * (len(arrays) + 1))(*[a.ctypes.data for a in arrays],
                                                     out.ctypes.data)
        return (data, *self.geometry(sig))


def _find(call: _Call, op: str, ins: tuple[str, ...], out: str):
    """The best shipped kernel for this geometry, memoised per (op, dtypes, layout, rank)."""
    lib = default_library()
    if lib is None:
        return None, None
    key = (call.family, op, ins, out, call.flat, len(call.shape))
    hit = lib.choices.get(key)
    if hit is None:
        hit = None, None
        for sig in call.candidates(op, ins, out):
            fn = lib.function(sig.key)
            if fn is not None:
                hit = sig, fn
                break
        lib.choices[key] = hit
    return hit


def _raise_status(sop: ScalarOp | None, sig: Signature, status: int):
    if status == 1 and sop is not None and sop.raises:
        exc, msg = sop.raises
        raise exc(msg)
    raise KernelError(f"kernel {sig.key} failed with status {status}")


class Prepared:
    """A resolved call for operands of one geometry (shapes, strides, dtypes).

    Reusable as long as the operands keep that geometry: ``run`` then only passes the new
    data pointers. The PyTensor thunks keep one per node.
    """

    __slots__ = ("sop", "sig", "fn", "source", "casts", "shapes", "strides", "n")

    def __init__(self, sop, sig, fn, source, casts, call: _Call):
        self.sop, self.sig, self.fn, self.source, self.casts = sop, sig, fn, source, casts
        self.n = len(call.strides)
        self.shapes, self.strides = call.geometry(sig)

    def run(self, arrays: list[np.ndarray], out: np.ndarray) -> None:
        """Call the kernel; ``arrays`` and ``out`` must have the geometry it was prepared for."""
        if self.casts:
            arrays = [a if c is None else record.astype(a, c) for a, c in zip(arrays, self.casts)]
        data = (ctypes.c_void_p * self.n)(*[a.ctypes.data for a in arrays], out.ctypes.data)
        status = self.fn(data, self.shapes, self.strides)
        if status:
            _raise_status(self.sop, self.sig, status)
        record.kernel(self.fn, self.sig, self.sop, [*arrays, out], self.shapes, self.strides)


def prepare(op: str, *inputs, out: np.ndarray | None = None, dtype=None):
    """Validate and resolve a call: ``(Prepared or None if empty, operand arrays, out)``.

    The operand arrays are the inputs as the kernel reads them (native byte order, aligned,
    copied where they overlap ``out``); ``out`` is allocated if not given.
    """
    sop = SCALAR_OPS.get(op)
    if sop is None:
        raise ValueError(f"unknown elementwise op {op!r}")
    arrays, ins = zip(*[_operand(x) for x in inputs]) if inputs else ((), ())
    arrays = list(arrays)
    out_dtype, compute = _types(sop, ins, dtype)
    if out_dtype not in CODES:
        raise TypeError(f"unsupported result dtype {out_dtype} (supported: {', '.join(CODES)})")
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    if out is None:
        out = np.empty(shape, out_dtype)
    else:
        out = _check_out(out, shape, out_dtype)
        arrays = [_unalias(a, out) for a in arrays]
    if out.size == 0:
        return None, arrays, out
    call = _Call(arrays, out)
    sig, fn = _find(call, op, ins, out_dtype)
    if sig is not None:
        return Prepared(sop, sig, fn, "aot", None, call), arrays, out
    cast_ins = tuple(c or d for c, d in zip(compute, ins))
    if cast_ins != ins:
        cast_arrays = [a if d == c else a.astype(c) for a, d, c in zip(arrays, ins, cast_ins)]
        cast_call = _Call(cast_arrays, out)
        sig, fn = _find(cast_call, op, cast_ins, out_dtype)
        if sig is not None:
            casts = [None if d == c else c for d, c in zip(ins, cast_ins)]
            return Prepared(sop, sig, fn, "aot", casts, cast_call), arrays, out
    sig = call.exact(op, ins, out_dtype)
    return Prepared(sop, sig, jit.function(sig), "jit", None, call), arrays, out


def elemwise(op: str, *inputs, out: np.ndarray | None = None,
             dtype=None) -> np.ndarray:
    """Apply the elementwise ``op`` (a name from ``SCALAR_OPS``) with PyTensor's semantics.

    Inputs broadcast like NumPy; ``out`` (optional) receives the result and must have the
    broadcast shape and the result dtype. ``dtype`` is the target of ``cast``.
    """
    if out is not None and _self_overlapping(out):  # as NumPy: compute, then copy back
        if not out.flags.writeable or not out.flags.aligned:
            raise ValueError("out is read-only" if not out.flags.writeable
                             else "out is not aligned")
        np.copyto(out, elemwise(op, *inputs, out=np.empty(out.shape, out.dtype), dtype=dtype))
        return out
    prepared, arrays, out = prepare(op, *inputs, out=out, dtype=dtype)
    if prepared is not None:
        prepared.run(arrays, out)
    return out


def _self_overlapping(a) -> bool:
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
    a, _ = _operand(x)
    if a.dtype == np.dtype(dtype).newbyteorder("="):  # no kernel: a copy is the conversion
        if out is None:
            return a.copy()
        np.copyto(_check_out(out, a.shape, a.dtype.name), a)
        return out
    return elemwise("cast", a, out=out, dtype=dtype)


def _axes(axis, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    norm = []
    for ax in axes:
        if isinstance(ax, (bool, np.bool_)):
            raise TypeError(f"axis must be an integer, not {type(ax).__name__}")
        ax = operator.index(ax)  # a float axis is a TypeError, as in NumPy
        if not -ndim <= ax < ndim:
            raise ValueError(f"axis {ax} is out of bounds for an array of dimension {ndim}")
        norm.append(int(ax) % ndim)
    if len(set(norm)) != len(norm):
        raise ValueError(f"repeated axis in {axis}")
    return tuple(sorted(norm))


def _prepare_reduce(op: str, x, axis):
    """Validate a reduction: (reduction, input, axes, accumulator, geometry or None if empty)."""
    red = REDUCTIONS.get(op)
    if red is None:
        raise ValueError(f"unknown reduction {op!r} (known: {', '.join(REDUCTIONS)})")
    a, d = _operand(x)
    axes = _axes(axis, a.ndim)
    acc_dtype, _ = red.dtypes(d)
    kept = tuple(1 if i in axes else n for i, n in enumerate(a.shape))
    reduced = int(np.prod([a.shape[i] for i in axes]))
    if red.identity is None and reduced == 0:  # even if the result is empty, as PyTensor
        raise ValueError(f"zero-size array to reduction operation {op} which has no identity")
    acc = record.full(kept, start_value(op, acc_dtype), acc_dtype)
    return red, a, axes, acc, (_Call.reduction(a, acc) if a.size else None)


def _reduce_kernel(call: _Call, op: str, d: str, acc_dtype: str):
    sig, fn = _find(call, op, (d,), acc_dtype)
    if sig is not None:
        return sig, fn, "aot"
    sig = call.exact(op, (d,), acc_dtype)
    return sig, jit.function(sig), "jit"


def resolve_reduce(op: str, x, axis=None) -> tuple[Signature | None, str | None]:
    """Which kernel ``reduce`` would run and from where; (None, None) for an empty input."""
    _, a, _, acc, call = _prepare_reduce(op, x, axis)
    if call is None:
        return None, None
    sig, _, source = _reduce_kernel(call, op, a.dtype.name, acc.dtype.name)
    return sig, source


def reduce(op: str, x, axis=None, keepdims: bool = False) -> np.ndarray:
    """PyTensor's CAReduce: ``op`` in sum, prod, max, min, all, any over ``axis`` (None: all).

    Accumulator and result dtypes follow PyTensor (int8 sums accumulate and return int64,
    float32 sums accumulate in float64 and return float32); max/min over an empty axis raise
    ``ValueError`` as PyTensor does.
    """
    red, a, axes, acc, call = _prepare_reduce(op, x, axis)
    out_dtype = red.dtypes(a.dtype.name)[1]
    if call is not None:
        sig, fn, _ = _reduce_kernel(call, op, a.dtype.name, acc.dtype.name)
        shapes, strides = call.geometry(sig)
        status = fn((ctypes.c_void_p * 2)(a.ctypes.data, acc.ctypes.data), shapes, strides)
        if status:
            _raise_status(None, sig, status)
        record.kernel(fn, sig, None, [a, acc], shapes, strides, update=True)
    res = acc if keepdims else acc.reshape([n for i, n in enumerate(a.shape) if i not in axes])
    return res if out_dtype == acc.dtype.name else record.astype(res, out_dtype)
