"""Along-an-axis template: a loop nest over rows around a row function (``axis_ops``).

Operands are seen at rank ``ndim`` with the op's axis last: the inputs, then the output,
which for reducing ops (argmax, logsumexp) has stride 0 along the axis and receives the
row's value at index 0. Rows are never empty (the runtime answers those itself). When
every operand's row is contiguous the rows are relabelled C-contiguous, which is what
lets LLVM vectorise the max, sum and divide passes.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from aotkernels.kernels.abi import assume_c
from aotkernels.kernels.axis_ops import AXIS_OPS
from aotkernels.kernels.scalar_ops import SCALAR_OPS
from aotkernels.signature import Signature

_fmax = njit(inline="always")(SCALAR_OPS["maximum"].impl("float64"))


def _row_functions(dtype: str) -> dict:
    """Row bodies for one dtype; ``cv`` casts a float64 sum to the row dtype as PyTensor's
    ``sum`` (float64 accumulator, result in the input dtype) does."""
    cv = getattr(np, "bool_" if dtype == "bool" else dtype)

    @njit(inline="always")
    def rowmax(r):
        m = r[0]
        for j in range(1, r.shape[0]):
            m = _fmax(m, r[j])
        return m

    def first_index(keeps):
        """Index of the first element that no later one displaces, the first NaN winning
        (NumPy's argmax/argmin); ``keeps(v, best)`` is False when ``v`` must replace."""
        @njit
        def arg(r):
            best, idx = r[0], 0
            if best != best:
                return 0
            for j in range(1, r.shape[0]):
                v = r[j]
                if not keeps(v, best):  # better, or the first NaN
                    best, idx = v, j
                    if v != v:
                        break
            return idx
        return arg

    argmax = first_index(njit(inline="always")(lambda v, best: v <= best))
    argmin = first_index(njit(inline="always")(lambda v, best: v >= best))

    @njit
    def logsumexp(r):
        m = rowmax(r)
        if m != m:
            return m
        shift = m if np.isfinite(m) else cv(0)  # all -inf gives -inf, any +inf gives +inf
        s = 0.0
        for j in range(r.shape[0]):
            s += np.exp(r[j] - shift)
        return cv(np.log(cv(s)) + shift)

    @njit
    def softmax(r, o):
        m = rowmax(r)
        s = 0.0
        for j in range(r.shape[0]):
            e = np.exp(r[j] - m)
            o[j] = e
            s += e
        sc = cv(s)
        for j in range(r.shape[0]):
            o[j] = o[j] / sc

    @njit
    def log_softmax(r, o):
        m = rowmax(r)
        s = 0.0
        for j in range(r.shape[0]):
            s += np.exp(r[j] - m)
        ls = np.log(cv(s))
        for j in range(r.shape[0]):
            o[j] = (r[j] - m) - ls

    @njit
    def softmax_grad(dy, sm, o):
        s = 0.0
        for j in range(o.shape[0]):
            d = dy[j] * sm[j]
            o[j] = d
            s += d
        sc = cv(s)
        for j in range(o.shape[0]):
            o[j] = o[j] - sm[j] * sc

    @njit
    def cumsum(r, o):
        acc = r[0]
        o[0] = acc
        for j in range(1, r.shape[0]):
            acc = cv(acc + r[j])
            o[j] = acc

    @njit
    def cumprod(r, o):
        acc = r[0]
        o[0] = acc
        for j in range(1, r.shape[0]):
            acc = cv(acc * r[j])
            o[j] = acc

    return {"argmax": argmax, "argmin": argmin, "logsumexp": logsumexp, "softmax": softmax,
            "log_softmax": log_softmax, "softmax_grad": softmax_grad, "cumsum": cumsum,
            "cumprod": cumprod, "sort": _sort_row(dtype), "argsort": _argsort_row(dtype)}


def _sort_row(dtype: str):
    """``np.sort`` of a row into ``o``: a heapsort (in place, no allocation, n log n), NaNs
    last; then, for floats, the values that compare equal yet differ in bits (zeros of
    either sign, NaNs of any payload) are written back in their input order. The result is
    a stable sort's, NumPy's for ``kind="stable"`` (and ``mergesort``) to the bit; for
    ``quicksort`` and ``heapsort`` NumPy leaves the order of such values to its algorithm
    (x86-simd-sort on AVX-512), so only they may differ, never the values."""
    floats = np.dtype(dtype).kind == "f"

    @njit(inline="always")
    def less(a, b):
        if floats:
            return a < b or (b != b and a == a)
        return a < b

    @njit(inline="always")
    def sift(o, start, end):
        root = start
        while True:
            child = 2 * root + 1
            if child > end:
                return
            if child + 1 <= end and less(o[child], o[child + 1]):
                child += 1
            if less(o[root], o[child]):
                o[root], o[child] = o[child], o[root]
                root = child
            else:
                return

    @njit
    def sort(r, o):
        n = r.shape[0]
        for j in range(n):
            o[j] = r[j]
        for start in range((n - 2) // 2, -1, -1):
            sift(o, start, n - 1)
        for end in range(n - 1, 0, -1):
            o[0], o[end] = o[end], o[0]
            sift(o, 0, end - 1)
        if floats:  # zeros and NaNs in input order, as a stable sort leaves them
            z = 0
            while z < n and not (o[z] == 0):
                z += 1
            nan = n
            while nan > 0 and o[nan - 1] != o[nan - 1]:
                nan -= 1
            for j in range(n):
                v = r[j]
                if v == 0:
                    o[z] = v
                    z += 1
                elif v != v:
                    o[nan] = v
                    nan += 1

    return sort


def _argsort_row(dtype: str):
    """``np.argsort(kind="stable")`` of a row into the int64 row ``o``: a heapsort of the
    indices (in place, no allocation) under a total order, the values' (NaNs last) then the
    indices', so equal values keep their input order: NumPy's stable result to the bit.
    NumPy's quicksort may order equal values otherwise (its algorithm's choice)."""
    floats = np.dtype(dtype).kind == "f"

    @njit(inline="always")
    def before(r, i, j):
        a, b = r[i], r[j]
        if floats:
            if a != a:
                return b != b and i < j
            if b != b:
                return True
        return a < b or (a == b and i < j)

    @njit(inline="always")
    def sift(r, o, start, end):
        root = start
        while True:
            child = 2 * root + 1
            if child > end:
                return
            if child + 1 <= end and before(r, o[child], o[child + 1]):
                child += 1
            if before(r, o[root], o[child]):
                o[root], o[child] = o[child], o[root]
                root = child
            else:
                return

    @njit
    def argsort(r, o):
        n = r.shape[0]
        for j in range(n):
            o[j] = j
        for start in range((n - 2) // 2, -1, -1):
            sift(r, o, start, n - 1)
        for end in range(n - 1, 0, -1):
            o[0], o[end] = o[end], o[0]
            sift(r, o, 0, end - 1)

    return argsort


def _source(nin: int, ndim: int, reduces: bool, sizes: list[int]) -> list[str]:
    last = ndim - 1
    ins = [f"a{i}" for i in range(nin)]
    outer = ", ".join(f"i{d}" for d in range(last))

    def row(name: str, contiguous: bool) -> str:
        v = f"{name}[{outer}]" if outer else name
        return f"assume_c({v})" if contiguous else v

    def loop(contiguous: bool, indent: int) -> list[str]:
        pad = "    " * indent
        lines = [f"{pad}{'    ' * d}for i{d} in range(out.shape[{d}]):" for d in range(last)]
        pad += "    " * last
        rows = ", ".join(row(a, contiguous) for a in ins)
        if reduces:
            lines.append(f"{pad}out[{outer + ', ' if outer else ''}0] = f({rows})")
        else:
            lines.append(f"{pad}f({rows}, {row('out', contiguous)})")
        return lines

    ops = [*ins] if reduces else [*ins, "out"]
    cond = " and ".join(f"{a}.strides[{last}] == {sizes[i]}" for i, a in enumerate(ops))
    return [
        f"def kernel({', '.join(ins)}, out):",
        f"    if {cond}:",
        *loop(True, 2),
        "    else:",
        *loop(False, 2),
        "    return 0",
    ]


def build(sig: Signature, name: str):
    """``(body, operand specs)`` for ``axis/<op>/<in>-><out>/nd<k>``."""
    op = AXIS_OPS[sig.op]
    d = sig.in_dtypes[0]
    if op.out_dtype(d) != sig.out_dtype or len(sig.in_dtypes) != op.nin:
        raise TypeError(f"{sig.key} does not match the {op.name} type rule")
    sizes = [np.dtype(t).itemsize for t in (*sig.in_dtypes, sig.out_dtype)]
    src = _source(op.nin, sig.ndim, op.reduces, sizes)
    src[0] = src[0].replace("def kernel", f"def {name}")
    env = {"f": _row_functions(d)[sig.op], "assume_c": assume_c}
    exec(compile("\n".join(src), f"<aotkernels {sig.key}>", "exec"), env)
    return njit(env[name]), [(t, sig.ndim, "A") for t in (*sig.in_dtypes, sig.out_dtype)]
