"""Arrays built from pieces by kernels writing into views: join (concatenate) and alloc.

Both are copies through the ``identity`` (or ``cast``) elementwise kernels into strided
views of one preallocated output, the destination passing NumPy's ``out=`` offers. The
same views let any elementwise op write its result straight into its slice of a join
(``slices``), so ``concatenate([f(x), g(y)])`` needs no intermediate buffers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aotkernels import call, record
from aotkernels.families.elemwise import elemwise

try:
    from numpy.lib.array_utils import normalize_axis_index
except ImportError:  # NumPy 1.x
    from numpy.core.multiarray import normalize_axis_index


def copy_into(a, dest: np.ndarray) -> np.ndarray:
    """``dest[...] = a`` on a kernel (``a`` broadcasts; converted to ``dest``'s dtype)."""
    a = np.broadcast_to(call.operand(a)[0], dest.shape)
    if a.dtype == dest.dtype:
        return elemwise("identity", a, out=dest)
    return elemwise("cast", a, out=dest, dtype=dest.dtype)


def slices(out: np.ndarray, axis: int, sizes: Sequence[int]) -> list[np.ndarray]:
    """Consecutive views of ``out`` along ``axis`` with the given sizes (the join's pieces)."""
    axis = normalize_axis_index(axis, out.ndim)
    if sum(sizes) != out.shape[axis]:
        raise ValueError(f"sizes {list(sizes)} do not add up to {out.shape[axis]}")
    views, start = [], 0
    for n in sizes:
        views.append(out[(slice(None),) * axis + (slice(start, start + n),)])
        start += n
    return views


def join(axis: int, *arrays, out: np.ndarray | None = None, dtype=None) -> np.ndarray:
    """PyTensor's ``Join``: ``np.concatenate`` in ``dtype`` (default: the pieces' upcast)."""
    if not arrays:
        raise ValueError("join needs at least one array")
    pieces = [call.operand(x)[0] for x in arrays]
    ndim = pieces[0].ndim
    if ndim == 0 or any(p.ndim != ndim for p in pieces):
        raise ValueError(f"join needs arrays of one rank >= 1, got ranks "
                         f"{[p.ndim for p in pieces]}")
    axis = normalize_axis_index(axis, ndim)
    rest = {p.shape[:axis] + p.shape[axis + 1:] for p in pieces}
    if len(rest) != 1:
        raise ValueError(f"join along axis {axis}: shapes {[p.shape for p in pieces]} differ "
                         "off that axis")
    sizes = [p.shape[axis] for p in pieces]
    shape = pieces[0].shape[:axis] + (sum(sizes),) + pieces[0].shape[axis + 1:]
    dtype = np.dtype(dtype or np.result_type(*pieces)).name
    out = np.empty(shape, dtype) if out is None else call.check_out(out, shape, dtype)
    for piece, dest in zip(pieces, slices(out, axis, sizes)):
        if piece.size:
            copy_into(piece, dest)
    return out


def alloc(value, shape: Sequence[int], dtype=None) -> np.ndarray:
    """PyTensor's ``Alloc``: ``value`` broadcast into a new array of ``shape``."""
    v = call.operand(value)[0]
    if dtype is not None and v.dtype != dtype:
        v = record.astype(v, dtype)  # convert the (small) value, then broadcast it with copies
    v = np.broadcast_to(v, tuple(shape))  # refuses a value that does not broadcast
    out = np.empty(v.shape, v.dtype)
    if out.size:
        copy_into(v, out)
    return out
