"""Integer-index template: rows along axis 0 picked (``take``) or updated (``inc``, ``put``).

Operands: ``take(x, idx, out)`` with ``out[i] = x[idx[i]]``; ``inc(y, idx, out)`` with
``out[idx[i]] += y[i]`` and ``put(y, idx, out)`` with ``out[idx[i]] = y[i]``, where ``out``
already holds the array being updated (the runtime copies it in, or it is the inplace
input). ``x``/``y``/``out`` have the signature's rank, ``idx`` rank 1; ``y`` may broadcast
(stride 0). Every index is checked before anything is written, so an out-of-range one
leaves ``out`` untouched and returns ``OUT_OF_RANGE``.
"""

from __future__ import annotations

from numba import njit

from aotkernels.kernels.index_ops import INDEX_DTYPES, INDEX_OPS, OUT_OF_RANGE
from aotkernels.signature import Signature


def _source(op: str, ndim: int) -> list[str]:
    src, rows = ("x", "out") if op == "take" else ("y", "out")
    inner = [f"c{d}" for d in range(1, ndim)]
    if op == "take":
        dst, val = f"out[{', '.join(['i', *inner])}]", f"x[{', '.join(['j', *inner])}]"
        n = "x.shape[0]"
    else:
        dst, val = f"out[{', '.join(['j', *inner])}]", f"y[{', '.join(['i', *inner])}]"
        n = "out.shape[0]"
    assign = f"{dst} += {val}" if op == "inc" else f"{dst} = {val}"
    body = [f"def kernel({src}, idx, {rows}):",
            f"    n = {n}",
            "    for i in range(idx.shape[0]):",
            "        j = idx[i]",
            "        if j < -n or j >= n:",
            f"            return {OUT_OF_RANGE}",
            "    for i in range(idx.shape[0]):",
            "        j = idx[i]",
            "        if j < 0:",
            "            j += n"]
    pad = "        "
    for d, c in enumerate(inner, start=1):
        body.append(f"{pad}for {c} in range(out.shape[{d}]):")
        pad += "    "
    body += [f"{pad}{assign}", "    return 0"]
    return body


def build(sig: Signature, name: str):
    """``(body, operand specs)`` for ``index/<op>/<data>,<index>-><data>/nd<k>``."""
    op = INDEX_OPS[sig.op]
    data, index = sig.in_dtypes
    if data not in op.dtypes or index not in INDEX_DTYPES or sig.out_dtype != data:
        raise TypeError(f"{sig.key} does not match the {op.name} type rule")
    src = _source(sig.op, sig.ndim)
    src[0] = src[0].replace("def kernel", f"def {name}")
    env: dict = {}
    exec(compile("\n".join(src), f"<aotkernels {sig.key}>", "exec"), env)
    return njit(env[name]), [(data, sig.ndim, "A"), (index, 1, "A"), (data, sig.ndim, "A")]
