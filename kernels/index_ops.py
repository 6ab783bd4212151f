"""The integer-index table: rows picked or updated by a vector of indices along axis 0.

``take`` is PyTensor's ``AdvancedSubtensor1`` (``x[idx]``, a gather), ``inc`` and ``put``
its ``AdvancedIncSubtensor1`` (``x[idx] += y`` with repeated indices accumulating, like
``np.add.at``, and ``x[idx] = y``). The ``*_points`` ops take one index vector per
dimension and address single elements, ``x[i0, i1]`` (``AdvancedSubtensor`` and
``AdvancedIncSubtensor`` with only vectors, as in ``p[arange(n), y]``). Hierarchical
models are made of them: ``a[county]`` in the log-density and its gradient, a scatter-add.
Indices may be negative (counted from the end); one out of range is an ``IndexError`` from
the kernel's status, never a wild read or write. Numba-free, like ``scalar_ops``.
"""

from __future__ import annotations

from dataclasses import dataclass

from aotkernels.kernels.scalar_ops import FLOATS
from aotkernels.signature import MAX_NDIM

#: index dtypes the catalog ships (PyTensor's ``x[idx]`` takes any integer vector)
INDEX_DTYPES = ("int64", "int32")


@dataclass(frozen=True)
class IndexOp:
    name: str
    nin: int  # operands before the output: take (x, idx); inc/put (y, idx), updating out
    dtypes: tuple[str, ...]  # data dtypes the catalog ships
    points: bool = False  # one index vector per dimension: single elements, not rows

    @property
    def update(self) -> bool:
        """The kernel reads its output (inc adds into it, put leaves unindexed rows)."""
        return not self.name.startswith("take")

    @property
    def ranks(self) -> range:
        """Ranks the catalog ships (points of a vector are ``take``'s rows)."""
        return range(2 if self.points else 1, MAX_NDIM + 1)


_DATA = (*FLOATS, "int64", "int32")

INDEX_OPS: dict[str, IndexOp] = {op.name: op for op in [
    IndexOp("take", 2, _DATA),
    IndexOp("inc", 2, _DATA),
    IndexOp("put", 2, _DATA),
    IndexOp("take_points", 2, _DATA, points=True),
    IndexOp("inc_points", 2, _DATA, points=True),
    IndexOp("put_points", 2, _DATA, points=True),
]}

#: kernel status of an index out of range
OUT_OF_RANGE = 1
