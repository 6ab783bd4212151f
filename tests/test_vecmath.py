"""Accuracy of the vectorised transcendental ops (``kernels/vecmath.py``) in the AOT kernels.

Errors are in ulps against NumPy in long double, or mpmath for erf/erfc (``vecmath_cases``),
over 1e5 inputs per op and dtype drawn across the whole range and dense at the range
reduction's boundaries, the overflow and underflow thresholds, subnormals and zeros;
``python tests/vecmath_cases.py`` measures the README's table over 1e7. The session library
is the baseline target, which keeps libm for some ops (``Target.libm_ops``), so the vector
bodies of those are checked in a small library built for this CPU's best target, where a
strided row (the nd kernel's blocked loop) must also give the contiguous kernel's bits. A
JIT-compiled kernel makes the choice of the library the process loaded: the AOT bits.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest
from reference import ran
from vecmath_cases import (
    BINARY,
    OPS,
    SPECIALS,
    operands,
    reference,
    samples_of,
    ulp_errors,
)

import aotkernels as ak
from aotkernels import library
from aotkernels.call import Geometry, Prepared
from aotkernels.targets import TARGETS, native_targets

ROOT = Path(__file__).resolve().parent.parent

#: float64 bounds asserted for the vector bodies: the maxima measured over 1e7 samples
#: (README) plus ~0.5
F64_ULPS = {"exp": 1.5, "expm1": 2.5, "log": 1.0, "log1p": 2.5, "sigmoid": 3.0,
            "softplus": 3.0, "tanh": 3.0, "erf": 1.5, "erfc": 3.5, "sin": 2.0, "cos": 2.0,
            "pow": 2.0}
#: float32 results of ops computed in float64 are rounded once: half an ulp plus a hair
F32_ULPS = 0.501
#: ops with float32 bodies (``vecmath.F32_BODIES``, float32 arithmetic): the maxima
#: measured over 1e7 samples (README) plus ~0.3
F32_BODY_ULPS = {"exp": 1.3, "expm1": 1.9, "log": 1.1, "log1p": 1.1, "sigmoid": 2.5,
                 "softplus": 1.8, "tanh": 2.6}
#: the libm bodies (glibc's exp, log, erf, erfc and their float32 versions; log1p as
#: log(u) + c/u over glibc's log, softplus over that and exp), where a target keeps them:
#: float64, float32 (measured on 2e5 samples, or 1e7 for log1p and softplus, plus a margin)
LIBM_ULPS = {"exp": (1.0, 0.502), "log": (1.0, 0.8), "log1p": (2.0, 1.0),
             "softplus": (2.5, 2.0), "sigmoid": (3.0, 1.5),
             "erf": (1.5, 1.0), "erfc": (4.0, 3.0), "pow": (1.0, 1.0), "sin": (1.0, 0.8),
             "cos": (1.0, 0.8)}
#: pow's special operands: zeros, infinities, NaN, +-1, integers odd and even (small and
#: beyond 2**52, where every double is an even integer), halves, subnormals, the extremes
POW_SPECIALS = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0,
                -3.0, 2.5, -2.5, 5e-324, -5e-324, 1e-310, 1.7976931348623157e308,
                -1.7976931348623157e308, 2.0**53, -2.0**53, 2.0**53 + 2, 2.0**52 + 1,
                -(2.0**52 + 1), 2.0**51 + 1, 2.0**64, 1e300, -1e300, 0.3, 1.0000000000000002,
                0.9999999999999999, 1024.0, -1075.0, -1074.0, 1023.5, 7.0, -7.0, 1e-5]


def bound(op: str, dtype: str, target: str) -> float:
    if TARGETS[target].calls_libm(op, dtype):
        return LIBM_ULPS[op][dtype == "float32"]
    return F64_ULPS[op] if dtype == "float64" else F32_BODY_ULPS.get(op, F32_ULPS)


@pytest.fixture(scope="module")
def vector_lib() -> library.Library:
    """This CPU's best target, the vector-math ops in flat and nd1 kernels."""
    from aotkernels.build_tools.cli import build
    from aotkernels.generator.catalog import catalog

    (target,) = native_targets() or (None,)
    if target is None or set(TARGETS[target].libm_ops) >= set(OPS):
        pytest.skip("no target of this CPU runs the vector bodies")
    out = ROOT / "build" / "test-vecmath-lib"
    build(catalog(list(OPS), ["f8", "f4"], max_ndim=1), [target], out, wheel=False,
          jobs=os.cpu_count() or 1, cache_dir=ROOT / "build" / "ir-cache", quiet=True)
    lib = library.load(out)
    assert lib.target == target
    return lib


def run(lib: library.Library, op: str, x: np.ndarray) -> np.ndarray:
    """``op`` on the operands of samples ``x`` through ``lib``'s kernel for their layout
    (flat if contiguous, else nd1)."""
    xs = operands(op, x)
    out = np.empty(xs[0].shape, x.dtype)
    geo = Geometry.broadcast(list(xs), out)
    flat = all(a.flags.c_contiguous for a in xs)
    sig, fn = lib.find("elemwise", op, tuple(a.dtype.name for a in xs), x.dtype.name, 1,
                       flat=flat)
    assert sig is not None and sig.layout == ("flat" if flat else "nd")
    Prepared(sig, fn, "aot", geo).run([*xs, out])
    return out


def check_ulps(op: str, dtype: str, got: np.ndarray, x: np.ndarray, limit: float) -> None:
    err = ulp_errors(got, reference(op, x))
    worst = int(np.argmax(err))
    assert err[worst] <= limit, f"{op}({x[worst]!r}) is {err[worst]:.2f} ulp off"


def some(op: str, dtype: str, n: int = 100_000) -> np.ndarray:
    return samples_of(op, n, dtype, seed=7)


def specials(dtype: str, op: str = "") -> np.ndarray:
    """The special inputs of ``op`` (pow: every pair of ``POW_SPECIALS``)."""
    with np.errstate(over="ignore"):
        if op in BINARY:
            pairs = np.array(list(itertools.product(POW_SPECIALS, POW_SPECIALS)))
            return np.ascontiguousarray(pairs.T.astype(dtype))
        return np.array(SPECIALS + [-s for s in SPECIALS]).astype(dtype)


def check_specials(op: str, dtype: str, got: np.ndarray, x: np.ndarray, limit: float):
    """inf, nan, signed zeros and thresholds: the same class and sign as the reference."""
    want = reference(op, x)
    err = ulp_errors(got, want)
    assert np.all(err <= limit), list(zip(x[err > limit], got[err > limit]))
    zero = got == 0
    assert np.array_equal(np.signbit(got[zero]), np.signbit(want[zero].astype(dtype))), x[zero]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("op", OPS)
def test_ulp_bound(op, dtype, no_jit, aot_lib):
    x = some(op, dtype)
    check_ulps(op, dtype, ak.elemwise(op, *operands(op, x)), x,
               bound(op, dtype, aot_lib.target))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("op", OPS)
def test_specials(op, dtype, no_jit, aot_lib):
    x = specials(dtype, op)
    check_specials(op, dtype, ak.elemwise(op, *operands(op, x)), x,
                   bound(op, dtype, aot_lib.target))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("op", OPS)
def test_vector_body_ulp_bound_and_strided_bits(op, dtype, vector_lib):
    """The vector body on this CPU's best target; a stride-2 row (the nd kernel's blocked
    loop, through stack blocks) gives the contiguous kernel's bits."""
    x = some(op, dtype)
    got = run(vector_lib, op, x)
    check_ulps(op, dtype, got, x, bound(op, dtype, vector_lib.target))
    wide = np.repeat(x, 2, axis=-1)
    strided = run(vector_lib, op, wide[..., ::2])
    assert np.array_equal(strided.view(f"i{x.itemsize}"), got.view(f"i{x.itemsize}"))
    s = specials(dtype, op)
    check_specials(op, dtype, run(vector_lib, op, s), s, bound(op, dtype, vector_lib.target))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_pow_special_cases_are_numpys(dtype, aot_lib, vector_lib):
    """Every pair of special operands gives np.power's class (NaN, inf, zero, finite) and
    sign, in the session library and in the vector body; there x**0, x**1, x**2, x**-1,
    x**0.5 and 1**y are exact (correctly rounded; NumPy's own SIMD pow is not, nor always
    glibc's), the rest within the ulp bound."""
    xy = specials(dtype, "pow")
    x, y = xy
    with np.errstate(all="ignore"):
        want = np.power(x, y)
    exact = np.isin(y, [0.0, 1.0, 2.0, -1.0, 0.5]) | (x == 1)
    x8 = x.astype(np.float64)
    with np.errstate(all="ignore"):  # the correctly rounded values (double rounding is
        ideal = np.select([(y == 0) | (x == 1), y == 1, y == 2, y == -1, y == 0.5],  # exact
                          [np.ones_like(x8), x8, x8 * x8, 1.0 / x8, np.sqrt(x8)]).astype(dtype)
    ideal = np.where((y == 0.5) & ((x == -np.inf) | (x == 0)), want, ideal)  # C99, not sqrt
    for lib in (aot_lib, vector_lib):
        got = run(lib, "pow", xy)
        for cls in (np.isnan, np.isinf, lambda v: v == 0):
            bad = cls(got) != cls(want)
            assert not bad.any(), list(zip(x[bad], y[bad], got[bad], want[bad]))
        bad = (np.signbit(got) != np.signbit(want)) & ~np.isnan(want)
        assert not bad.any(), list(zip(x[bad], y[bad], got[bad], want[bad]))
        off = exact & (got != ideal) & ~(np.isnan(got) & np.isnan(ideal))
        off &= not TARGETS[lib.target].calls_libm("pow", dtype)
        assert not off.any(), (lib.target, list(zip(x[off], y[off], got[off], ideal[off])))
        check_ulps("pow", dtype, got, xy, bound("pow", dtype, lib.target))


@pytest.mark.parametrize(("op", "dtype"), [
    *((op, "float64") for op in ("softplus", "sigmoid", "erfc", "sin", "cos")),
    *((op, "float32") for op in ("log", "sigmoid", "tanh", "sin", "pow"))])
def test_jit_gives_the_aot_bits(op, dtype, aot_lib, monkeypatch):
    """A strided input runs a JIT-compiled nd kernel (host CPU); a copy runs the prebuilt
    flat kernel (the session library's target): one body (the library target's choice of
    libm or vector code, ``sigmoid``, ``erfc`` and ``pow`` differ on the baseline, and
    float32 ``sin``; float32 ``log``, ``sigmoid``, ``tanh`` are float32 bodies; sin and cos
    recompute huge arguments after the loop), no FMA contraction, same bits. Not ``exp``:
    the session library has its nd kernels."""
    monkeypatch.delenv("AOT_DISABLE_JIT", raising=False)
    x = samples_of(op, 20_000, dtype, seed=3)
    x = x[..., ::2]
    jit_res, where = ran(ak.elemwise, op, *operands(op, x))
    aot_res, where_aot = ran(ak.elemwise, op, *operands(op, x.copy()))
    assert (where, where_aot) == ("jit", "aot")
    assert np.array_equal(jit_res.view(f"i{x.itemsize}"), aot_res.view(f"i{x.itemsize}"))
