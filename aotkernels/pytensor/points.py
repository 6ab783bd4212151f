"""Advanced index tuples as points: one integer vector per dimension of the indexed array.

The ``index`` kernels ``take_points``, ``inc_points`` and ``put_points`` address single
elements, ``x[i0, i1, ...]``, one index vector per dimension. An advanced index that mixes
integer arrays with slices, like PyMC's ``LKJCholeskyCov`` setting a diagonal with
``x[:, i, j] = y``, selects the same kind of set: each slice is the range it walks, laid
along its own axis of the result. NumPy's layout decides those axes (the arrays' broadcast
axes where the arrays stand if they are adjacent, else first; the slices' axes in order),
so broadcasting every piece to the result's shape and flattening gives the points in the
result's C order, and ``y`` broadcast to that shape and flattened is their values.

Constant index arrays and slices are flattened once per shape of ``x`` and passed as
literals (fixed memory in plans); index arrays computed by the graph are flattened by a copy
kernel into recorded scratch where a view cannot do, so the node stays a planned step.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pytensor.graph.basic import Constant

from aotkernels import record
from aotkernels.assemble import copy_into
from aotkernels.families.index import INDEX_INPUTS

#: one entry per indexed dimension: ``int`` (position of an index array among the node's
#: index inputs) or a ``slice`` of Python ints
Entries = tuple


def entries(op, indices) -> Entries | None:
    """The node's index tuple as ``Entries``: integer arrays of the index dtypes served and
    constant slices (``None`` if anything else: a boolean mask, ``newaxis``, a slice bound
    computed by the graph); at least one array and at most one entry per dimension."""
    idx_list = getattr(op, "idx_list", None)  # PyTensor 3: slices and input positions
    if idx_list is None:  # PyTensor 2: every entry is an input, slices as SliceConstant
        out = []
        for k, v in enumerate(indices):
            if isinstance(getattr(v, "data", None), slice):
                out.append(v.data)
            elif getattr(v.type, "dtype", None) in INDEX_INPUTS:
                out.append(k)
            else:
                return None
        out = tuple(out)
    else:
        out = []
        for e in idx_list:
            if isinstance(e, slice):
                bounds = [None if b is None else _constant_int(indices[b])
                          for b in (e.start, e.stop, e.step)]
                if any(b is False for b in bounds):
                    return None
                out.append(slice(*bounds))
            elif isinstance(e, int) and getattr(indices[e].type, "dtype", None) in INDEX_INPUTS:
                out.append(e)
            else:
                return None
        out = tuple(out)
    if not any(isinstance(e, int) for e in out):
        return None
    return out


def _constant_int(v):
    """The Python int of a constant scalar input, or False."""
    if isinstance(v, Constant) and np.ndim(v.data) == 0 and np.asarray(v.data).dtype.kind in "iu":
        return int(v.data)
    return False


def _layout(entries: Entries, arrays: list, shape: tuple, dtype) -> tuple[tuple, list]:
    """The result's shape and, per dimension of ``x``, its index piece shaped to broadcast
    to it (NumPy's rule for where the arrays' broadcast axes go): a view of the index array,
    or for a slice the range it walks (a recorded literal of ``dtype``)."""
    dims = list(entries) + [slice(None)] * (len(shape) - len(entries))
    at = [d for d, e in enumerate(dims) if not isinstance(e, slice)]
    b = np.broadcast_shapes(*(np.shape(a) for a in arrays))
    adjacent = at == list(range(at[0], at[-1] + 1))
    first = at[0] if adjacent else 0  # result axis where the broadcast axes start
    ranges = {d: range(*e.indices(shape[d])) for d, e in enumerate(dims)
              if isinstance(e, slice)}
    axis_of = {d: pos if adjacent and d < first else pos + len(b)
               for pos, d in enumerate(sorted(ranges))}  # slices before the block stay
    result = [0] * (len(ranges) + len(b))
    for d, axis in axis_of.items():
        result[axis] = len(ranges[d])
    result[first:first + len(b)] = b
    pieces = []
    for d in range(len(dims)):
        if d in ranges:
            piece = [1] * len(result)
            piece[axis_of[d]] = len(ranges[d])
            pieces.append(record.literal(np.arange(ranges[d].start, ranges[d].stop,
                                                   ranges[d].step, dtype).reshape(piece)))
        else:
            a = arrays[at.index(d)]
            a = a if a.dtype == dtype else record.astype(a, dtype)
            pieces.append(a.reshape((1,) * (first + len(b) - a.ndim) + a.shape
                                    + (1,) * (len(result) - first - len(b))))
    return tuple(result), pieces


def flat(a: np.ndarray, shape: tuple) -> np.ndarray:
    """``a`` broadcast to ``shape`` as a vector in C order: a view where one exists, else
    copied by the identity kernel into recorded scratch (a plan can replay it)."""
    b = np.broadcast_to(a, shape)
    if b.flags.c_contiguous:
        return b.reshape(-1)
    if b.size == 0:
        return np.empty(0, b.dtype)
    return copy_into(b, record.scratch(shape, b.dtype)).reshape(-1)


def _index_dtype(arrays: list) -> np.dtype:
    dtypes = {np.asarray(a).dtype for a in arrays}
    return dtypes.pop() if len(dtypes) == 1 else np.dtype("int64")


def points_of(entries: Entries, indices) -> Callable:
    """``points(x shape, index values) -> (result shape, index vectors)``. Constant index
    arrays are flattened once per shape of ``x`` and handed out as literals."""
    positions = [e for e in entries if isinstance(e, int)]

    def computed(shape, values):
        arrays = [np.asarray(values[k]) for k in positions]
        result, pieces = _layout(entries, arrays, shape, _index_dtype(arrays))
        return result, [flat(p, result) for p in pieces]

    if not all(isinstance(indices[k], Constant) for k in positions):
        return computed
    arrays = [np.asarray(indices[k].data) for k in positions]
    dtype = _index_dtype(arrays)
    cache: dict = {}

    def constant(shape, _values):
        if shape not in cache:
            with record.paused():
                result, pieces = _layout(entries, arrays, shape, dtype)
            cache[shape] = result, [np.array(np.broadcast_to(p, result).reshape(-1))
                                    for p in pieces]  # own memory: a constant's is an input
        result, vectors = cache[shape]
        return result, [record.literal(v) for v in vectors]
    return constant
