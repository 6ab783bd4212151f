"""Ops along an axis against NumPy, computed the way PyTensor does: every op and dtype,
ranks 0-4, single axes, axis sets and None, reversed, strided, transposed and broadcast
views, empty and size-1 dimensions, NaN and infinities."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from reference import ran
from test_elemwise import sample

import aotkernels as ak
from aotkernels.families import axis as along
from aotkernels.kernels.axis_ops import AXIS_OPS


def _moved(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """The axes last and merged, as PyTensor's Argmax.perform arranges them."""
    kept = [d for d in range(x.ndim) if d not in axes]
    t = x.transpose(*kept, *axes)
    return t.reshape(*t.shape[: len(kept)], int(np.prod(t.shape[len(kept):])))


def _f64_sum(x: np.ndarray, axis) -> np.ndarray:  # PyTensor's sum: float64 accumulator
    return x.sum(axis=axis, keepdims=True, dtype=np.float64).astype(x.dtype)


def reference(op: str, axes: tuple[int, ...], *xs: np.ndarray) -> np.ndarray:
    x = xs[0]
    with np.errstate(all="ignore"):
        if op in ("argmax", "argmin"):
            return getattr(np, op)(_moved(x, axes), axis=-1).astype(np.int64)
        if op in ("cumsum", "cumprod"):
            return getattr(np, op)(x, axis=axes[0], dtype=x.dtype)
        if op == "sort":
            return np.sort(x, axis=axes[0], kind="stable")
        if op == "argsort":
            return np.argsort(x, axis=axes[0], kind="stable")
        m = x.max(axis=axes, keepdims=True, initial=-np.inf)
        if op == "softmax":
            e = np.exp(x - m)
            return e / _f64_sum(e, axes)
        if op == "log_softmax":
            return (x - m) - np.log(_f64_sum(np.exp(x - m), axes))
        if op == "logsumexp":
            shift = np.where(np.isfinite(m), m, 0).astype(x.dtype)
            res = np.log(_f64_sum(np.exp(x - shift), axes)) + shift
            return np.squeeze(res, axis=axes).astype(x.dtype)
        dy, sm = xs
        d = dy * sm
        return d - sm * _f64_sum(d, axes)


def check(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, want.dtype,
                                                                 got.shape, want.shape)
    if got.dtype.kind == "f":
        tol = 2e-6 if got.dtype == np.float32 else 1e-13
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol, equal_nan=True)
    else:
        np.testing.assert_array_equal(got, want)


def views(x: np.ndarray) -> list[np.ndarray]:
    """The array, reversed along its last axis, transposed, and broadcast along the first."""
    out = [x]
    if x.ndim:
        out += [x[..., ::-1], x.T, np.broadcast_to(x[:1], x.shape)]
    return out


def inputs(op: str, dtype: str, shape, rng) -> list[np.ndarray]:
    x = sample(dtype, shape, rng, specials=op in ("argmax", "argmin", "logsumexp", "softmax"))
    if op == "cumprod":
        x = (x % 3).astype(dtype) if np.dtype(dtype).kind in "iu" else np.clip(x, -2, 2)
    if op == "softmax_grad":
        return [x, np.abs(sample(dtype, shape, rng, specials=False)) / 10]
    return [x]


def axis_sets(ndim: int, op: str):
    if op in ("cumsum", "cumprod", "sort", "argsort"):
        return [(d,) for d in range(ndim)]
    sets = itertools.chain.from_iterable(
        itertools.combinations(range(ndim), k) for k in range(1, ndim + 1))
    return list(sets)


CASES = [(op, d) for op, spec in AXIS_OPS.items() for d in spec.dtypes]


@pytest.mark.parametrize("op,dtype", CASES, ids=[f"{o}-{d}" for o, d in CASES])
def test_every_axis_set_at_every_rank(op, dtype, no_jit):
    rng = np.random.default_rng(len(op) * 7 + len(dtype))
    for ndim in range(1, 5):
        xs = inputs(op, dtype, (3, 4, 2, 5)[:ndim], rng)
        for axes in axis_sets(ndim, op):
            for vs in zip(*[views(x) for x in xs]):
                ax = axes if len(axes) > 1 else axes[0]
                check(along.along(op, *vs, axis=ax), reference(op, axes, *vs))


@pytest.mark.parametrize("op", list(AXIS_OPS))
def test_negative_axis_none_and_rank_0(op, no_jit):
    rng = np.random.default_rng(1)
    xs = inputs(op, "float64", (3, 4), rng)
    check(along.along(op, *xs, axis=-1), reference(op, (1,), *xs))
    if op in ("cumsum", "cumprod", "sort", "argsort"):  # None flattens, as in NumPy
        check(along.along(op, *xs, axis=None), reference(op, (0,), *[x.ravel() for x in xs]))
    else:
        check(along.along(op, *xs, axis=None), reference(op, (0, 1), *xs))
        scalars = [np.asarray(x[0, 0]) for x in xs]
        got = along.along(op, *scalars, axis=None)
        assert got.shape == () and got.dtype == reference(op, (0,), *[
            s.reshape(1) for s in scalars]).dtype.type(0).dtype


@pytest.mark.parametrize("op", list(AXIS_OPS))
def test_empty_and_size_one_dimensions(op, no_jit):
    spec = AXIS_OPS[op]
    for shape, axis in [((0, 3), 1), ((3, 1), 1), ((1, 3), 0), ((2, 0, 3), 2)]:
        xs = [np.ones(shape)] * spec.nin
        check(along.along(op, *xs, axis=axis), reference(op, (axis,), *xs))
    xs = [np.ones((2, 0))] * spec.nin
    if spec.needs_max:  # argmax of an empty axis raises in NumPy and PyTensor
        for x in (np.ones((2, 0)), np.ones((0, 0)), np.ones(0)):
            with pytest.raises(ValueError, match="empty"):
                along.along(op, *[x] * spec.nin, axis=-1)
    elif spec.reduces:
        check(along.along(op, *xs, axis=1), np.full(2, spec.empty))
    else:
        assert along.along(op, *xs, axis=1).shape == (2, 0)


def sorting_sample(dtype: str, rng) -> np.ndarray:
    """(6, 33, 5) values with, for floats, zeros of either sign and NaNs of two payloads
    scattered among them: what a stable sort must keep in input order."""
    x = sample(dtype, (6, 33, 5), rng, specials=True)
    if x.dtype.kind == "f":
        flat = x.reshape(-1)
        flat[::7] = 0.0
        flat[3::11] = -0.0
        flat[5::13] = np.nan
        flat[6::17] = -np.array(np.nan, dtype)  # another NaN's bits
    return x


@pytest.mark.parametrize("dtype", AXIS_OPS["sort"].dtypes)
def test_sort_is_numpys_stable_sort_to_the_bit(dtype, no_jit):
    """NaNs last; zeros of either sign and NaNs of several payloads in their input order
    (a stable sort's); every axis, strided and reversed rows, ``axis=None``; long rows."""
    rng = np.random.default_rng(7)
    x = sorting_sample(dtype, rng)
    for v in (x, x[:, ::-2], x.transpose(2, 0, 1)):
        for axis in (0, 1, 2, -1, None):
            want = np.sort(v, axis=axis, kind="stable")
            got = ak.sort(v, axis=axis)
            assert got.dtype == want.dtype and got.shape == want.shape
            assert got.tobytes() == want.tobytes(), (dtype, axis)
    big = sample(dtype, (5000,), rng, specials=True)
    assert ak.sort(big).tobytes() == np.sort(big, kind="stable").tobytes()


@pytest.mark.parametrize("dtype", AXIS_OPS["argsort"].dtypes)
def test_argsort_is_numpys_stable_argsort(dtype, no_jit):
    """Indices of NumPy's stable argsort on every axis, strided and reversed rows,
    ``axis=None``: ties (repeated values, zeros of either sign, NaNs of several payloads)
    in their input order, NaNs last; long rows."""
    rng = np.random.default_rng(11)
    x = sorting_sample(dtype, rng)
    if x.dtype.kind == "f":
        x.reshape(-1)[8::9] = 1.5  # ties of ordinary values too
    for v in (x, x[:, ::-2], x.transpose(2, 0, 1)):
        for axis in (0, 1, 2, -1, None):
            want = np.argsort(v, axis=axis, kind="stable")
            got, where = ran(ak.argsort, v, axis=axis)
            assert got.dtype == np.int64 and got.shape == want.shape and where == "aot"
            np.testing.assert_array_equal(got, want, err_msg=f"{dtype} {axis}")
    big = sample(dtype, (5000,), rng, specials=True)
    np.testing.assert_array_equal(ak.argsort(big), np.argsort(big, kind="stable"))
    assert ak.argsort(np.zeros((3, 0), dtype)).shape == (3, 0)


def test_nan_wins_argmax_and_argmin_like_numpy(no_jit):
    x = np.array([[1.0, np.nan, 5.0, np.nan], [np.inf, 2.0, -np.inf, 0.0]])
    np.testing.assert_array_equal(along.argmax(x, axis=1), [1, 0])
    np.testing.assert_array_equal(along.argmin(x, axis=1), [1, 2])


def test_logsumexp_with_infinities(no_jit):
    x = np.array([[-np.inf, -np.inf], [np.inf, 1.0], [np.nan, 1.0], [1000.0, 1000.0]])
    np.testing.assert_array_equal(along.logsumexp(x, axis=1),
                                  [-np.inf, np.inf, np.nan, 1000.0 + np.log(2.0)])


def test_rank_above_the_catalog_is_jit_compiled(aot_lib, jit_cache):
    x = np.random.default_rng(2).normal(size=(2, 3, 2, 3, 4))[:, ::2, :, ::2]  # 5 dims left
    check(along.softmax(x, axis=4), reference("softmax", (4,), x))


def test_wrong_operands_are_refused(aot_lib):
    with pytest.raises(TypeError, match="does not take"):
        along.softmax(np.arange(3), axis=0)
    with pytest.raises(TypeError, match="share a dtype"):
        along.softmax_grad(np.ones(3), np.ones(3, np.float32), axis=0)
    with pytest.raises(ValueError, match="out of bounds"):
        along.argmax(np.ones(3), axis=1)
    with pytest.raises(ValueError, match="unknown axis op"):
        along.along("median", np.ones(3))
