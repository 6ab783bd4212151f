"""Ops along an axis on the ``axis`` kernels: argmax, softmax, cumsum, sort, argsort and
friends.

The op's axes are moved last (a transposed view, no copy) and, when there are several,
merged into one (NumPy copies only if the view cannot be reshaped); the other axes are
collapsed like elementwise operands. The kernel then walks rows. Results and empty-row
rules follow PyTensor (``kernels/axis_ops.py``).
"""

from __future__ import annotations

import numpy as np

from aotkernels import call, record
from aotkernels.kernels.axis_ops import AXIS_OPS
from aotkernels.layout import collapse


def _rows(arrays: list[np.ndarray], out_t: np.ndarray, reduces: bool) -> call.Geometry:
    """Geometry with the axis last: outer dims collapsed, the axis kept even if size 1."""
    n = arrays[0].shape[-1]
    out_axis = 0 if reduces else out_t.strides[-1]
    strides = [a.strides for a in arrays] + [(*out_t.strides[:-1], out_axis)]
    outer_shape = arrays[0].shape[:-1]
    shape: tuple[int, ...] = ()
    outer = [()] * len(strides)
    if any(s != 1 for s in outer_shape):
        shape, outer = collapse(outer_shape, [st[:-1] for st in strides])
    return call.Geometry((*shape, n), [(*o, st[-1]) for o, st in zip(outer, strides)])


def along(op: str, *inputs, axis=-1) -> np.ndarray:
    """Apply the ``axis`` op ``op`` along ``axis`` (an int, a tuple, or None for all axes).

    Reducing ops (argmax, argmin, logsumexp) drop the axes; the others keep the shape,
    except cumsum/cumprod/sort/argsort with ``axis=None``, which flatten first as NumPy does.
    """
    spec = AXIS_OPS.get(op)
    if spec is None:
        raise ValueError(f"unknown axis op {op!r} (known: {', '.join(AXIS_OPS)})")
    if len(inputs) != spec.nin:
        raise TypeError(f"{op} takes {spec.nin} operand(s), got {len(inputs)}")
    arrays, dtypes = zip(*[call.operand(x) for x in inputs])
    if len(set(dtypes)) != 1:
        raise TypeError(f"{op} operands must share a dtype, got {', '.join(dtypes)}")
    out_dtype = spec.out_dtype(dtypes[0])
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    arrays = [np.broadcast_to(a, shape) for a in arrays] if spec.nin > 1 else list(arrays)
    if op in ("cumsum", "cumprod", "sort", "argsort") and axis is None:
        arrays, shape, axis = [arrays[0].reshape(-1)], (arrays[0].size,), 0
    axes = call.axes(axis, len(shape))
    kept = tuple(d for d in range(len(shape)) if d not in axes)
    perm = (*kept, *axes)
    kept_shape = tuple(shape[d] for d in kept)
    n = int(np.prod([shape[d] for d in axes], dtype=np.int64))
    views = [a.transpose(perm).reshape(*kept_shape, n) for a in arrays]
    if spec.reduces:
        result = np.empty(kept_shape, out_dtype)
        out_t = result.reshape(*kept_shape, 1)
    elif len(axes) == 1:  # the result keeps the input's memory order
        result = np.empty_like(arrays[0], dtype=out_dtype)
        out_t = result.transpose(perm)
    else:
        out_t = np.empty((*kept_shape, n), out_dtype)
        result = out_t.reshape([shape[d] for d in perm]).transpose(np.argsort(perm))
    if n == 0 and spec.needs_max:
        raise ValueError(f"{op} of an empty sequence (its max has no identity)")
    if result.size == 0 or n == 0 and not spec.reduces:
        return result
    if n == 0:
        return record.full(result.shape, spec.empty, result.dtype)
    geometry = _rows(views, out_t, spec.reduces)  # above MAX_NDIM: JIT-compiled
    call.prepare("axis", op, dtypes, out_dtype, geometry).run([*views, out_t])
    return result


def argmax(x, axis=None) -> np.ndarray:
    """Index of the first maximum over ``axis`` (the axes' flattened index, int64)."""
    return along("argmax", x, axis=axis)


def argmin(x, axis=None) -> np.ndarray:
    return along("argmin", x, axis=axis)


def logsumexp(x, axis=None) -> np.ndarray:
    return along("logsumexp", x, axis=axis)


def softmax(x, axis=None) -> np.ndarray:
    return along("softmax", x, axis=axis)


def log_softmax(x, axis=None) -> np.ndarray:
    return along("log_softmax", x, axis=axis)


def softmax_grad(dy, sm, axis=None) -> np.ndarray:
    """Gradient of softmax given the output gradient ``dy`` and the softmax ``sm``."""
    return along("softmax_grad", dy, sm, axis=axis)


def cumsum(x, axis=None) -> np.ndarray:
    return along("cumsum", x, axis=axis)


def cumprod(x, axis=None) -> np.ndarray:
    return along("cumprod", x, axis=axis)


def sort(x, axis=-1) -> np.ndarray:
    """``np.sort(x, axis)`` (NaNs last; ``axis=None`` sorts the flattened array), with the
    order of equal values of ``kind="stable"`` (``kernels/axis.py``)."""
    return along("sort", x, axis=axis)


def argsort(x, axis=-1) -> np.ndarray:
    """``np.argsort(x, axis, kind="stable")`` (int64; NaNs last; ``axis=None`` for the
    flattened array): equal values keep their input order."""
    return along("argsort", x, axis=axis)
