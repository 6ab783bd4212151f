"""Differential tests: every prebuilt elementwise kernel against NumPy/SciPy (tests/reference.py).

All of these run with ``AOT_DISABLE_JIT=1`` (the ``no_jit`` fixture), so a pass proves the
result came from the prebuilt library, not from a JIT compilation.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ND_CASTS, ND_OPS, session_signatures
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import PYTENSOR_DIFFERS, reference

import aotkernels as ak
from aotkernels.families.elemwise import resolve
from aotkernels.kernels.scalar_ops import DTYPES, SCALAR_OPS

FLOAT_SPECIALS = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, 2.5, -2.5, 1e-300, 700.0, -700.0,
                  np.nan, np.inf, -np.inf]


def sample(dtype: str, shape, rng: np.random.Generator, specials: bool = True) -> np.ndarray:
    n = int(np.prod(shape))
    dt = np.dtype(dtype)
    if dt.kind == "f":
        vals = rng.normal(0, 3, n)
        if specials:
            sp = np.array(FLOAT_SPECIALS)[: max(0, min(n, len(FLOAT_SPECIALS)))]
            vals[rng.permutation(n)[: len(sp)]] = sp
        return vals.astype(dt).reshape(shape)
    if dt.kind == "b":
        return (rng.random(n) < 0.5).reshape(shape)
    info = np.iinfo(dt)
    lo, hi = max(info.min, -1000), min(info.max, 1000)
    vals = rng.integers(lo, hi + 1, n, dtype=np.int64)
    if specials:
        sp = np.array([0, 1, info.min, info.max] + ([-1] if info.min < 0 else []))
        sp = sp[: min(n, len(sp))]
        vals[rng.permutation(n)[: len(sp)]] = sp
    return vals.astype(dt).reshape(shape)


def operands(op: str, in_dtypes, out_dtype, shape, rng, specials=True) -> list[np.ndarray]:
    """Random inputs, kept inside each op's defined domain (errors are tested separately)."""
    arrays = [sample(d, shape, rng, specials) for d in in_dtypes]
    if op in ("int_div", "mod") and np.dtype(in_dtypes[1]).kind in "iub":
        arrays[1] = np.where(arrays[1] == 0, np.ones((), in_dtypes[1]), arrays[1])
    if op == "check":  # a false condition fails (test_check_raises)
        arrays[0] = np.ones_like(arrays[0])
    if op == "pow" and np.dtype(in_dtypes[1]).kind in "iu":
        arrays[1] = (np.abs(arrays[1].astype(np.int64)) % 6).astype(in_dtypes[1])
    if op == "cast" and np.dtype(in_dtypes[0]).kind == "f" and np.dtype(out_dtype).kind in "iu":
        # float -> int of nan, inf or out-of-range values is undefined in C and in PyTensor
        info = np.iinfo(out_dtype)
        x = np.nan_to_num(arrays[0].astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        arrays[0] = np.clip(x, max(info.min, -1e6), min(info.max, 1e6)).astype(in_dtypes[0])
    return arrays


def assert_matches(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape
    if got.dtype.kind == "f":
        rtol = 2e-6 if got.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * 1e-3, equal_nan=True)
        zero = want == 0  # NumPy's sign of a zero result is part of the result
        assert np.array_equal(np.signbit(got[zero]), np.signbit(want[zero])), "signed zeros"
    else:
        np.testing.assert_array_equal(got, want)


FLAT = [s for s in session_signatures() if s.layout == "flat"]


@pytest.mark.parametrize("sig", FLAT, ids=lambda s: s.key)
def test_every_op_and_dtype(sig, no_jit):
    rng = np.random.default_rng(abs(hash(sig.key)) % 2**32)
    for n in (1, 7, 64, 1001):
        arrays = operands(sig.op, sig.in_dtypes, sig.out_dtype, (n,), rng)
        dtype = sig.out_dtype if sig.op == "cast" else None
        got = ak.elemwise(sig.op, *arrays, dtype=dtype)
        assert resolve(sig.op, *arrays, dtype=dtype) == (sig, "aot")
        want = reference(sig.op, *arrays, out_dtype=dtype)
        assert_matches(got, want)
        for i, a in enumerate(arrays):  # in place: the kernels' loop through that input
            if a.dtype == want.dtype and dtype is None:
                copies = [np.copy(b) for b in arrays]
                ak.elemwise(sig.op, *copies, out=copies[i])
                assert_matches(copies[i], want)


GRID = [s for s in FLAT if s.op not in ("cast", "check") and s.out_dtype.startswith("float")
        and all(d.startswith("float") for d in s.in_dtypes) and len(s.in_dtypes) <= 2]


@pytest.mark.parametrize("sig", GRID, ids=lambda s: s.key)
def test_special_values_every_pair(sig, no_jit):
    """Every special value against every other (signed zeros, infinities, NaN, tiny and huge):
    the values NumPy gives, NaN where it gives NaN, and the sign of every zero. Random
    operands seldom put 0.0 and -0.0 in the same place, where maximum's choice shows."""
    sp = np.array(FLOAT_SPECIALS)
    grid = np.meshgrid(*[sp] * len(sig.in_dtypes), indexing="ij")
    arrays = [g.ravel().astype(d) for g, d in zip(grid, sig.in_dtypes)]
    got = ak.elemwise(sig.op, *arrays)
    want = reference(sig.op, *arrays)
    assert_matches(got, want)


def _nd_cases():
    for op in ND_OPS:
        for d in DTYPES:
            ins = ("bool", d, d) if op == "switch" else (d,) * SCALAR_OPS[op].nin
            try:
                out, _ = SCALAR_OPS[op].types(ins)
            except TypeError:
                continue
            yield op, ins, out
    for a, b in ND_CASTS:
        yield "cast", (a,), b


ND = list(_nd_cases())


def _strided(a: np.ndarray, rng) -> np.ndarray:
    """The same values as ``a`` seen through a non-contiguous, partly reversed view."""
    big = np.empty(tuple(2 * n for n in a.shape), a.dtype)
    view = big[tuple(slice(None, None, 2) for _ in a.shape)]
    flip = tuple(slice(None, None, -1) if rng.random() < 0.5 else slice(None)
                 for _ in a.shape)
    view[flip] = a
    return view[flip]


@pytest.mark.parametrize("case", ND, ids=lambda c: f"{c[0]}-{'-'.join(c[1])}-{c[2]}")
@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
def test_nd_kernels_strided_and_broadcast(case, ndim, no_jit):
    op, ins, out_dtype = case
    rng = np.random.default_rng(ndim)
    shape = (3, 5, 2, 7)[-ndim:]
    dtype = out_dtype if op == "cast" else None
    arrays = operands(op, ins, out_dtype, shape, rng)
    # strided and reversed views: no dimension collapses, so the rank-ndim kernel runs
    views = [_strided(a, rng) for a in arrays]
    sig, source = resolve(op, *views, dtype=dtype)
    assert (sig.layout, sig.ndim, source) == ("nd", ndim, "aot")
    assert_matches(ak.elemwise(op, *views, dtype=dtype), reference(op, *arrays, out_dtype=dtype))
    # broadcasting: each input loses a different axis (stride 0 in the kernel)
    if len(ins) > 1:
        bcast = [a[tuple(slice(0, 1) if ax == i % ndim else slice(None) for ax in range(ndim))]
                 for i, a in enumerate(arrays)]
        assert_matches(ak.elemwise(op, *bcast, dtype=dtype),
                       reference(op, *bcast, out_dtype=dtype))
    # into a strided, reversed output buffer
    want = reference(op, *arrays, out_dtype=dtype)
    out = _strided(np.empty(shape, want.dtype), rng)
    ak.elemwise(op, *views, out=out, dtype=dtype)
    assert_matches(out, want)
    if dtype is not None:
        return

    # in place on contiguous rows that do not collapse (the first half of wider rows),
    # through each input of the result's dtype, and with the other input broadcast
    def rows(a):
        r = np.empty((*a.shape[:-1], 2 * a.shape[-1]), a.dtype)[..., :a.shape[-1]]
        r[...] = a
        return r

    for i, a in enumerate(arrays):
        if a.dtype == want.dtype:
            copies = [rows(b) for b in arrays]
            ak.elemwise(op, *copies, out=copies[i])
            assert_matches(copies[i], want)
    if len(ins) == 2 and arrays[0].dtype == want.dtype:
        x, last = rows(arrays[0]), arrays[1][..., :1]
        ak.elemwise(op, x, last, out=x)
        assert_matches(x, reference(op, arrays[0], last))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_broadcast_and_strides(data, no_jit):
    """Random shapes (0- and 1-sized dims included), broadcasting, steps and reversals."""
    op = data.draw(st.sampled_from(["add", "exp", "lt", "clip", "switch"]))
    d = data.draw(st.sampled_from(["float64", "float32", "int32", "uint8", "int8"]))
    ins = ("bool", d, d) if op == "switch" else (d,) * SCALAR_OPS[op].nin
    ndim = data.draw(st.integers(0, 4))
    shape = tuple(data.draw(st.lists(st.integers(0, 4), min_size=ndim, max_size=ndim)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    arrays = []
    for dt in ins:
        sub = tuple(n if data.draw(st.booleans()) else 1 for n in shape)
        sub = sub[data.draw(st.integers(0, len(sub))):]  # fewer leading dims broadcast too
        steps = tuple(data.draw(st.sampled_from([1, 2, -1, -2])) for _ in sub)
        base = sample(dt, tuple(max(1, abs(s)) * n for n, s in zip(sub, steps)), rng)
        arrays.append(base[tuple(slice(None, None, s) for s in steps)])
    got = ak.elemwise(op, *arrays)
    assert_matches(got, reference(op, *arrays))


def test_zero_d_and_python_scalars(no_jit):
    assert_matches(ak.elemwise("add", np.float64(2.0), np.array(3.0)), np.array(5.0))
    assert ak.elemwise("exp", 0.0).shape == ()
    got = ak.elemwise("add", np.arange(5.0), 1.5)  # python float is a 0-d float64
    assert_matches(got, np.arange(5.0) + 1.5)


def test_empty_results_call_no_kernel(no_jit):
    x = np.empty((0, 3))
    assert ak.elemwise("exp", x).shape == (0, 3)
    assert resolve("exp", x) == (None, None)
    assert ak.elemwise("add", np.empty((4, 0)), np.ones((1, 1))).shape == (4, 0)


def test_mixed_dtypes_use_the_cast_path(no_jit):
    """``x + 2`` in PyTensor is add(float64, int8): served by the float64 kernel."""
    x = np.linspace(-1, 1, 11)
    two = np.int8(2)
    got = ak.elemwise("add", x, two)
    assert_matches(got, reference("add", x, np.asarray(two)))
    sig, source = resolve("add", x, two)
    assert sig.in_dtypes == ("float64", "float64") and source == "aot"


def test_in_place_and_overlapping_outputs(no_jit):
    x = np.linspace(0, 1, 100)
    want = np.exp(x)
    ak.elemwise("exp", x, out=x)  # exactly the same memory: in place is safe
    assert_matches(x, want)
    y = np.arange(10.0)
    want = y[:-1] + y[1:]
    ak.elemwise("add", y[:-1], y[1:], out=y[1:])  # partial overlap: inputs are copied first
    assert_matches(y[1:], want)


def test_foreign_byte_order_and_misaligned_inputs(no_jit):
    x = np.linspace(-2, 2, 50)
    swapped = x.astype(">f8")
    assert_matches(ak.elemwise("exp", swapped), np.exp(x))
    raw = np.zeros(8 * 50 + 1, np.uint8)
    misaligned = raw[1:].view(np.float64)
    misaligned[:] = x
    assert not misaligned.flags.aligned
    assert_matches(ak.elemwise("exp", misaligned), np.exp(x))


@pytest.mark.parametrize("op,args,exc", [
    ("nope", (np.ones(2),), ValueError),
    ("add", (np.ones(2),), TypeError),                      # arity
    ("add", (np.ones(2), np.ones(3)), ValueError),          # broadcast
    ("add", (np.ones(2, np.complex128),) * 2, TypeError),   # dtype outside the ABI
    ("add", (np.ones(2, np.float16),) * 2, TypeError),
    ("sub", (np.ones(2, bool),) * 2, TypeError),            # PyTensor has no bool - bool
    ("round_half_to_even", (np.ones(2, np.int64),), TypeError),
])
def test_bad_requests_raise(op, args, exc, no_jit):
    with pytest.raises(exc):
        ak.elemwise(op, *args)


def test_bad_outputs_raise(no_jit):
    x = np.ones((2, 3))
    with pytest.raises(TypeError, match="dtype"):
        ak.elemwise("exp", x, out=np.empty((2, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        ak.elemwise("exp", x, out=np.empty((3, 2)))
    ro = np.empty((2, 3))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        ak.elemwise("exp", x, out=ro)
    with pytest.raises(TypeError, match="numpy array"):
        ak.elemwise("exp", x, out=[[0.0] * 3] * 2)


@pytest.mark.parametrize("dtype", ["int64", "int32", "int8", "uint8"])
def test_integer_division_by_zero_raises_like_pytensor(dtype, no_jit):
    assert "ZeroDivisionError" in PYTENSOR_DIFFERS["int_div"]
    x = np.arange(1, 9, dtype=dtype)
    y = np.ones(8, dtype)
    y[5] = 0
    with pytest.raises(ZeroDivisionError):
        ak.elemwise("int_div", x, y)
    with pytest.raises(ZeroDivisionError):
        ak.elemwise("mod", x, y)


def test_integer_division_extremes(no_jit):
    lo = np.array([np.iinfo(np.int64).min, -7, 7, -7], np.int64)
    m1 = np.array([-1, 2, -2, -2], np.int64)
    with np.errstate(all="ignore"):
        assert_matches(ak.elemwise("int_div", lo, m1), np.floor_divide(lo, m1))
        assert_matches(ak.elemwise("mod", lo, m1), np.mod(lo, m1))


def test_check_raises(no_jit):
    """``check`` (what serves PyTensor's CheckAndRaise) fails on any false element."""
    c = np.ones(100, bool)
    np.testing.assert_array_equal(ak.elemwise("check", c), c)
    c[57] = False
    with pytest.raises(AssertionError, match="checked condition is false"):
        ak.elemwise("check", c)


def test_negative_integer_power_raises(no_jit):
    with pytest.raises(ValueError, match="negative integer powers"):
        ak.elemwise("pow", np.array([2, 3]), np.array([1, -1]))


def test_pytensor_dtype_rules_where_numpy_differs(no_jit):
    assert ak.elemwise("exp", np.ones(3, np.int8)).dtype == np.float32  # numpy: float16
    assert ak.elemwise("reciprocal", np.array([2, 4])).dtype == np.float64
    assert_matches(ak.elemwise("reciprocal", np.array([2, 4])), np.array([0.5, 0.25]))
    x, lo, hi = np.array([0.0, 5.0, 10.0]), np.array(6.0), np.array(4.0)
    assert_matches(ak.elemwise("clip", x, lo, hi), np.array([6.0, 6.0, 4.0]))  # np.clip: 4, 4, 4
    assert "lo > hi" in PYTENSOR_DIFFERS["clip"]


def test_cast_to_same_dtype_copies(no_jit):
    x = np.arange(4.0)
    y = ak.cast(x, "float64")
    assert_matches(y, x)
    assert not np.shares_memory(x, y)
