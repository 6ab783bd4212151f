"""Elementwise template: a loop nest per signature around a scalar body from ``scalar_ops``.

Two layouts (see ``aotkernels.signature``):

* ``flat``: 1-D C-contiguous operands of one length: a single loop LLVM vectorises;
* ``nd``: operands of rank ``ndim`` with any byte strides. The innermost stride of every
  operand is tested once per call: all-contiguous rows, and contiguous rows with some inputs
  broadcast (stride 0), get vectorisable loops; anything else runs the general strided loop.

The resolver collapses dimensions first, the way NumPy's iterator does, so most calls land
on ``flat``. Kernels return 0; a scalar body that raises (integer division by zero, a float cast
to an integer it does not fit) makes
the entry point return numba's status 1 (``generator.link`` writes that wrapper).
"""

from __future__ import annotations

import itertools

import numba
import numpy as np
from numba import njit

from aotkernels.kernels.abi import assume_c, keep_scalar, stack_block
from aotkernels.kernels.scalar_ops import SCALAR_OPS, cast_body
from aotkernels.signature import Signature

#: Inputs up to this arity get a dedicated loop for every contiguous/broadcast-scalar mix.
_MAX_SPECIALISED_NIN = 2
#: Elements per stack block of a blocked strided row (``nd_source``): 2 KB of float64.
BLOCK = 256


def converter(dtype: str | None):
    """numba-callable conversion to ``dtype`` (None: no conversion)."""
    return None if dtype is None else getattr(np, "bool_" if dtype == "bool" else dtype)


def _scalar_expr(converters: list, reads: list[str]) -> str:
    args = [r if c is None else f"c{i}({r})" for i, (c, r) in enumerate(zip(converters, reads))]
    return f"f({', '.join(args)})"


def fixup_lines(row: str, n: str) -> list[str]:
    """After a loop that set ``far`` where ``mark`` held for a stored element of ``row``:
    recompute those (``vecmath.FIXUPS``: sin, cos of huge arguments), a rare second loop
    that leaves the first one vectorised."""
    return ["if far:",
            f"    for j in range({n}):",
            f"        if mark({row}[j]):",
            f"            {row}[j] = fix({row}[j])"]


def flat_source(nin: int, converters: list, fixup: bool = False,
                inplace: tuple[int, ...] = ()) -> list[str]:
    """``inplace``: the inputs that may be the output itself (PyTensor's in-place nodes,
    ``out=x``). When one is, the loop stores through that input: LLVM then sees one array
    where it would check two for overlap at run time, a check an exact alias fails, so the
    loop ran scalar (a vector ``exp`` in place took 4.5x its time, slower than libm)."""
    expr = _scalar_expr(converters, [f"a{i}[j]" for i in range(nin)])
    ins = ", ".join(f"a{i}" for i in range(nin))
    src = [f"def kernel({ins}, out):", "    n = out.shape[0]"]
    for k, i in enumerate(inplace):
        src.append(f"    {'elif' if k else 'if'} a{i}.ctypes.data == out.ctypes.data:")
        src += store_loop(f"a{i}", expr, fixup, "        ")
    if inplace:
        src.append("    else:")
    src += store_loop("out", expr, fixup, "        " if inplace else "    ")
    return src + ["    return 0"]


def store_loop(dst: str, expr: str, fixup: bool, pad: str) -> list[str]:
    """``dst[j] = expr`` for every ``j < n``; with ``fixup``, the marked body's second loop."""
    lines = [f"{pad}for j in range(n):", f"{pad}    {dst}[j] = {expr}"]
    if fixup:
        lines[:0] = [f"{pad}far = False"]
        lines += [f"{pad}    far |= mark({dst}[j])",
                  *(pad + line for line in fixup_lines(dst, "n"))]
    return lines


def nd_source(nin: int, ndim: int, converters: list, itemsizes: list[int],
              blocked: bool = False, fixup: bool = False,
              inplace: tuple[int, ...] = ()) -> list[str]:
    """Branch on inner strides once, then run the loop nest specialised for that case.

    ``blocked``: general (strided) rows are copied through stack blocks of ``BLOCK``
    elements when ``vector_path()`` holds, so a vector-math body (``kernels/vecmath.py``)
    runs vectorised on them too, with the contiguous loop's bits. ``fixup``: the body is
    marked (``vecmath.FIXUPS``): each vectorised loop is followed by its fixup loop.
    ``inplace``: as in ``flat_source``, for contiguous rows.
    """
    ins = ", ".join(f"a{i}" for i in range(nin))
    last = ndim - 1
    src = [
        f"def kernel({ins}, out):",
        f"    n = out.shape[{last}]",
        "    if n == 0:",
        "        return 0",
    ]
    outer = [f"i{d}" for d in range(last)]

    def nest(body: list[str], indent: int) -> list[str]:
        lines, pad = [], "    " * indent
        for d in range(last):
            lines.append(f"{pad}for i{d} in range(out.shape[{d}]):")
            pad += "    "
        return lines + [pad + b for b in body]

    def row(name: str) -> str:  # the 1-D view along the last axis at the current outer index
        return f"{name}[{', '.join(outer)}]" if outer else name

    patterns = []
    if nin <= _MAX_SPECIALISED_NIN:
        patterns = [p for p in itertools.product("cs", repeat=nin) if "c" in p]
    else:
        patterns = [("c",) * nin]
    first = True
    for pat in patterns:
        conds = [f"out.strides[{last}] == {itemsizes[-1]}"]
        for i, p in enumerate(pat):
            conds.append(f"a{i}.strides[{last}] == {itemsizes[i] if p == 'c' else 0}")
        src.append(f"    {'if' if first else 'elif'} {' and '.join(conds)}:")
        first = False
        body = [f"ro = assume_c({row('out')})"]
        reads = []
        for i, p in enumerate(pat):
            if p == "c":
                body.append(f"r{i} = assume_c({row(f'a{i}')})")
                reads.append(f"r{i}[j]")
            else:
                body.append(f"s{i} = {row(f'a{i}')}[0]")
                reads.append(f"s{i}")
        expr = _scalar_expr(converters, reads)
        same = [i for i, p in enumerate(pat) if p == "c" and i in inplace]
        for k, i in enumerate(same):  # in place: through the input (see ``flat_source``)
            body.append(f"{'elif' if k else 'if'} r{i}.ctypes.data == ro.ctypes.data:")
            body += store_loop(f"r{i}", expr, fixup, "    ")
        if same:
            body.append("else:")
        body += store_loop("ro", expr, fixup, "    " if same else "")
        src += nest(body, 2)
    general_reads = [f"a{i}[{', '.join([*outer, 'j'])}]" for i in range(nin)]
    general = [f"out[{', '.join([*outer, 'j'])}] = {_scalar_expr(converters, general_reads)}"]
    src.append("    else:")
    plain = ["for j in range(n):", "    " + general[0]]
    if fixup:
        at = general[0].split(" = ")[0]
        plain += [f"    if mark({at}):", f"        {at} = fix({at})"]
    if not blocked:
        src += nest(plain, 2)
    else:  # strided rows through stack blocks: the op runs a contiguous, vectorised loop
        at = [*outer, "j0 + j"]
        blocks = [*(f"t{i} = block{i}()" for i in range(nin)), "to = blocko()"]
        steps = ["for j0 in range(0, n, BLOCK):", "    m = min(BLOCK, n - j0)"]
        for i in range(nin):
            steps += ["    for j in range(m):", "        keep_scalar()",
                      f"        t{i}[j] = a{i}[{', '.join(at)}]"]
        compute = _scalar_expr(converters, [f"t{i}[j]" for i in range(nin)])
        steps += ["    for j in range(m):", f"        to[j] = {compute}"]
        if fixup:
            steps[-2:-2] = ["    far = False"]
            steps += ["        far |= mark(to[j])", *("    " + x for x in fixup_lines("to", "m"))]
        steps += ["    for j in range(m):", "        keep_scalar()",
                  f"        out[{', '.join(at)}] = to[j]"]
        src.append("        if vector_path():")
        src += ["            " + b for b in blocks]
        src += nest(steps, 3)
        src.append("        else:")
        src += nest(plain, 3)
    src.append("    return 0")
    return src


def build(sig: Signature, name: str):
    """Return ``(body, operand dtypes)``: an ``@njit`` function over the operand arrays."""
    op = SCALAR_OPS[sig.op]
    _, compute = op.types(sig.in_dtypes, sig.out_dtype)
    converters = [converter(c) if c != d else None for c, d in zip(compute, sig.in_dtypes)]
    vec, fix = None, None
    if sig.op == "cast":
        body = cast_body(sig.in_dtypes[0], sig.out_dtype)
    else:
        comp = next((c for c in compute if c), sig.in_dtypes[-1])
        vec = op.vector_body_for(comp)
        if vec is not None:
            from aotkernels.kernels.vecmath import fixup

            fix = fixup(vec.name)
        body = op.impl(comp, marked=fix is not None)
    scalar = njit(inline="always")(body)
    env = {"f": scalar, "assume_c": assume_c}
    if fix is not None:
        env.update(mark=fix[0], fix=fix[1])
    same = tuple(i for i, d in enumerate(sig.in_dtypes) if d == sig.out_dtype)
    if sig.layout == "flat":
        src = flat_source(op.nin, converters, fixup=fix is not None, inplace=same)
    else:
        itemsizes = [np.dtype(d).itemsize for d in (*sig.in_dtypes, sig.out_dtype)]
        src = nd_source(op.nin, sig.ndim, converters, itemsizes, blocked=vec is not None,
                        fixup=fix is not None, inplace=same)
        if vec is not None:
            from aotkernels.kernels.vecmath import vector_path

            env.update({f"block{i}": stack_block(numba.from_dtype(np.dtype(d)), BLOCK)
                        for i, d in enumerate(sig.in_dtypes)})
            env.update(blocko=stack_block(numba.from_dtype(np.dtype(sig.out_dtype)), BLOCK),
                       vector_path=vector_path(vec.name, comp), BLOCK=BLOCK,
                       keep_scalar=keep_scalar)
    env.update({f"c{i}": c for i, c in enumerate(converters) if c is not None})
    src[0] = src[0].replace("def kernel", f"def {name}")
    exec(compile("\n".join(src), f"<aotkernels {sig.key}>", "exec"), env)
    layout = "C" if sig.layout == "flat" else "A"
    return njit(env[name]), [(d, sig.ndim, layout) for d in (*sig.in_dtypes, sig.out_dtype)]
