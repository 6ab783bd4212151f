"""Rows along axis 0 by an integer vector, on the ``index`` kernels: take, inc, put.

``take(x, idx)`` is ``x[idx]`` (PyTensor's ``AdvancedSubtensor1``); ``inc(x, idx, y)`` is
``x[idx] += y`` with repeated indices accumulating (``np.add.at``) and ``put(x, idx, y)`` is
``x[idx] = y`` (``AdvancedIncSubtensor1``), both returning a new array unless
``inplace``. ``take_points(x, (i0, i1))``, ``inc_points`` and ``put_points`` do the same for
single elements, one index vector per dimension (``x[i0, i1]``, PyTensor's
``AdvancedSubtensor``/``AdvancedIncSubtensor`` with vectors only). Indices count from the
end when negative; one out of range raises ``IndexError`` before anything is written.
Operands outside the catalog (other dtypes, rank above ``MAX_NDIM``) are computed by NumPy,
the same answer.
"""

from __future__ import annotations

import ctypes

import numpy as np

from aotkernels import record
from aotkernels.assemble import copy_into
from aotkernels.kernels.index_ops import INDEX_DTYPES, INDEX_OPS, OUT_OF_RANGE
from aotkernels.library import default_library
from aotkernels.resolver import MAX_NDIM, KernelError, _operand
from aotkernels.signature import Signature

#: where the last call of each op ran: "aot" or "numpy" (coverage reports read it)
last_source: dict[str, str] = {}


def _kernel(op: str, data: str, index: str, ndim: int):
    """(Signature, ctypes function) of the shipped kernel, or (None, None); memoised."""
    lib = default_library()
    if (lib is None or data not in INDEX_OPS[op].dtypes or index not in INDEX_DTYPES
            or not 1 <= ndim <= MAX_NDIM):
        return None, None
    key = ("index", op, data, index, ndim)
    hit = lib.choices.get(key)
    if hit is None:
        sig = Signature("index", op, (data, index), data, "nd", ndim)
        fn = lib.function(sig.key)
        hit = lib.choices[key] = (sig, fn) if fn is not None else (None, None)
    return hit


def _call(op: str, sig: Signature, fn, operands: list[np.ndarray]) -> None:
    shapes = (ctypes.c_int64 * sum(a.ndim for a in operands))(
        *[n for a in operands for n in a.shape])
    strides = (ctypes.c_int64 * len(shapes))(*[s for a in operands for s in a.strides])
    data = (ctypes.c_void_p * len(operands))(*[o.ctypes.data for o in operands])
    status = fn(data, shapes, strides)
    if status == OUT_OF_RANGE:
        raise IndexError(f"{op}: an index is out of bounds")
    if status:
        raise KernelError(f"kernel {sig.key} failed with status {status}")
    record.kernel(fn, sig, None, operands, shapes, strides, INDEX_OPS[op].update)


def _index(idx) -> np.ndarray:
    i = np.asarray(idx)
    if i.ndim != 1 or i.dtype.kind not in "iu":
        raise TypeError(f"indices must be a vector of integers, not {i.dtype} of rank {i.ndim}")
    return _operand(i)[0]


def take(x, idx) -> np.ndarray:
    """``x[idx]`` along axis 0 for an integer vector ``idx``."""
    a, data = _operand(x)
    i = _index(idx)
    if a.ndim == 0:
        raise ValueError("take needs an array of rank >= 1")
    return _gather("take", a, data, [i], np.empty((i.shape[0], *a.shape[1:]), a.dtype))


def _gather(op: str, a: np.ndarray, data: str, idx: list, out: np.ndarray) -> np.ndarray:
    """take and take_points: the kernel, or NumPy where none serves."""
    sig, fn = _kernel(op, data, idx[0].dtype.name, a.ndim)
    if fn is None or out.size == 0 or a.size == 0:
        last_source[op] = "numpy"
        record.opaque("numpy")
        out[...] = a[idx[0] if len(idx) == 1 else tuple(idx)]
        return out
    _call(op, sig, fn, [a, *idx, out])
    last_source[op] = "aot"
    return out


def inc(x, idx, y, inplace: bool = False) -> np.ndarray:
    """``x[idx] += y`` along axis 0, repeated indices accumulating (``np.add.at``)."""
    return _update("inc", x, idx, y, inplace)


def put(x, idx, y, inplace: bool = False) -> np.ndarray:
    """``x[idx] = y`` along axis 0 (for repeated indices the last write wins)."""
    return _update("put", x, idx, y, inplace)


def _update(op: str, x, idx, y, inplace: bool) -> np.ndarray:
    a, data = _operand(x)
    i = _index(idx)
    if a.ndim == 0:
        raise ValueError(f"{op} needs an array of rank >= 1")
    v = np.broadcast_to(_operand(y)[0], (i.shape[0], *a.shape[1:]))  # refuses a y that
    return _write(op, x, a, data, [i], v, inplace)                  # does not fit


def _write(op: str, x, a: np.ndarray, data: str, idx: list, v: np.ndarray,
           inplace: bool) -> np.ndarray:
    """inc/put and their points forms: into ``x`` itself when inplace, else into a copy made
    by the identity kernel; NumPy where no kernel serves."""
    sig, fn = _kernel(op, data, idx[0].dtype.name, a.ndim)
    if inplace and a is x and a.flags.writeable:
        out = a
    elif fn is not None and a.size:
        out = copy_into(a, np.empty(a.shape, a.dtype))
    else:
        out = a.copy()
    if fn is None or v.size == 0 or out.size == 0:
        last_source[op] = "numpy"
        record.opaque("numpy")
        where = idx[0] if len(idx) == 1 else tuple(idx)
        if op.startswith("inc"):
            np.add.at(out, where, v)
        else:
            out[where] = v
        return out
    if v.dtype != out.dtype:
        v = record.astype(v, out.dtype)  # PyTensor casts y to x's dtype
    elif np.may_share_memory(v, out):
        v = record.copy(v)
    _call(op, sig, fn, [v, *idx, out])
    last_source[op] = "aot"
    return out


def _points(indices, ndim: int) -> list[np.ndarray]:
    """One integer vector per dimension, broadcast together and of one dtype."""
    if len(indices) != ndim:
        raise ValueError(f"{len(indices)} index vectors for an array of rank {ndim}")
    idx = [_index(i) for i in indices]
    if len({i.dtype for i in idx}) > 1:
        idx = [i if i.dtype == np.int64 else record.astype(i, np.int64) for i in idx]
    return np.broadcast_arrays(*idx)  # views; refuses vectors that do not broadcast


def take_points(x, indices) -> np.ndarray:
    """``x[i0, i1, ...]`` for ``indices = (i0, i1, ...)``, one vector per dimension."""
    a, data = _operand(x)
    idx = _points(indices, a.ndim)
    if a.ndim == 1:
        return take(a, idx[0])
    return _gather("take_points", a, data, idx, np.empty(idx[0].shape, a.dtype))


def inc_points(x, indices, y, inplace: bool = False) -> np.ndarray:
    """``x[i0, i1, ...] += y``, repeated points accumulating (``np.add.at``)."""
    return _update_points("inc_points", x, indices, y, inplace)


def put_points(x, indices, y, inplace: bool = False) -> np.ndarray:
    """``x[i0, i1, ...] = y`` (for repeated points the last write wins)."""
    return _update_points("put_points", x, indices, y, inplace)


def _update_points(op: str, x, indices, y, inplace: bool) -> np.ndarray:
    a, data = _operand(x)
    idx = _points(indices, a.ndim)
    if a.ndim == 1:  # the points of a vector are its rows
        return _update(op.removesuffix("_points"), x, idx[0], y, inplace)
    v = np.broadcast_to(_operand(y)[0], idx[0].shape)  # refuses y that does not fit
    return _write(op, x, a, data, idx, v, inplace)
