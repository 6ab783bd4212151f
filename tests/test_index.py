"""take / inc / put (``x[idx]``, ``np.add.at``, ``x[idx] = y``) against NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from reference import ran

from aotkernels.families import index

DATA = ["float64", "float32", "int64", "int32"]
SHAPES = [(7,), (7, 3), (7, 2, 3), (5, 1, 2, 3)]
rng = np.random.default_rng(3)


def _data(shape, dtype) -> np.ndarray:
    x = rng.normal(size=shape) * 10
    return x.astype(dtype)


def _indices(n: int, dtype: str) -> np.ndarray:
    """Repeats, negatives (from the end) and both ends."""
    return np.array([0, n - 1, 1, 1, -1, -n, 2, 1], dtype=dtype)


def _views(x: np.ndarray) -> list[np.ndarray]:
    """x itself, reversed along axis 0, and strided along the last axis (rank >= 2)."""
    views = [x, x[::-1]]
    if x.ndim > 1:
        views.append(np.repeat(x, 2, axis=-1)[..., ::2])
    return views


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("idx_dtype", ["int64", "int32"])
@pytest.mark.parametrize("dtype", DATA)
def test_take_matches_numpy(no_jit, dtype, idx_dtype, shape):
    x = _data(shape, dtype)
    idx = _indices(shape[0], idx_dtype)
    for v in _views(x):
        for i in (idx, idx[::-2], np.repeat(idx, 2)[::2]):
            got, where = ran(index.take, v, i)
            np.testing.assert_array_equal(got, v[i])
            assert got.dtype == v.dtype and where == "aot"


def _ys(x: np.ndarray, n: int) -> list:
    """y as a full block, a broadcast row, a 0-d value and a reversed block."""
    full = _data((n, *x.shape[1:]), x.dtype)
    return [full, full[:1], np.asarray(full.flat[0]), full[::-1]]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("idx_dtype", ["int64", "int32"])
@pytest.mark.parametrize("dtype", DATA)
@pytest.mark.parametrize("op", ["inc", "put"])
def test_updates_match_numpy(no_jit, op, dtype, idx_dtype, shape):
    x = _data(shape, dtype)
    idx = _indices(shape[0], idx_dtype)
    for v in _views(x):
        for y in _ys(v, len(idx)):
            want = v.copy()
            if op == "inc":
                np.add.at(want, idx, y)
            else:
                want[idx] = y  # repeated indices: the last write wins, as in the kernel
            got, where = ran(getattr(index, op), v, idx, y)
            np.testing.assert_array_equal(got, want)
            assert not np.shares_memory(got, v) and where == "aot"
            mine = v.copy()
            assert getattr(index, op)(mine, idx, y, inplace=True) is mine
            np.testing.assert_array_equal(mine, want)


def test_nan_and_inf_pass_through(no_jit):
    x = np.array([np.nan, np.inf, -np.inf, 1.0])
    idx = np.array([3, 0, 1, 2, 0])
    np.testing.assert_array_equal(index.take(x, idx), x[idx])
    want = x.copy()
    np.add.at(want, idx, np.array([1.0, np.inf, 1.0, -np.inf, 2.0]))
    np.testing.assert_array_equal(index.inc(x, idx, np.array([1.0, np.inf, 1.0, -np.inf, 2.0])),
                                  want)


@pytest.mark.parametrize("bad", [7, -8, 2**40])
def test_an_index_out_of_range_raises_and_writes_nothing(no_jit, bad):
    x = np.arange(7.0)
    with pytest.raises(IndexError):
        index.take(x, np.array([1, bad]))
    for op in ("inc", "put"):
        mine = x.copy()
        with pytest.raises(IndexError):
            getattr(index, op)(mine, np.array([0, 1, bad]), 5.0, inplace=True)
        np.testing.assert_array_equal(mine, x)  # every index is checked before a write


def test_empty_indices_and_rows(no_jit):
    x = np.arange(12.0).reshape(4, 3)
    none = np.array([], dtype=np.int64)
    assert index.take(x, none).shape == (0, 3)
    np.testing.assert_array_equal(index.inc(x, none, 1.0), x)
    assert index.take(np.empty((0, 3)), none).shape == (0, 3)
    with pytest.raises(IndexError):
        index.take(np.empty((0, 3)), np.array([0]))


def test_outside_the_catalog_numpy_answers(no_jit):
    x = np.arange(10, dtype=np.int16)
    idx = np.array([3, 3, 9], dtype=np.uint8)
    got, where = ran(index.take, x, idx.astype(np.int64))
    np.testing.assert_array_equal(got, x[[3, 3, 9]])
    assert where == "numpy"  # int16 data is not in the catalog
    np.testing.assert_array_equal(index.take(np.arange(5.0), idx[:2]), [3.0, 3.0])
    with pytest.raises(TypeError):
        index.take(x, np.array([0.5]))
    with pytest.raises(ValueError):
        index.inc(np.arange(5.0), np.array([0, 1]), np.ones(3))  # y does not broadcast


@pytest.mark.parametrize("idx_dtype", ["int8", "int16", "uint8", "uint16", "uint32"])
def test_small_integer_indices_are_converted_for_the_kernels(no_jit, idx_dtype):
    """Index dtypes the kernels do not take (PyMC's int16 data under ``floatX=float32``)
    are converted to int64 by a recorded step, then the kernels run: NumPy's results, and
    ``IndexError`` past the end. uint64 is not converted (a value past int64 would become a
    valid negative index): NumPy answers and raises."""
    x = _data((7, 3), "float64")
    idx = np.array([0, 6, 1, 1, 2], idx_dtype)
    if np.dtype(idx_dtype).kind == "i":
        idx = np.append(idx, np.array([-1, -7], idx_dtype))
    got, where = ran(index.take, x, idx)
    np.testing.assert_array_equal(got, x[idx])
    assert where == "aot"
    y = _data((idx.shape[0], 3), "float64")
    want = x.copy()
    np.add.at(want, idx, y)
    np.testing.assert_array_equal(index.inc(x, idx, y), want)
    got, where = ran(index.take_points, x, (idx, idx % 3))
    np.testing.assert_array_equal(got, x[idx, idx % 3])
    assert where == "aot"
    with pytest.raises(IndexError):
        index.take(x, np.array([7], idx_dtype))
    huge = np.array([2 ** 63 + 1], "uint64")
    with pytest.raises(IndexError):
        index.take(x, huge)


@pytest.mark.parametrize("shape", [(6, 5), (4, 3, 2), (3, 2, 2, 2)], ids=str)
@pytest.mark.parametrize("idx_dtype", ["int64", "int32"])
@pytest.mark.parametrize("dtype", DATA)
def test_points_match_numpy(no_jit, dtype, idx_dtype, shape):
    """x[i0, i1, ...] and its updates, one index vector per dimension (``p[arange(n), y]``):
    repeated and negative points, a broadcast (length-1) vector, strided views."""
    x = _data(shape, dtype)
    base = [np.array([0, n - 1, -1, 1, 1, -n], dtype=idx_dtype) for n in shape]
    cases = [base, [base[0][:1], *[b[::-1] for b in base[1:]]], [np.repeat(b, 2)[::2]
                                                                  for b in base]]
    for v in _views(x):
        for idx in cases:
            want = v[tuple(idx)]
            got, where = ran(index.take_points, v, idx)
            np.testing.assert_array_equal(got, want)
            assert where == "aot"
            y = _data(want.shape, dtype)
            for op, y_ in (("inc_points", y), ("put_points", y), ("inc_points", y[:1])):
                ref = v.copy()
                if op == "inc_points":
                    np.add.at(ref, tuple(idx), y_)
                else:
                    ref[tuple(idx)] = y_
                got, where = ran(getattr(index, op), v, idx, y_)
                np.testing.assert_array_equal(got, ref)
                assert where == "aot"
                mine = v.copy()
                assert getattr(index, op)(mine, idx, y_, inplace=True) is mine
                np.testing.assert_array_equal(mine, ref)


def test_points_out_of_range_and_bad_vectors(no_jit):
    x = np.arange(12.0).reshape(3, 4)
    for bad in ([0, 3], [-4, 0]):
        with pytest.raises(IndexError):
            index.take_points(x, (np.array(bad), np.array([0, 1])))
        mine = x.copy()
        with pytest.raises(IndexError):
            index.inc_points(mine, (np.array([0, 1]), np.array(bad) + [0, 4]), 1.0,
                             inplace=True)
        np.testing.assert_array_equal(mine, x)
    with pytest.raises(ValueError):
        index.take_points(x, (np.array([0, 1]),))  # one vector per dimension
    with pytest.raises(ValueError):
        index.take_points(x, (np.array([0, 1]), np.array([0, 1, 2])))  # do not broadcast
    mixed = index.take_points(x, (np.array([0, 2], np.int32), np.array([3, 1])))
    np.testing.assert_array_equal(mixed, x[[0, 2], [3, 1]])
