"""PyTensor's CAReduce on the ``reduce`` kernels: ``reduce`` and ``resolve_reduce``.

The accumulator, pre-filled with the reduction's identity, is seen by the kernel with
stride 0 along the reduced axes (``kernels/reductions.py``), so one kernel per (op, dtype,
rank) serves every axis set.
"""

from __future__ import annotations

import numpy as np

from aotkernels import call, record
from aotkernels.kernels.reductions import REDUCTIONS, start_value
from aotkernels.signature import Signature


def prepare(op: str, x, axis=None):
    """Validate a reduction: ``(Prepared or None if empty, input, axes, accumulator)``.

    Run it with ``prepared.run([x, acc])``; the result is ``acc`` cast to the result dtype.
    """
    red = REDUCTIONS.get(op)
    if red is None:
        raise ValueError(f"unknown reduction {op!r} (known: {', '.join(REDUCTIONS)})")
    a, d = call.operand(x)
    reduced_axes = call.axes(axis, a.ndim)
    acc_dtype, _ = red.dtypes(d)
    kept = tuple(1 if i in reduced_axes else n for i, n in enumerate(a.shape))
    reduced = int(np.prod([a.shape[i] for i in reduced_axes]))
    if red.identity is None and reduced == 0:  # even if the result is empty, as PyTensor
        raise ValueError(f"zero-size array to reduction operation {op} which has no identity")
    acc = record.full(kept, start_value(op, acc_dtype), acc_dtype)
    if a.size == 0:
        return None, a, reduced_axes, acc
    prepared = call.prepare("reduce", op, (d,), acc_dtype, call.Geometry.reduction(a, acc),
                            update=True)
    return prepared, a, reduced_axes, acc


def resolve_reduce(op: str, x, axis=None) -> tuple[Signature | None, str | None]:
    """Which kernel ``reduce`` would run and from where; (None, None) for an empty input."""
    with record.paused():  # resolving fills an accumulator of its own
        prepared, *_ = prepare(op, x, axis)
    return (prepared.sig, prepared.source) if prepared else (None, None)


def reduce(op: str, x, axis=None, keepdims: bool = False) -> np.ndarray:
    """PyTensor's CAReduce: ``op`` in sum, prod, max, min, all, any over ``axis`` (None: all).

    Accumulator and result dtypes follow PyTensor (int8 sums accumulate and return int64,
    float32 sums accumulate in float64 and return float32); max/min over an empty axis raise
    ``ValueError`` as PyTensor does.
    """
    prepared, a, reduced_axes, acc = prepare(op, x, axis)
    if prepared is not None:
        prepared.run([a, acc])
    out_dtype = REDUCTIONS[op].dtypes(a.dtype.name)[1]
    res = acc if keepdims else acc.reshape(
        [n for i, n in enumerate(a.shape) if i not in reduced_axes])
    return res if out_dtype == acc.dtype.name else record.astype(res, out_dtype)
