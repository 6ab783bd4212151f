"""Hostile operands never crash the interpreter and never give wrong numbers.

The property search (``hostile_cases.py``: wrong dtypes, ranks and shapes, bad ``out``
buffers, foreign byte order, misaligned data, huge, negative and zero strides, empty and
rank-0 arrays, Python scalars, lists and junk, PyTensor functions fed all of those) runs in
a child interpreter: a kernel that crashed it would show here as a negative return code,
with the case that did it, instead of killing the test runner.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from child import run_cases

import aotkernels as ak

HERE = Path(__file__).resolve().parent


def test_hostile_operands_in_a_child_interpreter(aot_lib, tmp_path):
    report = run_cases(HERE / "hostile_cases.py", tmp_path,
                       AOT_LIBRARY_DIR=str(aot_lib.directory), AOT_DISABLE_JIT="1",
                       PYTENSOR_FLAGS=f"base_compiledir={tmp_path / 'pytensor'}")
    assert report["total"] >= 3000


# -- what the search found, one regression test each ----------------------------------------

def test_rank0_foreign_byte_order_keeps_rank0(no_jit):
    """Converting a big-endian 0-d input made it shape (1,) (np.ascontiguousarray)."""
    x = np.array(2.0, ">f8")
    assert ak.elemwise("exp", x).shape == ()
    assert ak.elemwise("exp", x, out=np.empty(())) == np.exp(2.0)


def test_self_overlapping_out_gets_numpys_result(no_jit):
    """A stride-0 ``out`` used to be written element after element: in-place exp applied
    exp up to 12 times. Now, as NumPy: computed first, then copied in."""
    from numpy.lib.stride_tricks import as_strided

    mine, theirs = np.ones(4), np.ones(4)
    a, b = (as_strided(m, shape=(3, 4), strides=(0, 8)) for m in (mine, theirs))
    ak.elemwise("exp", a, out=a)
    np.exp(b, out=b)
    # exp once is within an ulp of NumPy's (kernels/vecmath.py); twice would be exp(e)
    np.testing.assert_allclose(mine, theirs, rtol=4.5e-16)


@pytest.mark.parametrize("dtype", ["complex128", "float16", "object", "datetime64[s]"])
def test_cast_to_a_dtype_outside_the_abi_is_a_type_error(dtype, no_jit):
    """It was a KeyError from the symbol table."""
    with pytest.raises(TypeError, match="unsupported result dtype"):
        ak.cast(np.arange(3.0), dtype)


def test_cast_to_foreign_byte_order_needs_no_kernel(no_jit):
    """``>f8`` from float64 looked for an f8 -> f8 cast kernel (none ships: it is a copy)."""
    got = ak.cast(np.arange(3.0), ">f8")
    assert got.dtype == np.float64 and got.tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("axis", [1.0, [1.5], True, (0, np.True_)])
def test_non_integer_axes_are_type_errors(axis, no_jit):
    """A float axis was truncated and a bool one taken as 1; NumPy refuses both."""
    with pytest.raises(TypeError):
        ak.reduce("sum", np.ones((2, 3)), axis=axis)


def test_max_over_an_empty_axis_raises_even_if_the_result_is_empty(no_jit):
    """(0, 0) max over axis 1 returned an empty array; NumPy and PyTensor raise."""
    with pytest.raises(ValueError, match="no identity"):
        ak.reduce("max", np.empty((0, 0)), axis=1)
    assert ak.reduce("max", np.empty((0, 3)), axis=1).shape == (0,)  # nothing reduced empty


def test_mode_aot_refuses_runtime_broadcasting_like_pytensor(no_jit):
    """``x + y`` of two vectors silently broadcast a length-1 ``x`` (NumPy's rule); every
    PyTensor mode raises, since the type does not say the dimension broadcasts."""
    import pytensor
    import pytensor.tensor as pt

    import aotkernels.pytensor  # noqa: F401

    x, y = pt.vector("x"), pt.vector("y")
    f = pytensor.function([x, y], x + y, mode="AOT")
    with pytest.raises(ValueError, match="Runtime broadcasting not allowed"):
        f(np.ones(1), np.ones(3))
    np.testing.assert_array_equal(f(np.ones(3), np.ones(3)), np.full(3, 2.0))
