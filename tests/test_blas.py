"""Matrix products against NumPy for every BLAS binding (NumPy's OpenBLAS, SciPy's Fortran
BLAS, the kernels' own loops), with row- and column-major, strided, reversed, broadcast,
empty and size-1 operands and NaN."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from reference import ran

from aotkernels.families import blas as linalg
from aotkernels.library import bind_blas

BINDINGS = ["numpy", "scipy", "loop"]
DTYPES = ["float64", "float32"]


@pytest.fixture(params=BINDINGS)
def blas(request, no_jit):
    bind_blas(no_jit, request.param)
    yield request.param
    bind_blas(no_jit)


def tol(dtype: str) -> dict:
    return {"rtol": 1e-4, "atol": 1e-4} if dtype == "float32" else {"rtol": 1e-11, "atol": 1e-11}


def layouts(m: np.ndarray) -> list[np.ndarray]:
    """C, Fortran, a strided view, a reversed view and a stride-0 broadcast of ``m``."""
    big = np.zeros((m.shape[0] * 2, m.shape[1] * 3), m.dtype)
    big[::2, ::3] = m
    return [m, np.asfortranarray(m), big[::2, ::3], m[::-1, ::-1][::-1, ::-1],
            m[::-1].copy()[::-1], np.broadcast_to(m[:1], m.shape)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 3, 4), (1, 7, 1), (6, 1, 2), (0, 3, 4), (3, 0, 4),
                                   (2, 5, 0), (64, 33, 17)])
def test_dot_of_matrices(blas, dtype, shape):
    m, k, n = shape
    rng = np.random.default_rng(m * 100 + k * 10 + n)
    a = rng.normal(size=(m, k)).astype(dtype)
    b = rng.normal(size=(k, n)).astype(dtype)
    for av in layouts(a):
        for bv in layouts(b):
            got, where = ran(linalg.dot, av, bv)
            assert got.dtype == dtype and got.shape == (m, n)
            np.testing.assert_allclose(got, np.dot(av, bv), **tol(dtype))
    assert where == "aot"


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_accumulates_and_beta_zero_ignores_nan(blas, dtype):
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(4, 6)).astype(dtype), rng.normal(size=(6, 5)).astype(dtype)
    for c0 in [rng.normal(size=(4, 5)), np.asfortranarray(rng.normal(size=(4, 5)))]:
        c0 = c0.astype(dtype)
        c = c0.copy(order="K")
        assert linalg.gemm(2.0, a, b, -0.5, c) is c
        np.testing.assert_allclose(c, 2 * a @ b - 0.5 * c0, **tol(dtype))
    c = np.full((4, 5), np.nan, dtype)
    np.testing.assert_allclose(linalg.gemm(1.0, a, b, 0.0, c), a @ b, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemv_and_vector_dots(blas, dtype):
    rng = np.random.default_rng(4)
    a = rng.normal(size=(7, 5)).astype(dtype)
    x = rng.normal(size=10).astype(dtype)
    for av in layouts(a):
        for xv in [x[:5], x[::2], x[::-2], np.broadcast_to(x[:1], (5,))]:
            np.testing.assert_allclose(linalg.dot(av, xv), av @ xv, **tol(dtype))
            np.testing.assert_allclose(linalg.dot(xv, av.T), xv @ av.T, **tol(dtype))
            np.testing.assert_allclose(linalg.dot(xv, xv), xv @ xv, **tol(dtype))
    y0 = rng.normal(size=7).astype(dtype)
    y = y0.copy()
    linalg.gemv(0.5, a, x[:5], 2.0, y)
    np.testing.assert_allclose(y, 0.5 * a @ x[:5] + 2 * y0, **tol(dtype))
    assert np.isnan(linalg.dot(np.array([np.nan, 1], dtype), np.ones(2, dtype)))
    assert linalg.dot(np.zeros(0, dtype), np.zeros(0, dtype)) == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_batched_matmul(blas, dtype):
    rng = np.random.default_rng(5)
    a = rng.normal(size=(3, 4, 6)).astype(dtype)
    b = rng.normal(size=(3, 6, 2)).astype(dtype)
    for av, bv in [(a, b), (a[:1], b), (a.transpose(0, 2, 1).copy().transpose(0, 2, 1), b),
                   (a[:, ::-1], b[:, ::-1, ::2])]:
        np.testing.assert_allclose(linalg.matmul(av, bv), np.matmul(av, bv), **tol(dtype))
    assert linalg.matmul(a[:0], b[:0]).shape == (0, 4, 2)


def test_mixed_and_integer_operands(no_jit):
    a = np.arange(6).reshape(2, 3)
    got, where = ran(linalg.dot, a, a.T)
    np.testing.assert_array_equal(got, a @ a.T)  # integers: NumPy computes
    assert where == "numpy"
    got, where = ran(linalg.dot, a.astype(np.float32), a.T.astype(np.float64))  # upcast,
    assert got.dtype == np.float64 and where == "aot"                           # then a kernel


def test_output_overlapping_an_input_is_safe(no_jit):
    a = np.random.default_rng(6).normal(size=(4, 4))
    want = a @ a + a
    assert np.allclose(linalg.gemm(1.0, a, a, 1.0, a), want)


def test_wrong_shapes_and_outputs_are_refused(no_jit):
    with pytest.raises(ValueError, match="not aligned"):
        linalg.dot(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="shape"):
        linalg.gemm(1.0, np.ones((2, 3)), np.ones((3, 2)), 0.0, np.ones((3, 3)))
    with pytest.raises(ValueError, match="read-only"):
        c = np.ones((2, 2))
        c.flags.writeable = False
        linalg.gemm(1.0, np.ones((2, 3)), np.ones((3, 2)), 0.0, c)
    with pytest.raises(TypeError, match="dtype"):
        linalg.gemv(1.0, np.ones((2, 3)), np.ones(3), 0.0, np.ones(2, np.float32))


BLAS_ENV = r"""
import json, numpy as np, aotkernels as ak
a = np.arange(12.0).reshape(3, 4)
ok = bool(np.allclose(ak.dot(a, a.T), a @ a.T))
print(json.dumps({"blas": ak.default_library().blas, "ok": ok}))
"""


@pytest.mark.parametrize("value,expect", [("loop", "none"), ("scipy", "scipy"),
                                          ("numpy", "numpy"), ("bogus", "numpy")])
def test_aot_blas_chooses_the_binding(aot_lib, value, expect):
    env = dict(os.environ, AOT_LIBRARY_DIR=str(aot_lib.directory), AOT_BLAS=value)
    res = subprocess.run([sys.executable, "-c", BLAS_ENV], env=env, capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["ok"] and report["blas"].startswith(expect), report
    assert ("AOT_BLAS=bogus" in res.stderr) == (value == "bogus")
