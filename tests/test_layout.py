"""Dimension collapsing: the geometry a kernel sees addresses exactly the same elements."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aotkernels.layout import broadcast_strides, collapse, is_flat


def addresses(shape, strides):
    idx = np.indices(shape).reshape(len(shape), -1) if shape else np.zeros((0, 1), int)
    return (np.asarray(strides)[:, None] * idx).sum(axis=0) if shape else np.zeros(1, int)


def test_contiguous_collapses_to_flat():
    a = np.ones((2, 3, 4))
    shape, strides = collapse(a.shape, [a.strides, a.strides])
    assert shape == (24,) and is_flat(shape, strides, [8, 8])


def test_row_broadcast_stays_2d():
    a, row = np.ones((5, 4)), np.ones(4)
    shape, strides = collapse(a.shape, [broadcast_strides(row, a.shape), a.strides])
    assert shape == (5, 4) and strides == [(0, 8), (32, 8)]


def test_scalar_and_size_one_dims():
    assert collapse((), [()]) == ((1,), [(0,)])
    assert collapse((1, 1), [(8, 8)]) == ((1,), [(0,)])


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_collapse_preserves_addresses(data):
    ndim = data.draw(st.integers(1, 5))
    shape = tuple(data.draw(st.lists(st.integers(1, 4), min_size=ndim, max_size=ndim)))
    ops = data.draw(st.integers(1, 3))
    strides = [tuple(data.draw(st.sampled_from([0, 8, -8, 16, 24, 64, 96]))
                     for _ in shape) for _ in range(ops)]
    # make some operands contiguous so that merging actually happens
    if data.draw(st.booleans()):
        c = np.empty(shape).strides
        strides[0] = c
    cshape, cstrides = collapse(shape, strides)
    assert int(np.prod(cshape)) == int(np.prod(shape))
    for full, col in zip(strides, cstrides):
        np.testing.assert_array_equal(addresses(shape, full), addresses(cshape, col))
