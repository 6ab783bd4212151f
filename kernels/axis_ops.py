"""The along-an-axis table: ops that read a whole row along one axis at a time.

argmax/argmin, logsumexp (a row gives one value), softmax, log_softmax, the softmax
gradient, cumsum/cumprod, sort and argsort (a row gives a row). The runtime moves the op's axis (or
axes, merged) last and collapses the others, so one kernel per (op, dtype, rank) serves
every axis, as for reductions. Semantics follow PyTensor: ``Argmax`` (first occurrence,
first NaN wins, int64 result), the inner graphs of ``Softmax``/``LogSoftmax`` and their
pullbacks (max-shifted, sums accumulated in float64 then cast), ``CumOp`` (result in the
input dtype), ``SortOp`` (``np.sort``: NaNs last, equal values in their input order) and
``ArgSortOp`` (``np.argsort(kind="stable")``: int64 indices, NaNs last, ties by index).
Numba-free, like ``scalar_ops``.
"""

from __future__ import annotations

from dataclasses import dataclass

from aotkernels.kernels.scalar_ops import DTYPES, FLOATS


@dataclass(frozen=True)
class AxisOp:
    name: str
    nin: int
    reduces: bool  # one value per row (the output has stride 0 along the axis)
    dtypes: tuple[str, ...]  # input dtypes the catalog ships
    result: str | None = None  # fixed result dtype; None: the input dtype
    empty: object = None  # result of an empty row for reducing ops; None: ValueError
    needs_max: bool = False  # takes a row's max: an empty row raises (PyTensor's max does)

    def out_dtype(self, in_dtype: str) -> str:
        if in_dtype not in self.dtypes:
            raise TypeError(f"{self.name} does not take {in_dtype}")
        return self.result or in_dtype


_NUMERIC = tuple(d for d in DTYPES if d != "bool")

AXIS_OPS: dict[str, AxisOp] = {op.name: op for op in [
    AxisOp("argmax", 1, True, DTYPES, "int64", needs_max=True),
    AxisOp("argmin", 1, True, DTYPES, "int64", needs_max=True),
    AxisOp("logsumexp", 1, True, FLOATS, empty=float("-inf")),
    # an empty axis gives an empty result, as PyTensor 3's C and Numba backends (its
    # softmax is a graph there; 2.x's Python perform raises for the max)
    AxisOp("softmax", 1, False, FLOATS),
    AxisOp("log_softmax", 1, False, FLOATS),
    AxisOp("softmax_grad", 2, False, FLOATS),  # (dy, sm) -> dy*sm - sm*sum(dy*sm)
    AxisOp("cumsum", 1, False, _NUMERIC),
    AxisOp("cumprod", 1, False, _NUMERIC),
    AxisOp("sort", 1, False, DTYPES),
    AxisOp("argsort", 1, False, DTYPES, "int64"),
]}
