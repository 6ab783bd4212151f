"""The reduction table: PyTensor's CAReduce ops as (combining scalar op, identity, dtypes).

A reduction here is an accumulation: the output, pre-filled with the identity, is seen by
the kernel with stride 0 along the reduced axes, and every input element is combined into
it with a scalar op from ``scalar_ops`` (``maximum`` keeps its NaN propagation). One kernel
per (op, dtype, rank) thus serves every axis set. Numba-free, like ``scalar_ops``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aotkernels.kernels.scalar_ops import kind


def _sum_acc(d: str) -> str:  # PyTensor: integers accumulate in 64 bits, float32 in float64
    return {"i": "int64", "b": "int64"}.get(kind(d), "float64") if d != "uint8" else "uint64"


def _sum_out(d: str) -> str:
    return d if kind(d) == "f" else _sum_acc(d)


@dataclass(frozen=True)
class Reduction:
    name: str
    combine: str  # the scalar op that folds an element into the accumulator
    acc: object  # in dtype -> accumulator dtype (what the kernel writes)
    out: object  # in dtype -> result dtype (the accumulator is cast to it)
    identity: object  # accumulator dtype -> fill value; None: empty reductions raise

    def dtypes(self, in_dtype: str) -> tuple[str, str]:
        """(accumulator dtype, result dtype)."""
        return self.acc(in_dtype), self.out(in_dtype)


def _lowest(d: str):
    return -np.inf if kind(d) == "f" else (False if d == "bool" else np.iinfo(d).min)


def _highest(d: str):
    return np.inf if kind(d) == "f" else (True if d == "bool" else np.iinfo(d).max)


REDUCTIONS: dict[str, Reduction] = {r.name: r for r in [
    Reduction("sum", "add", _sum_acc, _sum_out, lambda d: 0),
    Reduction("prod", "mul", _sum_acc, _sum_out, lambda d: 1),
    Reduction("max", "maximum", lambda d: d, lambda d: d, None),
    Reduction("min", "minimum", lambda d: d, lambda d: d, None),
    Reduction("all", "and", lambda d: "bool", lambda d: "bool", lambda d: True),
    Reduction("any", "or", lambda d: "bool", lambda d: "bool", lambda d: False),
]}

#: Fill values for max/min accumulators; used only when the reduced size is not zero.
START = {"max": _lowest, "min": _highest}


def start_value(name: str, acc_dtype: str):
    r = REDUCTIONS[name]
    return START[name](acc_dtype) if r.identity is None else r.identity(acc_dtype)
