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

import numpy as np

from aotkernels import call, record
from aotkernels.assemble import copy_into
from aotkernels.kernels.index_ops import INDEX_DTYPES, INDEX_OPS, OUT_OF_RANGE
from aotkernels.signature import MAX_NDIM


def _ships(op: str, data: str, index: str, ndim: int) -> bool:
    return (data in INDEX_OPS[op].dtypes and index in INDEX_DTYPES and 1 <= ndim <= MAX_NDIM
            and call.ships("index", op, (data, index), data, ndim))


def _run(op: str, ndim: int, operands: list[np.ndarray]) -> None:
    """The op's shipped kernel (checked by ``_ships``) on (data or values, *indices, out)."""
    data, index = operands[-1].dtype.name, operands[1].dtype.name
    errors = {OUT_OF_RANGE: (IndexError, f"{op}: an index is out of bounds")}
    call.shipped("index", op, (data, index), data, call.Geometry.operands(operands, ndim),
                 errors=errors, update=INDEX_OPS[op].update).run(operands)


#: index dtypes the kernels take (``INDEX_DTYPES``) and those converted to int64 first (a
#: recorded step: PyMC makes integer data int16 under ``floatX=float32``); uint64 is neither
#: (a value past int64 would wrap into a valid negative index where NumPy raises)
INDEX_INPUTS = (*INDEX_DTYPES, "int8", "int16", "uint8", "uint16", "uint32")


def _index(idx) -> np.ndarray:
    i = np.asarray(idx)
    if i.ndim != 1 or i.dtype.kind not in "iu":
        raise TypeError(f"indices must be a vector of integers, not {i.dtype} of rank {i.ndim}")
    i = call.operand(i)[0]
    return i if i.dtype.name not in INDEX_INPUTS[len(INDEX_DTYPES):] else record.astype(
        i, np.int64)


def take(x, idx) -> np.ndarray:
    """``x[idx]`` along axis 0 for an integer vector ``idx``."""
    a, data = call.operand(x)
    i = _index(idx)
    if a.ndim == 0:
        raise ValueError("take needs an array of rank >= 1")
    return _gather("take", a, data, [i], np.empty((i.shape[0], *a.shape[1:]), a.dtype))


def _gather(op: str, a: np.ndarray, data: str, idx: list, out: np.ndarray) -> np.ndarray:
    """take and take_points: the kernel, or NumPy where none serves."""
    if not _ships(op, data, idx[0].dtype.name, a.ndim) or out.size == 0 or a.size == 0:
        record.opaque("numpy")
        out[...] = a[idx[0] if len(idx) == 1 else tuple(idx)]
        return out
    _run(op, a.ndim, [a, *idx, out])
    return out


def inc(x, idx, y, inplace: bool = False) -> np.ndarray:
    """``x[idx] += y`` along axis 0, repeated indices accumulating (``np.add.at``)."""
    return _update("inc", x, idx, y, inplace)


def put(x, idx, y, inplace: bool = False) -> np.ndarray:
    """``x[idx] = y`` along axis 0 (for repeated indices the last write wins)."""
    return _update("put", x, idx, y, inplace)


def _update(op: str, x, idx, y, inplace: bool) -> np.ndarray:
    a, data = call.operand(x)
    i = _index(idx)
    if a.ndim == 0:
        raise ValueError(f"{op} needs an array of rank >= 1")
    v = np.broadcast_to(call.operand(y)[0], (i.shape[0], *a.shape[1:]))  # refuses a y that
    return _write(op, x, a, data, [i], v, inplace)                  # does not fit


def _write(op: str, x, a: np.ndarray, data: str, idx: list, v: np.ndarray,
           inplace: bool) -> np.ndarray:
    """inc/put and their points forms: into ``x`` itself when inplace, else into a copy made
    by the identity kernel; NumPy where no kernel serves."""
    ships = _ships(op, data, idx[0].dtype.name, a.ndim)
    if inplace and a is x and a.flags.writeable:
        out = a
    elif ships and a.size:
        out = copy_into(a, np.empty(a.shape, a.dtype))
    else:
        out = a.copy()
    if not ships or v.size == 0 or out.size == 0:
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
    _run(op, a.ndim, [v, *idx, out])
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
    a, data = call.operand(x)
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
    a, data = call.operand(x)
    idx = _points(indices, a.ndim)
    if a.ndim == 1:  # the points of a vector are its rows
        return _update(op.removesuffix("_points"), x, idx[0], y, inplace)
    v = np.broadcast_to(call.operand(y)[0], idx[0].shape)  # refuses y that does not fit
    return _write(op, x, a, data, idx, v, inplace)
