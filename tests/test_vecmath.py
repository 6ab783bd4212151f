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

import os
from pathlib import Path

import numpy as np
import pytest
from reference import ran
from vecmath_cases import OPS, SPECIALS, reference, samples, ulp_errors

import aotkernels as ak
from aotkernels import library
from aotkernels.call import Geometry, Prepared
from aotkernels.targets import TARGETS, native_targets

ROOT = Path(__file__).resolve().parent.parent

#: float64 bounds asserted for the vector bodies: the maxima measured over 1e7 samples
#: (README) plus ~0.5
F64_ULPS = {"exp": 1.5, "expm1": 2.5, "log": 1.0, "log1p": 2.5, "sigmoid": 3.0,
            "softplus": 3.0, "tanh": 3.0, "erf": 1.5, "erfc": 3.5}
#: float32 results are the float64 ones rounded once: at most half an ulp plus a hair
F32_ULPS = 0.501
#: the libm bodies (glibc's exp, log, erf, erfc and their float32 versions), where a
#: target keeps them: float64, float32 (measured on 2e5 samples, plus a margin)
LIBM_ULPS = {"exp": (1.0, 0.502), "log": (1.0, 0.8), "sigmoid": (3.0, 1.5),
             "erf": (1.5, 1.0), "erfc": (4.0, 3.0)}


def bound(op: str, dtype: str, target: str) -> float:
    if op in TARGETS[target].libm_ops:
        return LIBM_ULPS[op][dtype == "float32"]
    return F64_ULPS[op] if dtype == "float64" else F32_ULPS


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
    """``op(x)`` through ``lib``'s kernel for x's layout (flat if contiguous, else nd1)."""
    out = np.empty(x.shape, x.dtype)
    geo = Geometry.broadcast([x], out)
    sig, fn = lib.find("elemwise", op, (x.dtype.name,), x.dtype.name, 1,
                       flat=x.flags.c_contiguous)
    assert sig is not None and sig.layout == ("flat" if x.flags.c_contiguous else "nd")
    Prepared(sig, fn, "aot", geo).run([x, out])
    return out


def check_ulps(op: str, dtype: str, got: np.ndarray, x: np.ndarray, limit: float) -> None:
    err = ulp_errors(got, reference(op, x))
    worst = int(np.argmax(err))
    assert err[worst] <= limit, f"{op}({x[worst]!r}) is {err[worst]:.2f} ulp off"


def some(op: str, dtype: str, n: int = 100_000) -> np.ndarray:
    with np.errstate(over="ignore"):  # float32: huge samples become inf, on purpose
        return samples(op, n, seed=7).astype(dtype)


def specials(dtype: str) -> np.ndarray:
    with np.errstate(over="ignore"):
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
    check_ulps(op, dtype, ak.elemwise(op, x), x, bound(op, dtype, aot_lib.target))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("op", OPS)
def test_specials(op, dtype, no_jit, aot_lib):
    x = specials(dtype)
    check_specials(op, dtype, ak.elemwise(op, x), x, bound(op, dtype, aot_lib.target))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("op", OPS)
def test_vector_body_ulp_bound_and_strided_bits(op, dtype, vector_lib):
    """The vector body on this CPU's best target; a stride-2 row (the nd kernel's blocked
    loop, through stack blocks) gives the contiguous kernel's bits."""
    x = some(op, dtype)
    got = run(vector_lib, op, x)
    check_ulps(op, dtype, got, x, bound(op, dtype, vector_lib.target))
    wide = np.repeat(x, 2)
    strided = run(vector_lib, op, wide[::2])
    assert np.array_equal(strided.view(f"i{x.itemsize}"), got.view(f"i{x.itemsize}"))
    s = specials(dtype)
    check_specials(op, dtype, run(vector_lib, op, s), s, bound(op, dtype, vector_lib.target))


@pytest.mark.parametrize("op", ["softplus", "sigmoid", "erfc"])
def test_jit_gives_the_aot_bits(op, aot_lib, monkeypatch):
    """A strided input runs a JIT-compiled nd kernel (host CPU); a copy runs the prebuilt
    flat kernel (the session library's target): one body (the library target's choice of
    libm or vector code, ``sigmoid`` and ``erfc`` differ on the baseline), no FMA
    contraction, same bits."""
    monkeypatch.delenv("AOT_DISABLE_JIT", raising=False)
    x = samples(op, 20_000, seed=3)[::2]
    jit_res, where = ran(ak.elemwise, op, x)
    aot_res, where_aot = ran(ak.elemwise, op, x.copy())
    assert (where, where_aot) == ("jit", "aot")
    assert np.array_equal(jit_res.view(np.int64), aot_res.view(np.int64))
