"""An aotkernels user catalog: numba.pycc's documented example, and a few kernels more.

Build it into a wheel for three x86-64 levels (from this folder):

    build-kernels --catalog mykernels_catalog.py --targets x86_64,x86_64_v3,x86_64_v4
    pip install wheels/mykernels-0.1.0-py3-none-linux_x86_64.whl

This module imports no numba: numba compiles the functions at build time (or, imported from
source without a built library, on each kernel's first call: the JIT fallback).
"""

import math

from aotkernels.user import Catalog

cat = Catalog("mykernels", version="0.1.0")


# numba.pycc's example: @cc.export('multf', 'f8(f8, f8)') and @cc.export('multi', 'i4(i4, i4)')
# on one function become one elementwise function with two signatures: mult(x, y)
@cat.elemwise("f8(f8, f8)", "i4(i4, i4)")
def mult(a, b):
    return a * b


# @cc.export('square', 'f8(f8)')
@cat.elemwise("f8(f8)")
def square(a):
    return a**2


@cat.elemwise("f8(f8, f8)", "f4(f4, f4)")
def huber(x, d):
    """Huber loss of the residual ``x`` with threshold ``d``."""
    a = abs(x)
    return 0.5 * x * x if a <= d else d * (a - 0.5 * d)


@cat.elemwise("f8(f8, f8)", "f4(f4, f4)", identity=-math.inf)
def logaddexp(a, b):
    """log(exp(a) + exp(b)) without overflow; ``logaddexp.reduce`` is a logsumexp."""
    if a == -math.inf:
        return b
    hi, lo = (a, b) if a >= b else (b, a)
    return hi + math.log1p(math.exp(lo - hi))


@cat.array("(f8[:, :], f8[:]) -> f8[:]", "(f4[:, :], f4[:]) -> f4[:]",
           shape=lambda x, w: x.shape[:1])
def matvec(x, w, out):
    """``out = x @ w``, a whole-array kernel with explicit array signatures."""
    for i in range(x.shape[0]):
        acc = 0.0
        for j in range(x.shape[1]):
            acc += x[i, j] * w[j]
        out[i] = acc


@cat.array("(f8[:], f8) -> i8[:]", shape=lambda x, t: x.shape)
def above(x, t, out):
    """Indices where ``x > t``, packed to the front, -1 after (a scalar input)."""
    k = 0
    for i in range(x.shape[0]):
        if x[i] > t:
            out[k] = i
            k += 1
    for i in range(k, x.shape[0]):
        out[i] = -1
