"""Hostile operands: the property search that ``test_hostile.py`` runs in a child process.

    python tests/hostile_cases.py LOG [SCALE]     # prints {"counts": {...}} as its last line

A kernel called through a raw pointer with a bad operand does not raise, it crashes or
writes garbage; so the search runs in its own interpreter (a crash is a negative return
code for the test, with the last case written to LOG) and every case has an oracle:

* the faults it contains (unsupported dtype, arity, shapes that do not broadcast, an ``out``
  of the wrong type, dtype, shape, writeability or alignment, a bad axis, a value a cast
  cannot represent) each justify one exception class: the call must raise one of them;
* a case without faults must give NumPy's numbers with PyTensor's dtype rules (the op table
  is itself checked against PyTensor in ``test_type_rules.py``), write nothing outside
  ``out`` and leave its inputs alone; ``KernelNotAvailable`` (JIT is disabled here) is
  accepted only where the session library has no kernel by design (dtypes outside the
  catalog, rank above 4);
* a PyTensor graph in mode "AOT" must do what the same graph does in PyTensor's Python mode
  (``FAST_COMPILE``): the same numbers, or an exception of the same class.

Hypothesis runs derandomised with bounded examples, so the cases are the same every run.
"""

from __future__ import annotations

import json
import sys
import warnings
from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aotkernels as ak
from aotkernels.kernels.reductions import REDUCTIONS
from aotkernels.kernels.scalar_ops import DTYPES, SCALAR_OPS, CastError
from aotkernels.signature import CODES

ND_OPS = ("add", "exp", "lt", "clip", "switch")  # conftest: nd kernels of every rank
ND_CASTS = {("float64", "int32"), ("int32", "float64"), ("bool", "float32"),
            ("float32", "bool"), ("uint8", "float64")}
OTHER_ABI = ("int16", "uint16", "uint32", "uint64")  # in the ABI, not in the catalog
FOREIGN = ("float16", "complex64", "complex128", "longdouble", "object", "U3", "S2",
           "datetime64[s]", "timedelta64[s]")
SPECIALS = [0.0, -0.0, 1.0, -1.0, 0.5, 2.5, -2.5, 1e-300, 127.5, 300.0, -300.0, 7e4,
            3e9, 1e19, 700.0, np.nan, np.inf, -np.inf]
JUNK = [None, "abc", b"xy", {"a": 1}, object(), 2**70, -(2**65), [1, [2, 3]], 1 + 2j,
        np.float16(1.5), np.datetime64("2020-01-01"), np.longdouble(2)]

counts: dict[str, int] = {}
outcomes: dict[str, int] = {}  # "<kind> result|refused|no kernel"
_log = None
_kind = ""


def note(kind: str, what: str) -> None:
    """Count a case and log it before it runs: after a crash, LOG's last line names it."""
    global _kind
    _kind = kind
    counts[kind] = counts.get(kind, 0) + 1
    _log.write(f"{kind} {counts[kind]}: {what[:400]}\n")
    _log.flush()


# -- operands -----------------------------------------------------------------------------

def values(dtype, shape, rng: np.random.Generator) -> np.ndarray:
    """Values of any dtype (hostile ones too), with float specials and integer extremes."""
    dt = np.dtype(dtype)
    n = int(np.prod(shape))
    x = rng.normal(0, 50, n)
    if n:
        sp = np.array(SPECIALS)[rng.integers(0, len(SPECIALS), max(1, n // 3))]
        x[rng.integers(0, n, len(sp))] = sp
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dt.kind == "b":
            return (rng.random(n) < 0.5).reshape(shape)
        if dt.kind in "iu":
            info = np.iinfo(dt)
            ints = rng.integers(max(info.min, -(2**40)), min(info.max, 2**40), n,
                                dtype=np.int64, endpoint=True)
            if n:
                ext = np.array([0, 1, info.max, info.min, -1 if info.min else 2], dtype=dt)
                ints = ints.astype(dt)
                ints[rng.integers(0, n, min(n, 3))] = ext[rng.integers(0, 5, min(n, 3))]
            return ints.astype(dt).reshape(shape)
        if dt.kind in "fc":
            return x.astype(dt).reshape(shape)
        if dt.kind in "US":
            return np.nan_to_num(x).astype(np.int64).astype(dt).reshape(shape)
        if dt.kind in "mM":
            return np.nan_to_num(x, posinf=0, neginf=0).astype(np.int64).astype(dt).reshape(shape)
        return x.astype(object).reshape(shape)


@dataclass
class View:
    """An ndarray over its own byte buffer, with any strides, offset and byte order."""

    array: np.ndarray
    buffer: np.ndarray  # uint8, owns the memory
    offset: int
    strides: tuple[int, ...]

    def same_view(self, buffer: np.ndarray) -> np.ndarray:
        a = self.array
        return np.ndarray(a.shape, a.dtype, buffer=buffer, offset=self.offset,
                          strides=self.strides)


def make_view(dtype, shape, steps, misaligned: bool, swapped: bool,
              buffer: np.ndarray | None = None, at: int = 0) -> View:
    """``steps`` in elements per dimension (0 repeats memory, negative reverses, huge jumps);
    a step ``(k, 1)`` adds one byte (unaligned strides). A given ``buffer`` is shared."""
    dt = np.dtype(dtype)
    if swapped and dt.itemsize > 1 and dt.kind not in "OUSV":
        dt = dt.newbyteorder("S")
    strides = tuple(s * dt.itemsize + extra for s, extra in steps)
    spans = [s * (n - 1) for s, n in zip(strides, shape)] if 0 not in shape else [0]
    lo = sum(min(0, s) for s in spans)
    hi = sum(max(0, s) for s in spans)
    pad = 16 + (1 if misaligned and dt.itemsize > 1 else 0)
    if buffer is None:
        buffer = np.zeros(pad + hi - lo + dt.itemsize + 16, np.uint8)
        offset = pad - lo
    else:
        offset = min(max(at - lo, -lo), max(-lo, buffer.size - hi - dt.itemsize))
    arr = np.ndarray(shape, dt, buffer=buffer, offset=offset, strides=strides)
    return View(arr, buffer, offset, strides)


STEP = st.one_of(st.sampled_from([(1, 0)] * 6 + [(-1, 0)] * 2 + [(2, 0), (-3, 0), (0, 0)]),
                 st.sampled_from([(1 << 15, 0), (-(1 << 14), 0), (1, 1), (-2, 1)]))
OUT_STEP = st.sampled_from([(1, 0)] * 6 + [(-1, 0), (2, 0), (-2, 0), (1 << 14, 0)])
SHAPE = st.lists(st.integers(0, 4), min_size=0, max_size=6).map(tuple)


@st.composite
def arrays(draw, dtypes, shape=None, rng=None) -> View:
    """A View of a drawn dtype and layout (``shape`` given: that shape)."""
    dtype = draw(st.sampled_from(dtypes))
    if shape is None:
        shape = draw(SHAPE)
    steps = tuple(draw(STEP) for _ in shape)
    if np.dtype(dtype).hasobject:  # raw bytes are not pointers: only NumPy's own layouts
        steps = tuple((s if s and extra == 0 and abs(s) < 4 else 1, 0) for s, extra in steps)
        base = np.empty(tuple(abs(s) * max(n, 1) for (s, _), n in zip(steps, shape)), dtype)
        arr = base[tuple(slice(None, None, s) for s, _ in steps)][tuple(slice(n) for n in shape)] \
            if shape else base
        arr[...] = values(dtype, shape, rng)
        return View(arr, np.zeros(1, np.uint8), 0, arr.strides)
    view = make_view(dtype, shape, steps, draw(st.booleans()), draw(st.booleans()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        view.array[...] = values(dtype, shape, rng)
    if draw(st.integers(0, 5)) == 0:
        view.array.flags.writeable = False
    return view


def dtype_choices(draw) -> list[str]:
    pool = draw(st.sampled_from(["catalog"] * 6 + ["abi", "foreign"]))
    return {"catalog": list(DTYPES), "abi": [*DTYPES, *OTHER_ABI],
            "foreign": [*DTYPES, *FOREIGN]}[pool]


@st.composite
def operand(draw, dtypes, shape, rng):
    """An array, or the same values as a Python scalar, a list, a NumPy scalar, or junk."""
    form = draw(st.sampled_from(["array"] * 8 + ["scalar", "list", "npscalar", "junk"]))
    if form == "junk":
        return draw(st.sampled_from(JUNK)), None
    view = draw(arrays(dtypes, shape, rng))
    a = view.array
    if form == "scalar":
        return (a.ravel()[0].item() if a.size and a.dtype.kind in "fiub" else 1.5), None
    if form == "npscalar":
        if a.size:
            return a.ravel()[0], None
        # a datetime's scalar needs its unit (NumPy 2.4: an integer alone is refused)
        return (a.dtype.type(0, np.datetime_data(a.dtype)[0]) if a.dtype.kind in "mM"
                else a.dtype.type(0)), None
    if form == "list" and a.dtype.kind in "fiub":
        return a.tolist(), None
    return a, view


def native_name(a: np.ndarray) -> str:
    return a.dtype.newbyteorder("=").name if a.dtype.kind not in "OV" else a.dtype.name


# -- oracles ------------------------------------------------------------------------------

def magnitude(arrays) -> float:
    """Sum of the finite magnitudes: the scale of a sum's rounding error in any order."""
    total = 0.0
    for a in arrays:
        a = np.asarray(a)
        if a.dtype.kind in "fiub":
            f = np.abs(a.astype(np.float64))
            total += float(f[np.isfinite(f)].sum())
    return total


def close(got, want: np.ndarray, what: str, scale: float = 0.0) -> None:
    assert isinstance(got, np.ndarray), f"{what}: returned {type(got).__name__}"
    assert got.dtype.newbyteorder("=") == want.dtype.newbyteorder("="), \
        f"{what}: dtype {got.dtype}, want {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, want {want.shape}"
    if want.dtype.kind == "f":
        g, w = got.astype(np.float64), want.astype(np.float64)
        finite = np.abs(np.nan_to_num(w, nan=0, posinf=0, neginf=0))
        scale = 1.0 + max(scale, float(finite.max()) if finite.size else 0.0)
        rtol = 2e-6 if want.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * scale, equal_nan=True,
                                   err_msg=what)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


def check_outcome(call, faults: set, reference, may_miss: bool, what: str):
    """Run ``call``; it must raise one of ``faults``, or (none) return ``reference()``."""
    try:
        got = call()
    except Exception as exc:  # noqa: BLE001 - the class is what is checked
        if faults and isinstance(exc, tuple(faults)):
            _tally("refused")
            return None
        # no kernel by design: fine, unless the request was refusable before any lookup
        if may_miss and isinstance(exc, ak.KernelNotAvailable) and faults <= {CastError}:
            _tally("no kernel")
            return None
        raise AssertionError(f"{what}: raised {type(exc).__name__}: {exc}; "
                             f"expected {sorted(f.__name__ for f in faults) or 'a result'}"
                             ) from exc
    assert not faults, f"{what}: returned, expected {sorted(f.__name__ for f in faults)}"
    _tally("result")
    return got


def _tally(outcome: str) -> None:
    key = f"{_kind} {outcome}"
    outcomes[key] = outcomes.get(key, 0) + 1


def out_faults(out, shape, dtype: str | None) -> set:
    """What is wrong with ``out`` (shape, dtype None: unknown, the request is faulty)."""
    if not isinstance(out, np.ndarray):
        return {TypeError}
    faults = set()
    if dtype is not None and out.dtype != np.dtype(dtype):  # a foreign byte order too
        faults.add(TypeError)
    if shape is not None and out.shape != shape:
        faults.add(ValueError)
    if not out.flags.writeable or not out.flags.aligned:
        faults.add(ValueError)
    return faults


def snapshot(views: list[View | None]) -> list[bytes]:
    return [v.buffer.tobytes() if v is not None else b"" for v in views]


# -- properties ---------------------------------------------------------------------------

SETTINGS = dict(deadline=None, derandomize=True, database=None, print_blob=False,
                suppress_health_check=list(HealthCheck))


@st.composite
def elemwise_case(draw):
    op = draw(st.sampled_from([*ND_OPS * 4, "nope", None, "cast"]))
    sop = SCALAR_OPS.get(op) if isinstance(op, str) else None
    nin = sop.nin if sop else draw(st.integers(1, 2))
    nin = max(1, nin + draw(st.sampled_from([0] * 12 + [-1, 1])))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = draw(SHAPE)
    dtypes = dtype_choices(draw)
    inputs, views = [], []
    for i in range(nin):
        sub = tuple(n if draw(st.booleans()) else 1 for n in shape)[draw(st.integers(0, 2)):]
        if draw(st.integers(0, 15)) == 0:
            sub = tuple(n + 1 for n in sub)  # almost surely does not broadcast
        if op == "switch" and i == 0 and draw(st.booleans()):
            x, v = draw(operand(["bool"], sub, rng))
        else:
            x, v = draw(operand(dtypes, sub, rng))
        inputs.append(x)
        views.append(v)
    dtype = draw(st.sampled_from([*DTYPES, *OTHER_ABI, "complex128", "float16", None])) \
        if op == "cast" else draw(st.sampled_from([None] * 15 + ["float32"]))
    return op, inputs, views, dtype, rng


@st.composite
def out_for(draw, shape, dtype: str, views: list, rng):
    """An ``out``: right, or of the wrong type, dtype, shape, writeability, alignment, byte
    order; overlapping an input or itself (stride 0); any strides."""
    kind = draw(st.sampled_from(["fresh"] * 6 + ["input", "overlap", "self", "junk"]))
    if kind == "junk":
        return draw(st.sampled_from([[0.0] * 3, 1.0, "out", None])), None
    arrays_in = [v for v in views if v is not None and v.array.dtype == np.dtype(dtype)]
    if kind == "input" and arrays_in:
        v = draw(st.sampled_from(arrays_in))
        return v.array, v
    dt = dtype if draw(st.integers(0, 7)) else draw(st.sampled_from([*DTYPES, "float16"]))
    if draw(st.integers(0, 9)) == 0:
        shape = tuple(shape[1:]) if shape and draw(st.booleans()) else (*shape, 2)
    steps = [draw(OUT_STEP) for _ in shape]
    if kind == "self" and shape:
        steps[draw(st.integers(0, len(shape) - 1))] = (0, 0)
    bad_align = draw(st.integers(0, 9)) == 0
    swapped = draw(st.integers(0, 9)) == 0
    view = None
    if kind == "overlap" and views and views[0] is not None:
        host = views[0]
        try:
            view = make_view(dt, shape, steps, bad_align, swapped, buffer=host.buffer,
                             at=draw(st.integers(0, host.buffer.size)))
        except (TypeError, ValueError):  # the input's buffer is too small for this out
            view = None
    if view is None:
        view = make_view(dt, shape, steps, bad_align, swapped)
    if draw(st.integers(0, 11)) == 0:
        view.array.flags.writeable = False
    return view.array, view


def _elemwise_oracle(op, inputs, dtype):
    """(faults, reference arrays, result shape, result dtype, may_miss).

    Every fault found is collected: the call may report whichever it meets first.
    """
    sop = SCALAR_OPS.get(op) if isinstance(op, str) else None
    faults = set() if sop else {ValueError, TypeError}
    arrays = []
    for x in inputs:
        try:
            arrays.append(np.array(x))  # a copy: the values before the call
        except Exception as exc:  # noqa: BLE001 - NumPy's own refusal (ragged lists)
            faults.add(type(exc))
    names = [native_name(a) for a in arrays]
    if any(n not in CODES for n in names):
        faults.add(TypeError)
    res = shape = None
    compute = ()
    if not faults:
        try:
            res, compute = sop.types(tuple(names),
                                     None if dtype is None else np.dtype(dtype).name)
            if res not in CODES:
                faults.add(TypeError)
        except TypeError:
            faults.add(TypeError)
    try:
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError:
        faults.add(ValueError)
    if faults:
        return faults, None, shape, res if res in CODES else None, False
    used = {*names, res, *(c for c in compute if c)}
    may_miss = (not used <= set(DTYPES) or len(shape) > 4
                or (op == "cast" and (names[0], res) not in ND_CASTS)
                or (op == "switch" and names[0] != "bool"))  # the catalog: bool conditions
    return set(), arrays, shape, res, may_miss


def _reference(op, arrays, dtype):
    from reference import reference

    native = [a.astype(a.dtype.newbyteorder("=")) for a in arrays]
    return reference(op, *native, out_dtype=None if dtype is None else np.dtype(dtype).name)


def _cast_faults(op, arrays, res) -> set:
    """A float cast to an integer it cannot hold raises ``CastError``, never wraps."""
    if op != "cast" or np.dtype(res).kind not in "iu" or arrays[0].dtype.kind != "f":
        return set()
    x = arrays[0].astype(np.float64)
    info = np.iinfo(res)
    with np.errstate(invalid="ignore"):
        t = np.trunc(x)
        ok = (t >= float(info.min)) & (t < float(info.max + 1))
    return set() if ok.all() else {CastError}


def run_elemwise(n: int) -> None:
    @settings(max_examples=n, **SETTINGS)
    @given(elemwise_case(), st.data())
    def prop(case, data):
        op, inputs, views, dtype, rng = case
        faults, arrays, shape, res, may_miss = _elemwise_oracle(op, inputs, dtype)
        out = out_view = None
        if data.draw(st.integers(0, 2)) == 0:
            out, out_view = data.draw(out_for(shape or (), res or "float64", views, rng))
        if out is not None:
            faults |= out_faults(out, shape, res)
        if not faults:
            faults = _cast_faults(op, arrays, res)
        what = (f"elemwise {op!r} {[_describe(x) for x in inputs]} dtype={dtype} "
                f"out={_describe(out)}")
        note("elemwise", what)
        before = snapshot(views)
        expected_buf = out_view.buffer.copy() if out_view is not None else None
        got = check_outcome(lambda: ak.elemwise(op, *inputs, out=out, dtype=dtype), faults,
                            lambda: None, may_miss, what)
        if got is None:
            return
        want = _reference(op, arrays, dtype)
        if out is None:
            close(got, want, what)
            _inputs_untouched(views, before, None, what)
            return
        assert got is out, f"{what}: did not return out"
        expected = out_view.same_view(expected_buf)
        np.copyto(expected, want)  # NumPy's semantics, even for a self-overlapping out
        close(out.copy(), expected.copy(), what)
        # nothing written outside out: overwrite out's elements with the same values in
        # both buffers, then every byte must agree
        actual_buf = out_view.buffer.copy()
        np.copyto(out_view.same_view(actual_buf), want)
        assert actual_buf.tobytes() == expected_buf.tobytes(), f"{what}: wrote outside out"
        _inputs_untouched(views, before, out_view, what)

    prop()


def _inputs_untouched(views, before, out_view, what):
    for v, b in zip(views, before):
        if v is None or (out_view is not None and v.buffer is out_view.buffer):
            continue
        assert v.buffer.tobytes() == b, f"{what}: an input was modified"


def _describe(x) -> str:
    if isinstance(x, np.ndarray):
        f = x.flags
        return (f"arr({x.dtype.str},{x.shape},{x.strides},{'al' if f.aligned else 'MIS'},"
                f"{'w' if f.writeable else 'RO'})")
    return repr(x)[:40]


def run_reduce(n: int) -> None:
    @settings(max_examples=n, **SETTINGS)
    @given(st.data())
    def prop(data):
        op = data.draw(st.sampled_from([*REDUCTIONS, "mean"]))
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
        x, view = data.draw(operand(dtype_choices(data.draw), None, rng))
        axis = data.draw(st.one_of(
            st.none(), st.integers(-5, 5), st.lists(st.integers(-5, 5), max_size=3),
            st.sampled_from([1.0, True, "0", (0, 1.5), [np.int64(0)]])))
        keepdims = data.draw(st.booleans())
        what = f"reduce {op} {_describe(x)} axis={axis!r} keepdims={keepdims}"
        note("reduce", what)
        faults, a, axes, may_miss = _reduce_oracle(op, x, axis)
        before = snapshot([view])
        got = check_outcome(lambda: ak.reduce(op, x, axis=axis, keepdims=keepdims), faults,
                            None, may_miss, what)
        if got is None:
            return
        acc, res = REDUCTIONS[op].dtypes(native_name(a))
        with np.errstate(all="ignore"):
            want = np.asarray(NUMPY_REDUCTIONS[op](a.astype(acc), axis=axes,
                                                   keepdims=keepdims))
        close(got, want.astype(res), what, scale=magnitude([a]))
        _inputs_untouched([view], before, None, what)

    prop()


NUMPY_REDUCTIONS = {"sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min,
                    "all": np.all, "any": np.any}


def _reduce_oracle(op, x, axis):
    if op not in REDUCTIONS:
        return {ValueError}, None, None, False
    try:
        a = np.array(x)
    except Exception as exc:  # noqa: BLE001
        return {type(exc)}, None, None, False
    if native_name(a) not in CODES:
        return {TypeError}, None, None, False
    raw = (axis,) if isinstance(axis, (int, np.integer)) else axis
    if raw is None:
        axes = tuple(range(a.ndim))
    else:
        try:
            raw = tuple(raw)
        except TypeError:
            return {TypeError}, None, None, False
        if any(isinstance(ax, (bool, np.bool_)) or not isinstance(ax, (int, np.integer))
               for ax in raw):
            return {TypeError}, None, None, False
        if any(not -a.ndim <= ax < a.ndim for ax in raw):
            return {ValueError}, None, None, False
        axes = tuple(sorted(int(ax) % a.ndim for ax in raw))
        if len(set(axes)) != len(axes):
            return {ValueError}, None, None, False
    reduced = int(np.prod([a.shape[i] for i in axes]))
    if REDUCTIONS[op].identity is None and reduced == 0:  # NumPy and PyTensor: raise
        return {ValueError}, None, None, False
    may_miss = native_name(a) not in DTYPES or a.ndim > 4
    return set(), a, axes, may_miss


def run_cast(n: int) -> None:
    @settings(max_examples=n, **SETTINGS)
    @given(st.data())
    def prop(data):
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
        x, view = data.draw(operand(dtype_choices(data.draw), None, rng))
        target = data.draw(st.sampled_from([*DTYPES, *DTYPES, *OTHER_ABI, ">f8", "<i4",
                                            "float16", "complex128", "object", "U3",
                                            "datetime64[s]", "nope"]))
        what = f"cast {_describe(x)} -> {target}"
        note("cast", what)
        faults, a, may_miss = _cast_oracle(x, target)
        before = snapshot([view])
        got = check_outcome(lambda: ak.cast(x, target), faults, None, may_miss, what)
        if got is None:
            return
        with np.errstate(all="ignore"):
            want = a.astype(np.dtype(target).newbyteorder("="))
        close(got, want, what)
        assert not np.shares_memory(got, a)
        _inputs_untouched([view], before, None, what)

    prop()


def _cast_oracle(x, target):
    try:
        a = np.array(x)
    except Exception as exc:  # noqa: BLE001
        return {type(exc)}, None, False
    if native_name(a) not in CODES:
        return {TypeError}, None, False
    try:
        res = np.dtype(target).newbyteorder("=").name
    except TypeError:
        return {TypeError}, None, False
    if res not in CODES:
        return {TypeError}, None, False
    faults = _cast_faults("cast", [a], res) if a.size else set()
    src = native_name(a)
    may_miss = (src != res and ((src, res) not in ND_CASTS or a.ndim > 4)
                or not {src, res} <= set(DTYPES))
    return faults, a, may_miss


# -- PyTensor mode "AOT" against its Python mode -------------------------------------------

def graphs():
    """(name, inputs, outputs) of small graphs whose nodes the session library serves."""
    import pytensor.tensor as pt

    x, y = pt.vector("x"), pt.vector("y")
    m, r = pt.matrix("m"), pt.row("r")
    t3 = pt.tensor3("t3")
    fx = pt.fvector("fx")
    return [
        ("add", [x, y], [x + y]),
        ("exp-add-row", [m, r], [pt.exp(m) + r]),
        ("inplace-chain", [x, y], [pt.exp(x) + pt.exp(y)]),
        ("reductions", [m], [m.sum(axis=0), m.max(axis=1), pt.all(pt.lt(m, 1.0)), m.min()]),
        ("switch-lt", [x, y], [pt.switch(pt.lt(x, y), x, y)]),
        ("clip-const", [m], [pt.clip(m, -1.0, 2.0)]),
        ("cast-int32", [x], [pt.cast(x, "int32")]),
        ("float32-plus-int", [fx], [fx + 2]),
        ("tensor3-sum", [t3, m], [t3.sum(axis=(0, 2)) + m.sum(axis=0)]),
    ]


def run_pytensor(n: int) -> None:
    import pytensor

    import aotkernels.pytensor  # noqa: F401 - registers mode "AOT"

    compiled = []
    for name, ins, outs in graphs():
        compiled.append((name, ins, pytensor.function(ins, outs, mode="AOT"),
                         pytensor.function(ins, outs, mode="FAST_COMPILE")))

    @settings(max_examples=n, **SETTINGS)
    @given(st.data())
    def prop(data):
        name, ins, aot, ref = data.draw(st.sampled_from(compiled))
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
        args = []
        base = data.draw(st.lists(st.integers(0, 4), min_size=5, max_size=5))
        for v in ins:
            form = data.draw(st.sampled_from(["right"] * 8 + ["rank", "dtype", "junk"]))
            ndim = v.type.ndim + (data.draw(st.sampled_from([-1, 1])) if form == "rank" else 0)
            shape = tuple(1 if b else base[i] for i, b in
                          enumerate(v.type.broadcastable + (False,) * 2))[:max(0, ndim)]
            if data.draw(st.integers(0, 5)) == 0:  # a length-1 dim where the type has none
                shape = tuple(1 if data.draw(st.booleans()) else s for s in shape)
            dt = v.type.dtype if form != "dtype" else data.draw(
                st.sampled_from(["float32", "int64", "int8", "bool", "complex128"]))
            x, _ = data.draw(operand([dt], shape, rng))
            args.append(x)
        what = f"pytensor {name} {[_describe(a) for a in args]}"
        note("pytensor", what)
        views = [a.base if isinstance(a, np.ndarray) else None for a in args]
        before = [v.tobytes() if v is not None else b"" for v in views]
        try:
            want = ref(*args)
        except Exception as exc:  # noqa: BLE001
            check_outcome(lambda: aot(*args), {type(exc)}, None, False, what)
            return
        got = check_outcome(lambda: aot(*args), set(), None, False, what)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            close(np.asarray(g), np.asarray(w), f"{what} (vs FAST_COMPILE)",
                  scale=magnitude(args))
        for v, b in zip(views, before):
            assert v is None or v.tobytes() == b, f"{what}: an input was modified"

    prop()


# -- fixed cases: sizes hypothesis should not allocate -------------------------------------

def run_fixed() -> None:
    """Byte offsets beyond 2 GiB and 2**31 elements: 64-bit index arithmetic everywhere."""
    note("fixed", "strides of 2**31 + 8 bytes")
    big = np.zeros(2**32 + 64, np.uint8)  # untouched pages are never allocated
    x = np.ndarray((3,), np.float64, buffer=big, offset=0, strides=(2**31 + 8,))
    x[:] = [1.0, 2.0, 3.0]
    close(ak.elemwise("exp", x), np.exp(np.array([1.0, 2.0, 3.0])), "huge strides")
    rev = x[::-1]
    close(ak.elemwise("add", rev, rev), np.array([6.0, 4.0, 2.0]), "huge negative strides")
    note("fixed", "2**31 + 5 elements (stride 0)")
    ones = np.lib.stride_tricks.as_strided(np.ones(1, np.uint8), (2**31 + 5,), (0,))
    got = ak.reduce("sum", ones)
    assert got.dtype == np.uint64 and int(got) == 2**31 + 5, got
    del big


def main(argv: list[str]) -> int:
    global _log
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
    scale = float(argv[1]) if len(argv) > 1 else 1.0
    with open(argv[0], "w") as _log:
        warnings.simplefilter("ignore")
        run_fixed()
        run_elemwise(int(1500 * scale))
        run_reduce(int(700 * scale))
        run_cast(int(700 * scale))
        run_pytensor(int(400 * scale))
    print(json.dumps({"counts": counts, "total": sum(counts.values()), "outcomes": outcomes}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
