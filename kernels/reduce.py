"""Reduction template: fold every input element into a stride-0 (broadcast) accumulator.

Operands: the input and the accumulator, both seen with the input's shape; the accumulator
has stride 0 along the reduced axes, so any axis set is one kernel per rank (the resolver
collapses dimensions first). Three loop shapes, chosen once per call by the inner strides:
reducing along the innermost axis keeps ``LANES`` partial accumulators in registers (with
vector loads when the rows are contiguous); a
contiguous inner axis that is kept is a vectorisable row update; anything else is the
general loop.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from aotkernels.kernels.abi import assume_c
from aotkernels.kernels.elemwise import converter
from aotkernels.kernels.reductions import REDUCTIONS
from aotkernels.kernels.scalar_ops import SCALAR_OPS
from aotkernels.signature import Signature

#: Partial accumulators for reductions along the innermost axis. Sums are then combined in a
#: different order than a sequential loop (NumPy's pairwise sum differs from both).
LANES = 8


def _tree(terms: list[str]) -> str:
    """Pairwise combination of partial accumulators: f(f(p0, p1), f(p2, p3)) ..."""
    while len(terms) > 1:
        terms = [f"f({a}, {b})" for a, b in zip(terms[::2], terms[1::2])]
    return terms[0]


def source(ndim: int, convert: bool, in_size: int, acc_size: int,
            nan_lane: bool = False) -> list[str]:
    """``nan_lane``: float max/min, whose lanes use the plain comparison ``g`` (one
    ``maxpd``) and note NaNs in separate flags, resolved once per row."""
    last = ndim - 1
    outer = [f"i{d}" for d in range(last)]
    pad = "    " * (last + 2)

    def nest() -> list[str]:
        return [f"{'    ' * (d + 2)}for i{d} in range(a.shape[{d}]):" for d in range(last)]

    def at(*extra: str) -> str:
        idx = ", ".join([*outer, *extra])
        return f"[{idx}]" if idx else ""

    rd = (lambda e: f"c({e})") if convert else (lambda e: e)
    row = f"a{at()}" if outer else "a"
    orow = f"out{at()}" if outer else "out"
    general = rd("a" + at("j"))
    g = "g" if nan_lane else "f"

    def lanes(r: str) -> list[str]:
        """Fold the row ``r`` into ``out[..., 0]`` with LANES independent accumulators."""
        nan_init = [f"{pad}    q{k} = p{k} != p{k}" for k in range(LANES)] if nan_lane else []
        nan_step = [f"{pad}        q{k} |= x{k} != x{k}" for k in range(LANES)] if nan_lane else []
        nan_end = ([f"{pad}    if {' | '.join(f'q{k}' for k in range(LANES))}:",
                    f"{pad}        acc = NAN"] if nan_lane else [])
        return [
            *nest(),
            f"{pad}r = {r}",
            f"{pad}acc = out{at('0')}",
            f"{pad}j = 0",
            f"{pad}if n >= {LANES}:",  # independent partial accumulators: throughput
            *[f"{pad}    p{k} = {rd(f'r[{k}]')}" for k in range(LANES)],
            *nan_init,
            f"{pad}    j = {LANES}",
            f"{pad}    while j + {LANES} <= n:",
            *[f"{pad}        x{k} = {rd(f'r[j + {k}]')}" for k in range(LANES)],
            *[f"{pad}        p{k} = {g}(p{k}, x{k})" for k in range(LANES)],
            *nan_step,
            f"{pad}        j += {LANES}",
            f"{pad}    acc = f(acc, {_tree([f'p{k}' for k in range(LANES)])})",
            *nan_end,
            f"{pad}for j2 in range(j, n):",
            f"{pad}    acc = f(acc, {rd('r[j2]')})",
            f"{pad}out{at('0')} = acc",
        ]

    return [
        "def kernel(a, out):",
        f"    n = a.shape[{last}]",
        "    if n == 0:",
        "        return 0",
        f"    if out.strides[{last}] == 0 and a.strides[{last}] == {in_size}:",
        *lanes(f"assume_c({row})"),  # contiguous rows: vector loads
        f"    elif out.strides[{last}] == 0:",
        *lanes(row),
        f"    elif a.strides[{last}] == {in_size} and out.strides[{last}] == {acc_size}:",
        *nest(),
        f"{pad}r = assume_c({row})",
        f"{pad}o = assume_c({orow})",
        f"{pad}for j in range(n):",
        f"{pad}    o[j] = f(o[j], {rd('r[j]')})",
        "    else:",
        *nest(),
        f"{pad}for j in range(n):",
        f"{pad}    out{at('j')} = f(out{at('j')}, {general})",
        "    return 0",
    ]


#: max/min without NaN propagation: ``x > p ? x : p`` is exactly one SSE/AVX ``maxpd``
#: (a NaN ``x`` keeps ``p``); NaNs are tracked by the lane flags instead
_PLAIN = {"max": njit(inline="always")(lambda p, x: x if x > p else p),
          "min": njit(inline="always")(lambda p, x: x if x < p else p)}


def build(sig: Signature, name: str):
    """``(body, operand specs)`` for ``reduce/<op>/<in>-><acc>/nd<k>``."""
    red = REDUCTIONS[sig.op]
    (in_dtype,), acc = sig.in_dtypes, sig.out_dtype
    if red.dtypes(in_dtype)[0] != acc:
        raise TypeError(f"{sig.op} of {in_dtype} accumulates in {red.dtypes(in_dtype)[0]}")
    nan_lane = sig.op in _PLAIN and np.dtype(acc).kind == "f"
    env = {"f": njit(inline="always")(SCALAR_OPS[red.combine].impl(acc)),
           "g": _PLAIN.get(sig.op), "NAN": np.dtype(acc).type(np.nan) if nan_lane else None,
           "assume_c": assume_c, "c": converter(acc) if acc != in_dtype else None}
    src = source(sig.ndim, acc != in_dtype, np.dtype(in_dtype).itemsize,
                  np.dtype(acc).itemsize, nan_lane)
    src[0] = src[0].replace("def kernel", f"def {name}")
    exec(compile("\n".join(src), f"<aotkernels {sig.key}>", "exec"), env)
    return njit(env[name]), [(in_dtype, sig.ndim, "A"), (acc, sig.ndim, "A")]
