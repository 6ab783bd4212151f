"""mode="AOT" against PyTensor's Python implementation (FAST_COMPILE) on many graphs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytensor = pytest.importorskip("pytensor")
pt = pytest.importorskip("pytensor.tensor")
am = pytest.importorskip("aotkernels.pytensor_mode")

rng = np.random.default_rng(42)
M = rng.normal(size=(6, 5))
V5 = rng.normal(size=5)
V6 = rng.normal(size=6)
P = rng.uniform(0.1, 3.0, size=(6, 5))
I8 = rng.integers(-20, 20, size=(6, 5)).astype(np.int64)
NZ = np.where(I8 == 0, 3, I8)


def graphs():
    """(name, inputs, outputs, values): elementwise-heavy graphs plus nodes that fall back."""
    x, y = pt.matrix("x"), pt.matrix("y")
    r, c = pt.vector("r"), pt.vector("c")
    i, j = pt.lmatrix("i"), pt.lmatrix("j")
    yield ("broadcast chain", [x, r, c],
           [(x + r) * c[:, None] - 2 * x / (1 + r**2)], [M, V5, V6])
    yield ("unary zoo", [x],
           [pt.exp(x) + pt.log(x) - pt.sqrt(x) * pt.tanh(x) + pt.erf(x) + pt.gammaln(x)
            + pt.sigmoid(x) + pt.softplus(-x) + pt.log1p(x) + pt.expm1(-x)
            + pt.cosh(x) / pt.sinh(x) + pt.arcsinh(x) + pt.gamma(x) + pt.erfc(x)], [P])
    yield ("trig and rounding", [x],
           [pt.sin(x) * pt.cos(x) + pt.floor(x) - pt.ceil(x) + pt.round(x, mode="half_to_even")
            + pt.abs(x) * pt.sign(x) + pt.reciprocal(1 + x**2) + pt.exp2(x)
            - pt.log2(1 + x**2) + pt.log10(2 + x) + pt.tan(x) + pt.arctanh(x / 10)], [M])
    yield ("comparisons and switch", [x, y],
           [pt.switch(x > y, x, y) + pt.clip(x, -0.5, 0.5) + pt.maximum(x, 0)
            - pt.minimum(y, 0) + pt.eq(x, y) + (x <= y) + pt.neq(x, 1) + (x >= 0) * (y < 0)],
           [M, M[::-1]])
    yield ("integers", [i, j],
           [i // j + i % j - (i * j) + pt.maximum(i, j) + (pt.bitwise_and(i, j) ^ (i | 3))
            + ~i + i**2], [I8, NZ])
    yield ("casts", [x, i],
           [x.astype("int32") + i.astype("float32") + (x > 0).astype("int8")
            + pt.cast(abs(i), "uint8")], [M * 10, I8])
    yield ("bool logic", [x],
           [pt.and_(x > 0, x < 1) | pt.invert(x > 2) ^ pt.isnan(x) | pt.isinf(x)], [M])
    yield ("reductions and dot", [x, r],
           [pt.sum(pt.exp(x) @ r), pt.max(x, axis=0) * pt.mean(r)], [M, V5])
    yield ("join and softmax", [x, y],
           [pt.concatenate([pt.exp(x), y * 2], axis=0), pt.special.softmax(x * y, axis=1)],
           [M, M])
    yield ("argmax and cumulative ops", [x, i],
           [pt.argmax(x, axis=1), pt.argmax(x), pt.argmin(x, axis=0), pt.cumsum(x, axis=0),
            pt.cumprod(x / 3, axis=1), pt.cumsum(i, axis=1)], [M, I8])
    yield ("softmax family and gradient", [x, y],
           [pt.special.softmax(x, axis=0), pt.special.log_softmax(x, axis=1),
            pt.logsumexp(x, axis=1),
            pytensor.grad(pt.sum(pt.special.softmax(x, axis=1) * y), x)], [M, M[::-1]])
    z = pt.matrix("z")
    yield ("dot chains, gemv and gemm", [x, y, r, c, z],
           [(x @ y.T) @ x, x @ r, c @ x, r @ r, z + 2.5 * (x @ y.T),
            c * 0.5 + x @ r], [M, M[::-1], V5, V6, M @ M.T])
    yield ("join and alloc", [x, r, i],
           [pt.concatenate([x, pt.exp(x), x[:, :2]], axis=1), pt.alloc(r, 3, 5),
            pt.concatenate([i, i * 2], axis=0), pt.zeros_like(x) + r,
            pt.stack([r, r * 2])], [M, V5, I8])
    w, t = pt.vector("w"), pt.vector("t")
    p = pt.sigmoid(x @ w)
    loss = -pt.mean(t * pt.log(p) + (1 - t) * pt.log(1 - p)) + 0.1 * pt.sum(w**2)
    yield ("logistic loss and gradient", [x, w, t], [loss, *pytensor.grad(loss, [w])],
           [M, V5, (V6 > 0).astype(float)])
    f32 = pt.fmatrix("f")
    yield ("float32", [f32], [pt.exp(f32) * 2 + pt.tanh(f32) - f32 / 3],
           [M.astype(np.float32)])
    s = pt.dscalar("s")
    yield ("0-d", [s, x], [s * 3 + 1, x * s + pt.exp(s)], [np.array(0.7), M])
    rows = pt.constant(np.array([0, 5, 1, 1, -1, 2]))
    yield ("gather and scatter (a hierarchical model's a[group])", [x, r, c],
           [pt.exp(r[rows[:5] % 5]) * c[:5], x[rows] * 2,
            pytensor.grad(pt.sum(pt.exp(r[rows % 5]) * c), r),
            pt.inc_subtensor(x[rows], c[:, None]), pt.set_subtensor(x[rows[:3]], 1.5),
            x[rows, rows % 5] * 3, pt.inc_subtensor(x[rows, rows[::-1] % 5], c),
            pytensor.grad(pt.sum(pt.log(pt.special.softmax(x, axis=1)[rows, rows % 5])), x)],
           [M, V5, V6])


CASES = list(graphs())


def _close(got: np.ndarray, want: np.ndarray) -> None:
    """Within dtype tolerance; float32 sums of terms that cancel get an absolute slack."""
    if got.dtype == np.float32:
        scale = float(np.abs(want).max(initial=1.0))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * scale)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-11)


def _changed(a: np.ndarray, k: int) -> np.ndarray:
    if a.dtype.kind == "f":
        return a * (1 + 0.25 * k) + 0.125 * k
    return np.where(a == 0, a, a + k * np.sign(a)).astype(a.dtype)  # nonzero stays nonzero


def _variants(values, k: int) -> list:
    """Call ``k`` of a test: other numbers in the same geometry (so a plan replays), views
    rebuilt on a changed copy of their base with the same offset and strides."""
    if k == 0:
        return values
    out = []
    for v in values:
        base = v.base if isinstance(v.base, np.ndarray) else None
        if base is None:
            out.append(_changed(v, k))
            continue
        new = _changed(base, k)
        out.append(np.ndarray(v.shape, v.dtype, buffer=new,
                              offset=v.ctypes.data - base.ctypes.data, strides=v.strides))
    return out


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_graph_matches_pytensor(case, aot_lib):
    name, inputs, outputs, values = case
    f = pytensor.function(inputs, outputs, mode="AOT")
    ref = pytensor.function(inputs, outputs, mode="FAST_COMPILE")
    results = []
    for k in (0, 1, 2, 0):  # recorded, then replayed by the plan with other numbers
        vals = _variants(values, k)
        got, want = f(*vals), ref(*vals)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and g.shape == w.shape
            _close(g, w)
        results += [g for g in got if isinstance(g, np.ndarray) and g.size]
    assert not any(np.shares_memory(p, q) for i, p in enumerate(results)
                   for q in results[i + 1:]), "a result aliases another call's result"
    sources = am.coverage_summary(f)
    assert sources["aot"] + sources["jit"] > 0, sources
    assert sources["pending"] == 0


def test_inplace_graphs_are_served(aot_lib):
    x = pt.vector("x")
    y = pt.exp(x) * 2 + 1
    f = pytensor.function([x], y, mode="AOT")
    inplace = [t for t in f.maker.linker.thunks
               if isinstance(t, am.ElemwiseThunk) and t.inplace is not None]
    assert inplace, "fast_run should have made some elementwise nodes inplace"
    v = np.linspace(0, 1, 9)
    np.testing.assert_allclose(f(v), np.exp(v) * 2 + 1)
    np.testing.assert_array_equal(v, np.linspace(0, 1, 9))  # inputs are not destroyed


def test_outputs_are_not_internal_buffers(aot_lib):
    x = pt.vector("x")
    f = pytensor.function([x], pt.exp(x), mode="AOT")
    a = f(np.zeros(3))
    b = f(np.ones(3))
    assert not np.shares_memory(a, b)
    np.testing.assert_array_equal(a, np.ones(3))


def test_integer_division_by_zero_raises(aot_lib):
    i, j = pt.lvector("i"), pt.lvector("j")
    f = pytensor.function([i, j], i // j, mode="AOT")
    with pytest.raises(ZeroDivisionError):
        f(np.array([1, 2]), np.array([1, 0]))


SCRIPT = r"""
import json, sys
import numpy as np
import pytensor, pytensor.tensor as pt
import aotkernels.pytensor_mode as am
x, y = pt.vector("x"), pt.vector("y")
out = pt.exp(x) * y + pt.sigmoid(y) - pt.log1p(x * x)
f = pytensor.function([x, y], out, mode="AOT")
a, b = np.linspace(-1, 1, 50), np.linspace(2, 3, 50)
ok = np.allclose(f(a, b), np.exp(a) * b + 1 / (1 + np.exp(-b)) - np.log1p(a * a))
print(json.dumps({"ok": bool(ok), "coverage": am.coverage_summary(f),
                  "numba": "numba" in sys.modules,
                  "c_vm": "pytensor.link.c.cvm" in sys.modules}))
"""


def test_catalog_graphs_run_without_numba_or_c(aot_lib, tmp_path):
    env = dict(os.environ, AOT_DISABLE_JIT="1", AOT_LIBRARY_DIR=str(aot_lib.directory))
    res = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["ok"] and report["numba"] is False
    assert report["c_vm"] is False  # nothing compiled: not even PyTensor's C VM
    assert set(report["coverage"]) == {"aot"}, report["coverage"]


SOFTMAX = r"""
import json, sys
import numpy as np
import pytensor, pytensor.tensor as pt
import aotkernels.pytensor_mode as am
rng = np.random.default_rng(0)
x, w = pt.matrix("x"), pt.matrix("w")
y = pt.lvector("y")
p = pt.special.softmax(x @ w, axis=1)
loss = -pt.mean(pt.log(p[pt.arange(y.shape[0]), y]))
f = pytensor.function([x, w, y], [loss, pytensor.grad(loss, w)], mode="AOT")
X, W, Y = rng.normal(size=(50, 4)), rng.normal(size=(4, 3)), rng.integers(0, 3, 50)
got_loss, got_grad = f(X, W, Y)
z = X @ W
P = np.exp(z - z.max(1, keepdims=True))
P /= P.sum(1, keepdims=True)
onehot = np.eye(3)[Y]
print(json.dumps({
    "ok": bool(np.isclose(got_loss, -np.mean(np.log(P[np.arange(50), Y])))
               and np.allclose(got_grad, X.T @ (P - onehot) / 50)),
    "softmax": [s for node, s in am.coverage(f)
                if node.split("{")[0] in ("Softmax", "LogSoftmax")],
    "numba": "numba" in sys.modules}))
"""


def test_softmax_runs_on_kernels_not_numba(aot_lib, tmp_path):
    """Softmax nodes are OpFromGraphs whose perform compiles the inner graph with numba."""
    env = dict(os.environ, AOT_LIBRARY_DIR=str(aot_lib.directory))
    res = subprocess.run([sys.executable, "-c", SOFTMAX], env=env, capture_output=True,
                         text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["ok"] and report["numba"] is False, report
    assert report["softmax"] and set(report["softmax"]) == {"aot"}, report


def test_inner_graphs_run_in_aot_mode(aot_lib):
    """An OpFromGraph without a kernel runs its inner graph in mode AOT, node by node."""
    from pytensor.compile.builders import OpFromGraph

    a = pt.vector("a")
    op = OpFromGraph([a], [pt.exp(a) * 2 + pt.sum(a)])
    x = pt.vector("x")
    f = pytensor.function([x], op(x) + 1, mode="AOT")
    v = np.linspace(0, 1, 5)
    np.testing.assert_allclose(f(v), np.exp(v) * 2 + v.sum() + 1)
    inner = [source for node, source in am.coverage(f) if " / " in node]
    assert inner and "aot" in inner and "pytensor" not in inner, am.coverage(f)


def test_kernel_families_are_served(aot_lib):
    """Argmax, CumOp, Softmax, LogSoftmax, Join, Alloc, Dot, Gemv and Gemm run on kernels."""
    x, z, r = pt.matrix("x"), pt.matrix("z"), pt.vector("r")
    outs = [pt.argmax(x, axis=1), pt.cumsum(x, axis=1), pt.special.softmax(x, axis=1),
            pt.special.log_softmax(x, axis=0), pt.concatenate([x, x * 2]),
            pt.alloc(r, 4, 5), x @ x.T, z + 2 * (x @ x[:5].T), r + x.T @ x[:, 0]]
    f = pytensor.function([x, z, r], outs, mode="AOT")
    ref = pytensor.function([x, z, r], outs, mode="FAST_COMPILE")
    vals = [M, P, V5]
    for g, w in zip(f(*vals), ref(*vals)):
        np.testing.assert_allclose(g, w, rtol=1e-12)
    served = {type(t.node.op).__name__: t.source for t in f.maker.linker.thunks
              if isinstance(t, am.OpThunk)}
    want = {"Argmax", "CumOp", "Softmax", "LogSoftmax", "Join", "Alloc", "Dot22", "Gemm",
            "Gemv"}
    assert want <= set(served), served
    assert all(source == "aot" for source in served.values()), served


def test_softmax_grad_is_served_where_pytensor_has_it(aot_lib):
    """PyTensor 2.x has a SoftmaxGrad op (3.x spells the gradient out); run by
    tests/test_pytensor2.py on 2.38."""
    from aotkernels.pytensor_ops import SoftmaxGrad

    if SoftmaxGrad is None:
        pytest.skip("this PyTensor has no SoftmaxGrad op")
    x, y = pt.matrix("x"), pt.matrix("y")
    out = pytensor.grad(pt.sum(pt.special.softmax(x, axis=1) * y), x)
    f, ref = _modes([x, y], [out])
    _replays(f, ref, [M, M[::-1]])
    served = {type(t.node.op).__name__: t.source for t in f.maker.linker.thunks
              if isinstance(t, am.OpThunk)}
    assert served.get("SoftmaxGrad") == "aot", served


def test_reductions_are_served(aot_lib):
    x = pt.tensor3("x")
    outs = [pt.sum(x, axis=(0, 2)), pt.max(x, axis=1), pt.prod(x, axis=-1),
            pt.all(x > 0, axis=0), pt.any(x > 1), pt.min(x), pt.mean(x, axis=1)]
    f = pytensor.function([x], outs, mode="AOT")
    ref = pytensor.function([x], outs, mode="FAST_COMPILE")
    v = rng.normal(size=(3, 4, 5))
    for g, w in zip(f(v), ref(v)):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-12)
    reductions = [t for t in f.maker.linker.thunks if isinstance(t, am.ReduceThunk)]
    assert len(reductions) >= 6 and all(t.source == "aot" for t in reductions)


def test_memoised_calls_never_reuse_a_copys_geometry(aot_lib):
    """A call whose input had to be copied (misaligned) is not memoised: the next input with
    the same shape, strides and dtype must not run with the copy's (contiguous) strides."""
    x = pt.vector("x")
    f = pytensor.function([x], pt.exp(x), mode="AOT")
    (thunk,) = [t for t in f.maker.linker.thunks if isinstance(t, am.ElemwiseThunk)]
    raw = np.zeros(8 * 40 + 1, np.uint8)
    misaligned = raw[1:].view(np.float64)[::2]  # stride 16, not aligned: copied inside
    aligned = np.linspace(-1, 1, 40)[::2]  # stride 16, aligned: read in place
    misaligned[:] = aligned[::-1]
    assert not misaligned.flags.aligned and misaligned.strides == aligned.strides
    for v in (misaligned, aligned, misaligned, aligned):
        thunk.inputs[0][0] = v
        thunk()
        np.testing.assert_allclose(thunk.outputs[0][0], np.exp(v))


def test_coverage_cli_reports_every_function_of_a_script(aot_lib, tmp_path):
    script = tmp_path / "model.py"
    script.write_text(
        "import numpy as np, pytensor, pytensor.tensor as pt\n"
        "x = pt.matrix('x')\n"
        "f = pytensor.function([x], [pt.special.softmax(x, axis=1), x.T @ x])\n"
        "g = pytensor.function([x], pt.exp(x).sum())\n"
        "f(np.ones((3, 2))); g(np.ones((3, 2)))\n")
    env = dict(os.environ, AOT_LIBRARY_DIR=str(aot_lib.directory))
    res = subprocess.run([sys.executable, "-m", "aotkernels", "coverage", "-v", str(script)],
                         env=env, capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout
    assert "function 0:" in out and "function 1:" in out and "total: 2 functions" in out
    assert "Softmax" in out and "Dot22" in out and "pytensor " not in out, out
    assert out.count("plan (from the 2nd call of a geometry): kernel") == 2, out


def _plan(f):
    plans = [p for p in getattr(f.vm, "plans", {}).values() if p is not None]
    return plans[0] if plans else None


def _replays(f, ref, values, calls: int = 4) -> None:
    """Call ``f`` and ``ref`` on ``calls`` variants of one geometry and compare every result;
    no result may share memory with another call's."""
    results = []
    for k in range(calls):
        vals = _variants(values, k)
        got, want = f(*vals), ref(*vals)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and g.shape == w.shape
            _close(g, w)
        results.append([g for g in got if g.size])
    for i, rs in enumerate(results):
        for later in results[i + 1:]:
            assert not any(np.shares_memory(p, q) for p in rs for q in later)


def _modes(inputs, outputs):
    return (pytensor.function(inputs, outputs, mode="AOT"),
            pytensor.function(inputs, outputs, mode="FAST_COMPILE"))


def test_whole_graphs_replay_from_c(aot_lib):
    """Logistic regression's loss and gradient (gemv, reductions, views, shape arithmetic):
    after the recorded call no node runs in Python, and results follow the inputs."""
    x, w, t = pt.matrix("x"), pt.vector("w"), pt.vector("t")
    p = pt.sigmoid(x @ w)
    loss = -pt.mean(t * pt.log(p) + (1 - t) * pt.log(1 - p)) + 1e-3 * pt.sum(w ** 2)
    f, ref = _modes([x, w, t], [loss, pytensor.grad(loss, w)])
    _replays(f, ref, [M, V5, (V6 > 0).astype(float)])
    kinds = _plan(f).kinds()
    assert kinds["kernel"] >= 15 and set(kinds) <= {"kernel", "view", "static"}, kinds


def test_plans_replay_every_kernel_family(aot_lib):
    """Reductions (with a float32 result cast), along-axis ops, products, joins and allocs
    run as plan steps; a float32 sum's accumulator is scratch refilled every call."""
    x, z, r = pt.matrix("x"), pt.matrix("z"), pt.vector("r")
    f4 = pt.fmatrix("f4")
    outs = [pt.argmax(x, axis=1), pt.cumsum(x, axis=1), pt.special.softmax(x, axis=1),
            pt.special.log_softmax(x, axis=0), pt.concatenate([x, x * 2]),
            pt.alloc(r, 4, 5), x @ x.T, z + 2 * (x @ x[:5].T), r + x.T @ x[:, 0],
            pt.sum(x, axis=0), pt.max(x), pt.all(x > 0, axis=1), pt.sum(f4, axis=1),
            pt.prod(x[::-1, ::2], axis=0), pt.zeros((x.shape[0], 2)) + x[:, :2]]
    f, ref = _modes([x, z, r, f4], outs)
    _replays(f, ref, [M, P, V5, M.astype(np.float32)])
    kinds = _plan(f).kinds()
    assert kinds["kernel"] >= len(outs), kinds
    python = [str(node) for kind, node, *_ in _plan(f).finish if kind == "python"]
    assert not any(name.split("{")[0] in ("Argmax", "CumOp", "Softmax", "LogSoftmax", "Join",
                                           "Alloc", "Dot22", "Gemm", "Gemv", "Sum", "Max")
                   for name in python), python


def test_views_and_indices_in_plans(aot_lib):
    """Constant views are offsets into their base; a view whose index is an input runs in
    Python every call, and kernels read it where it is this call."""
    x, i = pt.vector("x"), pt.lscalar("i")
    y = pt.exp(x[2:]) + x[:-2].T + x[::-1][1:-1]
    dyn = pt.exp(x[i:i + 3]) * 2
    f, ref = _modes([x, i], [y, dyn, x[1:] * 3])
    v = np.linspace(-1, 1, 9)
    for k, start in enumerate((0, 0, 3, 1, 5, 0)):
        vals = (_variants([v], k)[0], np.array(start))
        for g, w in zip(f(*vals), ref(*vals)):
            np.testing.assert_allclose(g, w, rtol=1e-13)
    assert _plan(f) is not None


def test_same_array_for_two_inputs_then_different_ones(aot_lib):
    """f(a, a) records one buffer behind both inputs; the plan must still read each input
    from where it is when the arrays differ."""
    x, y = pt.vector("x"), pt.vector("y")
    f, ref = _modes([x, y], [x * 2 + y, pt.exp(x) - y])
    a = np.linspace(0, 1, 6)
    for args in ((a, a), (a, a + 1), (a + 2, a), (a, a)):
        for g, w in zip(f(*args), ref(*args)):
            np.testing.assert_allclose(g, w, rtol=1e-13)


def test_results_that_are_views_of_plan_buffers_are_fresh(aot_lib):
    x = pt.matrix("x")
    e = pt.exp(x)
    f, ref = _modes([x], [e.T, e[1:], e.sum(axis=0), pt.exp(x).T @ x])
    _replays(f, ref, [M])


def test_intermediates_share_memory_when_their_lives_do_not_overlap(aot_lib):
    """Without inplace rewrites a chain of eight nodes has seven intermediates, but needs
    only two buffers at a time, as PyTensor's garbage collection would."""
    x = pt.vector("x")
    y = x
    for op in (pt.exp, pt.sin, pt.tanh, pt.cos, pt.sigmoid, pt.abs, pt.log1p, pt.sqrt):
        y = op(y)
    f = pytensor.function([x], [y, x * 2], mode=am.AOT.excluding("inplace"))
    ref = pytensor.function([x], [y, x * 2], mode="FAST_COMPILE")
    _replays(f, ref, [np.linspace(-1, 1, 1000)])
    assert _plan(f).kinds()["kernel"] == 9
    big = [a for a in _plan(f).keep if isinstance(a, np.ndarray) and a.nbytes >= 8000]
    blocks = {a.base.ctypes.data if isinstance(a.base, np.ndarray) else a.ctypes.data
              for a in big}
    assert len(big) == 7 and len(blocks) == 2, (len(big), len(blocks))


def test_nodes_numpy_computes_are_never_replayed(aot_lib, monkeypatch):
    """Without BLAS kernels Gemm copies z with a kernel, then NumPy adds the product: the
    plan must not replay the copy alone (the record marks the NumPy part opaque)."""
    from aotkernels import linalg

    monkeypatch.setattr(linalg, "_kernel", lambda op, dtype: (None, None))
    x, z = pt.matrix("x"), pt.matrix("z")
    f, ref = _modes([x, z], [z + 2 * (x @ x[:5].T), (x @ x.T).sum()])
    assert any(type(t.node.op).__name__ == "Gemm" for t in f.maker.linker.thunks
               if isinstance(t, am.OpThunk))
    _replays(f, ref, [M, P])


def test_later_calls_run_a_plan_from_c(aot_lib):
    from aotkernels.plan import _Segment

    x, y = pt.vector("x"), pt.vector("y")
    out = pt.exp(-x * x) * pt.sigmoid(y) + pt.log1p(pt.abs(x - y)) / (1 + y * y)
    f = pytensor.function([x, y], [out, x * 2], mode="AOT")
    ref = pytensor.function([x, y], [out, x * 2], mode="FAST_COMPILE")
    assert isinstance(f.vm, am.PlannedLoop)
    results = []
    for k in range(4):
        a, b = rng.normal(size=7) * (k + 1), rng.normal(size=7)
        got = f(a, b)
        for g, w in zip(got, ref(a, b)):
            np.testing.assert_allclose(g, w, rtol=1e-12)
        results.append(got)
    plan = _plan(f)
    assert plan is not None and any(isinstance(i, _Segment) for i in plan.items)
    # every call returns new arrays: no result is an internal (pinned) buffer
    flat = [r for rs in results for r in rs]
    assert not any(np.shares_memory(p, q) for i, p in enumerate(flat) for q in flat[i + 1:])


def test_a_value_leaving_the_plan_geometry_is_caught(aot_lib):
    """x[::k] is made by a thunk-run node: its strides change with k while the inputs'
    geometry (the plan key) does not, so the plan must notice and finish thunk by thunk."""
    x, k = pt.vector("x"), pt.lscalar("k")
    y = pt.exp(x[::k]) + 1
    f = pytensor.function([x, k], y, mode="AOT")
    v = np.linspace(0, 1, 12)
    for step in (1, 1, 2, 3, 1, 4, 4):
        np.testing.assert_allclose(f(v, step), np.exp(v[::step]) + 1, rtol=1e-13)


def test_kernel_errors_surface_from_a_plan(aot_lib):
    i, j = pt.lvector("i"), pt.lvector("j")
    f = pytensor.function([i, j], (i // j) * 2 + i, mode="AOT")
    np.testing.assert_array_equal(f(np.array([4, 9]), np.array([2, 3])), [8, 15])
    np.testing.assert_array_equal(f(np.array([6, 9]), np.array([2, 3])), [12, 15])
    assert _plan(f) is not None
    with pytest.raises(ZeroDivisionError):
        f(np.array([1, 2]), np.array([1, 0]))
    np.testing.assert_array_equal(f(np.array([4, 9]), np.array([2, 3])), [8, 15])


def test_dtypes_outside_the_abi_fall_back_to_pytensor(aot_lib):
    x, y = pt.vector("x", dtype="complex128"), pt.vector("y", dtype="complex128")
    f = pytensor.function([x, y], [pt.concatenate([x, y]), pt.alloc(x, 2, 3)], mode="AOT")
    v = np.array([1 + 2j, 3, 4j])
    joined, filled = f(v, v[::-1])
    np.testing.assert_array_equal(joined, np.concatenate([v, v[::-1]]))
    np.testing.assert_array_equal(filled, np.broadcast_to(v, (2, 3)))
    ops = {node.split("{")[0].split("(")[0]: s for node, s in am.coverage(f)}
    assert ops["Join"] == ops["Alloc"] == "pytensor", ops


def test_plans_per_function_are_bounded(aot_lib):
    x = pt.vector("x")
    f = pytensor.function([x], pt.exp(x) * 2 + x, mode="AOT")
    for n in range(1, 12):
        for _ in range(2):  # the second call of a geometry runs its plan
            v = np.linspace(0, 1, n)
            np.testing.assert_allclose(f(v), np.exp(v) * 2 + v, rtol=1e-13)
        assert len(f.vm.plans) <= am.PlannedLoop.MAX_PLANS
