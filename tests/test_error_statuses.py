"""Kernel error statuses, each against PyTensor running the same graph.

A kernel reports what its scalar body cannot compute with a non-zero status, which the
runtime raises (``ScalarOp.raises``). Where PyTensor's own modes disagree, aotkernels picks
one and says so. Measured here with PyTensor 3.0.7 (2026-11-22), Python mode live in these
tests, C (CVM) and NUMBA modes once by hand (compiling them cold would take the suite
~20 s, and two of the cases kill those interpreters):

| case | Python (FAST_COMPILE) | C | NUMBA | aotkernels |
|---|---|---|---|---|
| integer ``x // 0``, ``x % 0`` | 0 (NumPy) | ZeroDivisionError | 0 | ZeroDivisionError (C) |
| ``INT64_MIN // -1``, ``% -1`` | INT64_MIN, 0 | SIGFPE | 0, SIGFPE | INT64_MIN, 0 (Python) |
| integer ``x ** -1`` | ValueError | 0 | 0 | ValueError (Python) |
| float NaN -> int | ValueError | INT_MIN / 0 | INT_MIN / 0 | CastError (Python) |
| float inf, 1e20, 300 -> int8 | OverflowError | 0, 0, 44 | 0, 0, 44 | CastError (Python) |
| int 300 -> int8 | OverflowError | 44 (wraps) | 44 | 44 (C, NUMBA, NumPy) |
| float ``x // 0.0``, ``x % 0.0`` | inf / nan | inf / nan | inf / nan | inf / nan |

``CastError`` subclasses both ``ValueError`` and ``OverflowError``, so code written against
the Python mode catches it either way. Before it, a float -> int8 cast of 300.0 gave 127 in
the vectorised loop and 44 in its scalar tail: the same value, two answers. An integer
narrowing cast is modular in C, NUMBA and NumPy (defined, not an error), so it wraps here.
Out-of-range indices: no kernel family of this version takes indices (argmax, take, ... are
not in it yet), so there is no such status to test.
"""

from __future__ import annotations

import numpy as np
import pytest

import aotkernels as ak
from aotkernels.kernels.scalar_ops import CastError

pytensor = pytest.importorskip("pytensor")
pt = pytest.importorskip("pytensor.tensor")
import aotkernels.pytensor  # noqa: E402, F401 - registers mode "AOT"

INT_DTYPES = ["int64", "int32", "int8", "uint8"]


def both_modes(inputs, output):
    """The graph compiled in mode AOT and in PyTensor's Python mode."""
    return (pytensor.function(inputs, output, mode="AOT"),
            pytensor.function(inputs, output, mode="FAST_COMPILE"))


def outcome(fn, *args):
    """The result, or the exception (not raised) a call gives."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - compared by the caller
        return exc


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_integer_division_by_zero(dtype, no_jit):
    x, y = pt.vector("x", dtype=dtype), pt.vector("y", dtype=dtype)
    aot, py = both_modes([x, y], x // y)
    a, b = np.array([7, 8, 9], dtype), np.array([2, 0, 1], dtype)
    assert isinstance(outcome(aot, a, b), ZeroDivisionError)  # as the C backend
    assert outcome(py, a, b).tolist() == [3, 0, 9]  # Python mode: NumPy's 0 (the table)
    assert aot(a, np.array([2, 3, 1], dtype)).tolist() == [3, 2, 9]


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_integer_modulo_by_zero(dtype, no_jit):
    x, y = pt.vector("x", dtype=dtype), pt.vector("y", dtype=dtype)
    aot, py = both_modes([x, y], x % y)
    a, b = np.array([7, 8, 9], dtype), np.array([2, 0, 4], dtype)
    assert isinstance(outcome(aot, a, b), ZeroDivisionError)
    assert outcome(py, a, b).tolist() == [1, 0, 1]


def test_int_min_divided_by_minus_one_wraps_like_the_python_mode(no_jit):
    """The hardware traps (SIGFPE: C and NUMBA modes die); the kernel wraps, as NumPy."""
    x, y = pt.lvector("x"), pt.lvector("y")
    lo = np.iinfo(np.int64).min
    a, b = np.array([lo, lo, 7, -7]), np.array([-1, 1, -1, -1])
    for expr in (x // y, x % y):
        aot, py = both_modes([x, y], expr)
        np.testing.assert_array_equal(aot(a, b), py(a, b))


def test_negative_integer_power_raises_like_the_python_mode(no_jit):
    x, y = pt.lvector("x"), pt.lvector("y")
    aot, py = both_modes([x, y], x**y)
    a, b = np.array([2, 3]), np.array([1, -1])
    mine, theirs = outcome(aot, a, b), outcome(py, a, b)
    assert isinstance(mine, ValueError) and isinstance(theirs, ValueError)
    np.testing.assert_array_equal(aot(a, np.array([3, 0])), [8, 1])


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e20, -1e20])
def test_nan_and_infinite_floats_cast_to_integers_raise(dtype, bad, no_jit):
    x = pt.dvector("x")
    aot, py = both_modes([x], pt.cast(x, dtype))
    v = np.array([1.0, bad, 2.0])
    mine, theirs = outcome(aot, v), outcome(py, v)
    assert isinstance(mine, CastError), mine
    assert isinstance(theirs, (ValueError, OverflowError)) and isinstance(mine, type(theirs))


@pytest.mark.parametrize("dtype,bad,edge", [
    ("int8", 128.0, [-128.9, 127.9]), ("int8", -129.0, [-128.0, 127.0]),
    ("uint8", -1.0, [-0.9, 255.9]), ("uint8", 256.0, [0.0, 255.0]),
    ("int32", 2.0**31, [-(2.0**31), 2.0**31 - 0.5]),
    ("int64", 2.0**63, [-(2.0**63), 2.0**63 - 1024]),
])
def test_out_of_range_floats_cast_to_integers_raise_at_every_position(dtype, bad, edge,
                                                                     no_jit):
    """The vectorised body and its scalar tail agree: every position raises, and the last
    representable values (truncated toward zero) still convert."""
    ok = np.array(edge * 10)
    np.testing.assert_array_equal(ak.cast(ok, dtype), ok.astype(dtype))
    for i in range(len(ok)):
        v = ok.copy()
        v[i] = bad
        with pytest.raises(CastError):
            ak.cast(v, dtype)
    x = pt.dvector("x")
    _, py = both_modes([x], pt.cast(x, dtype))
    assert isinstance(outcome(py, np.array([bad])), OverflowError)


def test_float32_and_strided_casts_check_too(no_jit):
    v = np.array([1.5, np.nan, 3.0], np.float32)
    with pytest.raises(CastError):
        ak.cast(v, "int32")
    strided = np.array([1.0, 9.0, 2.0, np.inf])[::2]  # the inf is skipped: not an element
    np.testing.assert_array_equal(ak.cast(strided, "int32"), [1, 2])
    with pytest.raises(CastError):
        ak.cast(np.array([[1.0, 2.0], [3.0, np.nan]]).T, "int32")  # the nd kernel


def test_integer_narrowing_casts_wrap_like_c_numba_and_numpy(no_jit):
    """Defined modular arithmetic in C, NUMBA and NumPy; only the Python mode raises (its
    per-element Python ints), which we do not follow (the table)."""
    x = pt.lvector("x")
    aot, py = both_modes([x], pt.cast(x, "int8"))
    v = np.array([300, -1, 2**40 + 5, 127, -129] * 5)
    np.testing.assert_array_equal(aot(v), v.astype(np.int8))
    assert isinstance(outcome(py, v), OverflowError)


def test_float_division_by_zero_is_not_an_error(no_jit):
    x, y = pt.dvector("x"), pt.dvector("y")
    a, b = np.array([1.0, -1.0, 0.0]), np.zeros(3)
    for expr in (x // y, x % y, x / y):
        aot, py = both_modes([x, y], expr)
        np.testing.assert_array_equal(aot(a, b), py(a, b))
