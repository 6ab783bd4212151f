"""A user catalog for the tests (tests/test_user_catalog.py): one kernel of each kind."""

import math

from aotkernels.user import Catalog

cat = Catalog("usercat", version="1.2.3")


@cat.helper
def half_square(x):
    return 0.5 * x * x


@cat.elemwise("f8(f8, f8)", "i4(i4, i4)")
def huber(x, d):
    """Calls a helper: compiled into the kernel."""
    a = abs(x)
    return half_square(x) if a <= d else d * (a - 0.5 * d)


@cat.elemwise("f8(f8, f8)", identity=-math.inf)
def logaddexp(a, b):
    if a == -math.inf:
        return b
    hi, lo = (a, b) if a >= b else (b, a)
    return hi + math.log1p(math.exp(lo - hi))


@cat.array("(f8[:, :], f8[:]) -> f8[:]", shape=lambda x, w: x.shape[:1])
def matvec(x, w, out):
    for i in range(x.shape[0]):
        acc = 0.0
        for j in range(x.shape[1]):
            acc += x[i, j] * w[j]
        out[i] = acc


@cat.array("(f8[:], f8) -> (f8[:], i8[:])")
def clip_count(x, t, out, count):
    """Two outputs and a scalar input: ``x`` clipped at ``t`` and the count clipped."""
    n = 0
    for i in range(x.shape[0]):
        if x[i] > t:
            out[i] = t
            n += 1
        else:
            out[i] = x[i]
    count[0] = n
