"""Reductions against NumPy with PyTensor's dtypes: every op, dtype, rank and axis set."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_elemwise import sample

import aotkernels as ak
from aotkernels.kernels.reductions import REDUCTIONS
from aotkernels.kernels.scalar_ops import DTYPES

NUMPY = {"sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min, "all": np.all,
         "any": np.any}


def reference(op: str, x: np.ndarray, axis, keepdims=False) -> np.ndarray:
    acc, out = REDUCTIONS[op].dtypes(x.dtype.name)
    with np.errstate(all="ignore"):
        res = NUMPY[op](x.astype(acc), axis=axis, keepdims=keepdims)
    return np.asarray(res).astype(out)


def check(got: np.ndarray, want: np.ndarray, x: np.ndarray) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, want.dtype)
    if got.dtype.kind == "f":
        # sequential vs NumPy's pairwise summation: compare against the magnitude summed
        scale = np.sum(np.abs(np.nan_to_num(x.astype(np.float64), posinf=0, neginf=0)))
        tol = (1e-5 if got.dtype == np.float32 else 1e-12) * max(1.0, scale)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=tol, equal_nan=True)
    else:
        np.testing.assert_array_equal(got, want)


def values(op: str, dtype: str, shape, rng) -> np.ndarray:
    x = sample(dtype, shape, rng, specials=op in ("max", "min", "all", "any"))
    if op == "prod" and np.dtype(dtype).kind in "iu":
        x = (x % 3).astype(dtype)  # keep integer products in range: no overflow to compare
    if op == "prod" and np.dtype(dtype).kind == "f":
        x = np.where(np.isfinite(x), np.clip(x, -2, 2), 1).astype(dtype)
    return x


CASES = [(op, d) for op in REDUCTIONS for d in DTYPES]


@pytest.mark.parametrize("op,dtype", CASES, ids=[f"{o}-{d}" for o, d in CASES])
def test_every_axis_set_at_every_rank(op, dtype, no_jit):
    rng = np.random.default_rng(len(op) * 31 + len(dtype))
    for ndim in range(1, 5):
        shape = (3, 4, 2, 5)[:ndim]
        x = values(op, dtype, shape, rng)
        views = [x, x[..., ::-1], np.broadcast_to(x[:1], x.shape)]  # reversed, stride 0
        for axes in itertools.chain.from_iterable(
                itertools.combinations(range(ndim), k) for k in range(ndim + 1)):
            for v in views:
                check(ak.reduce(op, v, axis=axes), reference(op, v, axes), v)
        check(ak.reduce(op, x), reference(op, x, None), x)
        check(ak.reduce(op, x, axis=-1, keepdims=True), reference(op, x, -1, True), x)


def test_float32_sums_accumulate_in_float64(no_jit):
    x = np.full(10_000_000 // 10, 0.1, np.float32)
    got = ak.reduce("sum", x)
    assert got.dtype == np.float32
    assert got == np.float32(np.sum(x.astype(np.float64)))


def test_empty_reductions(no_jit):
    e = np.empty((0, 3))
    check(ak.reduce("sum", e, axis=0), np.zeros(3), e)
    check(ak.reduce("prod", e, axis=0), np.ones(3), e)
    assert ak.reduce("max", e, axis=1).shape == (0,)  # nothing reduced over an empty axis
    with pytest.raises(ValueError, match="no identity"):
        ak.reduce("max", e, axis=0)
    with pytest.raises(ValueError, match="no identity"):
        ak.reduce("min", e)
    assert ak.reduce("all", e) and not ak.reduce("any", e)


def test_nan_propagates_through_max_and_min(no_jit):
    x = np.array([[1.0, np.nan, 3.0], [4.0, 5.0, 6.0]])
    check(ak.reduce("max", x, axis=1), np.array([np.nan, 6.0]), x)
    check(ak.reduce("min", x, axis=0), np.array([1.0, np.nan, 3.0]), x)


def test_bad_axes_raise(no_jit):
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match="out of bounds"):
        ak.reduce("sum", x, axis=2)
    with pytest.raises(ValueError, match="repeated"):
        ak.reduce("sum", x, axis=(0, -2))
    with pytest.raises(ValueError, match="unknown reduction"):
        ak.reduce("mean", x)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_random_layouts(data, no_jit):
    op = data.draw(st.sampled_from(list(REDUCTIONS)))
    dtype = data.draw(st.sampled_from(list(DTYPES)))
    ndim = data.draw(st.integers(1, 4))
    shape = tuple(data.draw(st.lists(st.integers(1, 5), min_size=ndim, max_size=ndim)))
    steps = tuple(data.draw(st.sampled_from([1, 2, -1])) for _ in shape)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    base = values(op, dtype, tuple(abs(s) * n for s, n in zip(steps, shape)), rng)
    x = base[tuple(slice(None, None, s) for s in steps)]
    axes = tuple(sorted(data.draw(st.sets(st.integers(0, ndim - 1)))))
    check(ak.reduce(op, x, axis=axes), reference(op, x, axes), x)
