"""User catalog template: a user's Python functions in this project's loops and ABI.

An ``ElementwiseOp``'s scalar function becomes the body of the elementwise template's loop
nests (``kernels/elemwise.py``: ``flat``, and ``nd`` with its contiguous/broadcast/strided
branches); a ``ReductionOp`` folds with the reduction template (``kernels/reduce.py``); an
``ArrayOp``'s function is called on the operand views as they are (a scalar operand is a
0-d view, read with ``[()]``). All are compiled like every other kernel: nopython, no NRT,
``int32 kernel(void **data, const int64 *shapes, const int64 *strides)``; an exception the
function raises is the kernel's status 1. Plain functions the catalog declares as helpers
are compiled with it wherever it calls them.
"""

from __future__ import annotations

import types

import numpy as np
from numba import njit

from aotkernels.kernels import FAMILIES
from aotkernels.kernels.abi import assume_c
from aotkernels.kernels.elemwise import flat_source, nd_source
from aotkernels.kernels.reduce import source as reduce_source
from aotkernels.kernels.user_ops import ArrayOp, ElementwiseOp, Helper, ReductionOp
from aotkernels.signature import Signature


def _compiled(fn, helpers: dict):
    """``fn`` with the catalog's helpers (plain functions it calls) seen as numba
    functions: a copy of it whose globals map their names to jitted copies of them."""
    if not helpers:
        return fn
    env = dict(fn.__globals__)
    for helper in helpers.values():
        env[helper.name] = njit(inline="always")(_rebind(helper.fn, env))
    return _rebind(fn, env)


def _rebind(fn, env: dict):
    copy = types.FunctionType(fn.__code__, env, fn.__name__, fn.__defaults__, fn.__closure__)
    copy.__kwdefaults__ = fn.__kwdefaults__
    return copy


def _elementwise(op: ElementwiseOp, sig: Signature, name: str):
    nin = len(sig.in_dtypes)
    if sig.layout == "flat":
        src = flat_source(nin, [None] * nin)
    else:
        sizes = [np.dtype(d).itemsize for d in (*sig.in_dtypes, sig.out_dtype)]
        src = nd_source(nin, sig.ndim, [None] * nin, sizes)
    env = {"f": njit(inline="always")(_compiled(op.fn, helpers(sig))), "assume_c": assume_c}
    layout = "C" if sig.layout == "flat" else "A"
    return src, env, [(d, sig.ndim, layout) for d in (*sig.in_dtypes, sig.out_dtype)]


def _reduction(op: ReductionOp, sig: Signature, name: str):
    (d,) = sig.in_dtypes
    size = np.dtype(d).itemsize
    src = reduce_source(sig.ndim, False, size, size)
    env = {"f": njit(inline="always")(_compiled(op.combine.fn, helpers(sig))),
           "assume_c": assume_c}
    return src, env, [(d, sig.ndim, "A"), (d, sig.ndim, "A")]


def _array(op: ArrayOp, sig: Signature, name: str):
    s = op.find(sig.in_dtypes)
    if s is None:
        raise TypeError(f"{op.name} has no signature taking {sig.in_dtypes}")
    operands = [*s.ins, *s.outs]
    args = [f"a{i}" for i in range(len(operands))]
    reads = [f"{a}[()]" if n == 0 else a for a, (_, n) in zip(args, operands)]
    src = [f"def kernel({', '.join(args)}):", f"    f({', '.join(reads)})", "    return 0"]
    f = njit(boundscheck=True)(_compiled(op.fn, helpers(sig)))
    return src, {"f": f}, [(d, n, "A") for d, n in operands]


def helpers(sig: Signature) -> dict:
    """The helper functions the signature's catalog declares (``Catalog.helper``)."""
    return {k: v for k, v in FAMILIES[sig.family].table.items() if isinstance(v, Helper)}


def build(sig: Signature, name: str):
    """``(body, operand specs)`` for one signature of a user catalog's op."""
    op = FAMILIES[sig.family].table[sig.op]
    make = {ElementwiseOp: _elementwise, ReductionOp: _reduction, ArrayOp: _array}[type(op)]
    src, env, specs = make(op, sig, name)
    src[0] = src[0].replace("def kernel", f"def {name}")
    exec(compile("\n".join(src), f"<aotkernels {sig.key}>", "exec"), env)
    return njit(env[name]), specs
