"""Join and alloc against NumPy: every dtype, axes, upcasts, strided pieces and outputs,
empty pieces; and elementwise kernels writing straight into a join's slices."""

from __future__ import annotations

import numpy as np
import pytest
from test_elemwise import sample

import aotkernels as ak
from aotkernels import assemble
from aotkernels.kernels.scalar_ops import DTYPES


@pytest.mark.parametrize("dtype", DTYPES)
def test_join_along_every_axis(dtype, no_jit):
    rng = np.random.default_rng(len(dtype))
    for ndim in range(1, 5):
        shape = (3, 2, 4, 2)[:ndim]
        for axis in range(-ndim, ndim):
            pieces = []
            for n in (2, 0, 3):
                s = list(shape)
                s[axis] = n
                pieces.append(sample(dtype, tuple(s), rng))
            pieces[2] = np.flip(pieces[2], axis=axis)  # a negative-stride piece
            got = assemble.join(axis, *pieces)
            np.testing.assert_array_equal(got, np.concatenate(pieces, axis=axis))
            assert got.dtype == dtype


def test_join_upcasts_like_pytensor(no_jit):
    a, b = np.arange(3, dtype=np.int8), np.linspace(0, 1, 2, dtype=np.float32)
    got = assemble.join(0, a, b)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.concatenate([a, b]).astype(np.float32))


def test_join_into_a_strided_output(no_jit):
    out = np.zeros((4, 10))[:, ::2]
    a, b = np.ones((4, 2)), np.full((4, 3), 2.0)
    assert assemble.join(1, a, b, out=out) is out
    np.testing.assert_array_equal(out, np.concatenate([a, b], axis=1))


def test_elementwise_results_written_straight_into_the_join(no_jit):
    x, y = np.linspace(-1, 1, 6).reshape(2, 3), np.linspace(0, 2, 4).reshape(2, 2)
    out = np.empty((2, 5))
    dx, dy = assemble.slices(out, 1, [3, 2])
    ak.elemwise("exp", x, out=dx)
    ak.elemwise("add", y, 1.0, out=dy)
    np.testing.assert_allclose(out, np.concatenate([np.exp(x), y + 1], axis=1))


def test_join_refuses_bad_pieces(aot_lib):
    with pytest.raises(ValueError, match="differ"):
        assemble.join(0, np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="rank"):
        assemble.join(0, np.ones(2), np.ones((2, 2)))
    with pytest.raises(ValueError, match="out of bounds"):
        assemble.join(2, np.ones((2, 2)))
    with pytest.raises(ValueError, match="add up"):
        assemble.slices(np.ones((2, 5)), 1, [2, 2])


@pytest.mark.parametrize("dtype", DTYPES)
def test_alloc_broadcasts_a_value(dtype, no_jit):
    v = sample(dtype, (3,), np.random.default_rng(0))
    np.testing.assert_array_equal(assemble.alloc(v, (2, 4, 3)), np.broadcast_to(v, (2, 4, 3)))
    np.testing.assert_array_equal(assemble.alloc(v[0], (5,)), np.full(5, v[0]))
    assert assemble.alloc(v, (0, 3)).shape == (0, 3)
    got = assemble.alloc(np.float64(1.5), (2, 2), dtype=np.float32)
    assert got.dtype == np.float32 and (got == 1.5).all()
