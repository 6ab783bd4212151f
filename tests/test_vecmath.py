"""Accuracy of the vectorised transcendental ops (``kernels/vecmath.py``) in the AOT kernels.

Errors are in ulps against NumPy in long double (``vecmath_cases``), over 1e5 inputs per op
and dtype drawn across the whole range and dense at the range reduction's boundaries, the
overflow and underflow thresholds, subnormals and zeros; ``python tests/vecmath_cases.py``
measures the README's table over 1e7. A JIT-compiled kernel (same body, host CPU, another
loop) must give the AOT kernel's bits.
"""

from __future__ import annotations

import numpy as np
import pytest
from reference import ran
from vecmath_cases import OPS, SPECIALS, reference, samples, ulp_errors

import aotkernels as ak

#: float64 bounds asserted: the maxima measured over 1e7 samples (README) plus ~0.5
F64_ULPS = {"exp": 1.5, "expm1": 2.5, "log": 1.0, "log1p": 2.5, "sigmoid": 3.0,
            "softplus": 3.0, "tanh": 3.0}
#: float32 results are the float64 ones rounded once: at most half an ulp plus a hair
F32_ULPS = 0.501


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("op", OPS)
def test_ulp_bound(op, dtype, no_jit):
    with np.errstate(over="ignore"):  # float32: huge samples become inf, on purpose
        x = samples(op, 100_000, seed=7).astype(dtype)
    err = ulp_errors(ak.elemwise(op, x), reference(op, x))
    bound = F64_ULPS[op] if dtype == "float64" else F32_ULPS
    worst = int(np.argmax(err))
    assert err[worst] <= bound, f"{op}({x[worst]!r}) is {err[worst]:.2f} ulp off"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("op", OPS)
def test_specials(op, dtype, no_jit):
    """inf, nan, signed zeros and thresholds: the same class and sign as NumPy's, in bound."""
    with np.errstate(over="ignore"):
        x = np.array(SPECIALS + [-s for s in SPECIALS]).astype(dtype)
    got = ak.elemwise(op, x)
    want = reference(op, x)
    err = ulp_errors(got, want)
    bound = F64_ULPS[op] if dtype == "float64" else F32_ULPS
    assert np.all(err <= bound), list(zip(x[err > bound], got[err > bound]))
    zero = got == 0
    assert np.array_equal(np.signbit(got[zero]), np.signbit(want[zero].astype(dtype))), x[zero]


def test_jit_gives_the_aot_bits(aot_lib, monkeypatch):
    """A strided input runs a JIT-compiled nd kernel (host CPU); a copy runs the prebuilt
    flat kernel (the session library's target): one body, no FMA contraction, same bits."""
    monkeypatch.delenv("AOT_DISABLE_JIT", raising=False)
    x = samples("softplus", 20_000, seed=3)[::2]
    jit_res, where = ran(ak.elemwise, "softplus", x)
    aot_res, where_aot = ran(ak.elemwise, "softplus", x.copy())
    assert (where, where_aot) == ("jit", "aot")
    assert np.array_equal(jit_res.view(np.int64), aot_res.view(np.int64))
