"""Operand geometry: broadcast to the output shape, then collapse dimensions like NumPy.

The kernel sees every operand with the output's shape: a broadcast dimension has stride 0.
Size-1 dimensions are dropped and neighbours that are contiguous for *every* operand are
merged, so a C-contiguous 4-d add becomes one flat loop and a row-broadcast add a 2-d one.
"""

from __future__ import annotations

import numpy as np


def broadcast_strides(a: np.ndarray, shape: tuple[int, ...]) -> tuple[int, ...]:
    """``a``'s byte strides against ``shape`` (right-aligned, stride 0 where broadcast)."""
    pad = len(shape) - a.ndim
    return (0,) * pad + tuple(0 if n == 1 and s != 1 else st
                              for n, s, st in zip(a.shape, shape[pad:], a.strides))


def collapse(shape: tuple[int, ...], strides: list[tuple[int, ...]]):
    """Drop size-1 dims and merge neighbours contiguous for all operands.

    Returns ``(shape, strides)`` with at least one dimension.
    """
    keep = [d for d, n in enumerate(shape) if n != 1]
    out_shape = [shape[d] for d in keep]
    out_strides = [[st[d] for d in keep] for st in strides]
    d = len(out_shape) - 1
    while d > 0:
        inner = out_shape[d]
        if all(st[d - 1] == st[d] * inner for st in out_strides):
            out_shape[d - 1] *= inner
            del out_shape[d]
            for st in out_strides:
                del st[d - 1]  # the merged dim keeps the inner stride
        d -= 1
    if not out_shape:
        return (1,), [(0,) for _ in strides]
    return tuple(out_shape), [tuple(st) for st in out_strides]


def is_flat(shape: tuple[int, ...], strides: list[tuple[int, ...]], itemsizes) -> bool:
    """True if a collapsed geometry is one contiguous run for every operand."""
    if len(shape) != 1:
        return False
    if shape[0] == 1:
        return True
    return all(st[0] == size for st, size in zip(strides, itemsizes))
