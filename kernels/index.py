"""Integer-index template: rows along axis 0 picked (``take``) or updated (``inc``, ``put``),
and single elements by one index vector per dimension (the ``_points`` forms).

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


def _points_source(op: str, ndim: int) -> list[str]:
    """``take_points(x, i0.., out)``: ``out[k] = x[i0[k], ..]``; ``inc_points(y, i0.., out)``:
    ``out[i0[k], ..] += y[k]`` (``put_points``: ``=``)."""
    base = op.removesuffix("_points")
    idx = [f"i{d}" for d in range(ndim)]
    arr = "x" if base == "take" else "out"
    js = ", ".join(f"j{d}" for d in range(ndim))
    body = [f"def kernel({'x' if base == 'take' else 'y'}, {', '.join(idx)}, out):",
            f"    m = {'out' if base == 'take' else 'y'}.shape[0]",
            "    for k in range(m):"]
    for d in range(ndim):
        body += [f"        j = i{d}[k]",
                 f"        if j < -{arr}.shape[{d}] or j >= {arr}.shape[{d}]:",
                 f"            return {OUT_OF_RANGE}"]
    body.append("    for k in range(m):")
    for d in range(ndim):
        body += [f"        j{d} = i{d}[k]",
                 f"        if j{d} < 0:",
                 f"            j{d} += {arr}.shape[{d}]"]
    if base == "take":
        body.append(f"        out[k] = x[{js}]")
    else:
        body.append(f"        out[{js}] {'+=' if base == 'inc' else '='} y[k]")
    return [*body, "    return 0"]


def build(sig: Signature, name: str):
    """``(body, operand specs)`` for ``index/<op>/<data>,<index>-><data>/nd<k>``."""
    op = INDEX_OPS[sig.op]
    data, index = sig.in_dtypes
    if data not in op.dtypes or index not in INDEX_DTYPES or sig.out_dtype != data:
        raise TypeError(f"{sig.key} does not match the {op.name} type rule")
    if sig.ndim not in op.ranks:
        raise TypeError(f"{sig.key}: {op.name} ships ranks {list(op.ranks)}")
    src = (_points_source if op.points else _source)(sig.op, sig.ndim)
    src[0] = src[0].replace("def kernel", f"def {name}")
    env: dict = {}
    exec(compile("\n".join(src), f"<aotkernels {sig.key}>", "exec"), env)
    if not op.points:
        specs = [(data, sig.ndim, "A"), (index, 1, "A"), (data, sig.ndim, "A")]
    elif op.name == "take_points":
        specs = [(data, sig.ndim, "A"), *[(index, 1, "A")] * sig.ndim, (data, 1, "A")]
    else:
        specs = [(data, 1, "A"), *[(index, 1, "A")] * sig.ndim, (data, sig.ndim, "A")]
    return njit(env[name]), specs
