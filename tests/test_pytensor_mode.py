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
am = pytest.importorskip("aotkernels.pytensor")


from pytensor.compile.builders import OpFromGraph  # noqa: E402
from pytensor.tensor.elemwise import CAReduce  # noqa: E402
from pytensor_cases import CASES, V5, M, P, close, modes, replays, rng, variants  # noqa: E402

from aotkernels.pytensor.thunks import ElemwiseThunk, KernelThunk  # noqa: E402


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_graph_matches_pytensor(case, aot_lib):
    name, inputs, outputs, values = case
    f = pytensor.function(inputs, outputs, mode="AOT")
    ref = pytensor.function(inputs, outputs, mode="FAST_COMPILE")
    results = []
    for k in (0, 1, 2, 0):  # recorded, then replayed by the plan with other numbers
        vals = variants(values, k)
        got, want = f(*vals), ref(*vals)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and g.shape == w.shape
            close(g, w)
        results += [g for g in got if isinstance(g, np.ndarray) and g.size]
    assert not any(np.shares_memory(p, q) for i, p in enumerate(results)
                   for q in results[i + 1:]), "a result aliases another call's result"
    sources = am.coverage_summary(f)
    assert sources["aot"] + sources["jit"] > 0, sources
    assert sources["pending"] == 0


def test_inverse_trig_runs_on_kernels(aot_lib):
    """arctan2 (VonMises' logp: with it on ``perform``, a VonMises model's plan kept a Python
    item and nutpie fell back to Python callbacks), arcsin, arccos, arctan, arccosh."""
    name, inputs, outputs, values = next(c for c in CASES if c[0].startswith("inverse trig"))
    f = pytensor.function(inputs, outputs, mode="AOT")
    replays(f, pytensor.function(inputs, outputs, mode="FAST_COMPILE"), values)
    off = [row for row, source in am.coverage(f) if source == "pytensor"]
    assert not off, off


def test_scalar_ops_named_by_their_scipy_function_run_on_kernels(aot_lib):
    """A scalar op defined outside PyTensor whose ``nfunc_spec`` names a SciPy function
    (PyMC's ``I0e`` and ``I1e``, the Rice distribution's, are written like this one): its
    ``Elemwise`` and a ``Composite`` holding it run on kernels, with SciPy's numbers. One
    naming an unknown function, or with another arity, stays on ``perform``."""
    import scipy.special
    from pytensor.scalar.basic import UnaryScalarOp, upgrade_to_float_no_complex
    from pytensor.tensor.elemwise import Elemwise

    class ScaledBessel(UnaryScalarOp):
        nfunc_spec = ("scipy.special.i0e", 1, 1)

        def impl(self, x):
            return scipy.special.i0e(x)

    class Unknown(ScaledBessel):
        nfunc_spec = ("scipy.special.not_a_function", 1, 1)

    i0e = Elemwise(ScaledBessel(upgrade_to_float_no_complex, name="i0e"))
    other = Elemwise(Unknown(upgrade_to_float_no_complex, name="unknown"))
    x, y = pt.vector("x"), pt.fvector("y")
    outs = [i0e(x), pt.exp(i0e(x) * 2) + x, i0e(y), other(x)]
    f, ref = modes([x, y], outs)
    replays(f, ref, [np.linspace(-30, 30, 41), np.linspace(-5, 5, 11).astype("float32")])
    sources = {row: source for row, source in am.coverage(f)}
    served = [src for row, src in sources.items() if row.lower().startswith("i0e")]
    assert len(served) >= 2 and all(src in ("aot", "jit") for src in served), sources
    assert [src for row, src in sources.items()
            if row.lower().startswith("unknown")] == ["pytensor"], sources
    np.testing.assert_array_equal(f(np.array([0.5, -3.0]), np.ones(1, "float32"))[0],
                                  scipy.special.i0e([0.5, -3.0]))


def test_products_without_zeros_run_on_kernels(aot_lib):
    """``ProdWithoutZeros`` (PyTensor's gradient of ``prod``, a Wishart's logp): the product
    of the nonzero elements, 0 where all are zero, over every axis choice, float64 and
    float32: kernel steps, no Python item, the reference's numbers (up to the order of the
    multiplications) for no zero, one zero, all zeros and NaN."""
    from pytensor.tensor.math import ProdWithoutZeros

    x, y = pt.matrix("x"), pt.fmatrix("y")
    outs = [ProdWithoutZeros(axis=axis)(v) for v in (x, y) for axis in (None, (0,), (1,))]
    outs += pytensor.grad(pt.prod(x), [x])
    f, ref = modes([x, y], outs)
    base = np.linspace(0.5, 1.7, 12).reshape(3, 4)
    for m in (base, np.where(np.eye(3, 4) > 0, 0.0, base), np.zeros((3, 4)),
              np.where(np.eye(3, 4) > 0, np.nan, base)):
        m = m.copy()
        m[2, :] = 0.0 if m is not base else m[2, :]
        for _ in range(2):
            for got, want in zip(f(m, m.astype("float32")), ref(m, m.astype("float32"))):
                np.testing.assert_allclose(got, want, rtol=1e-6 if got.dtype == "float32"
                                           else 1e-14)
    rows = [(r, src) for r, src in am.coverage(f) if r.startswith("ProdWithoutZeros")]
    assert len(rows) >= 6 and all(src in ("aot", "jit") for _, src in rows), am.coverage(f)
    assert am.plan_summary(f)["python"] == 0


def test_truncation_rounding_and_angles_run_on_kernels(aot_lib):
    """``trunc``, ``round(mode="half_away_from_zero")``, ``deg2rad`` and ``rad2deg`` ran
    ``perform`` in a Python item of the plan. On kernels now, with ``perform``'s numbers bit
    for bit: the rounding is PyTensor's ``floor(x + 0.5)`` (C's ``round`` differs at
    0.49999999999999994), float32 angles multiply by a float32 constant as NumPy's loops
    do, and small integers convert to float32 before the product, as ``perform`` does."""
    x, y, i = pt.vector("x"), pt.fvector("y"), pt.vector("i", dtype="int8")
    outs = [pt.trunc(x) * 2, pt.round(x, mode="half_away_from_zero"), pt.deg2rad(x) + 1,
            pt.rad2deg(y), pt.trunc(y) - pt.round(y, mode="half_away_from_zero"),
            pt.deg2rad(i) * 2, pt.rad2deg(i) + y, pt.trunc(i)]
    f = pytensor.function([x, y, i], outs, mode="AOT")
    ref = pytensor.function([x, y, i], outs, mode=pytensor.compile.mode.Mode("py", None))
    X = np.concatenate([np.linspace(-400, 400, 997), [0.49999999999999994, -0.5, 2.5, -0.0,
                                                      np.inf, -np.inf, np.nan]])
    Y = np.concatenate([np.linspace(-7, 7, 999).astype("float32"),
                        np.float32([0.49999997, -2.5, 1e30, -0.0, np.nan])])
    small = np.resize(np.arange(-128, 128).astype("int8"), X.size)
    for _ in range(3):
        for got, want in zip(f(X, Y, small), ref(X, Y, small)):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
            assert np.array_equal(np.signbit(got), np.signbit(want))
    assert am.plan_summary(f)["python"] == 0, am.coverage(f)
    assert not [row for row, source in am.coverage(f) if source == "pytensor"]


def test_mixed_dtype_products_and_solves_run_on_kernels(aot_lib):
    """Under ``floatX=float32`` a model's float64 data meets float32 parameters: ``Dot`` of
    a float64 design matrix and a float32 vector, a triangular solve of a float64 factor and
    a float32 right-hand side (marginal GP). PyTensor upcasts them to float64, and so do
    recorded kernel steps; int16 indices (PyMC's integer data there) are converted to int64.
    No Python item (each was one per call), NumPy's numbers."""
    X = np.linspace(-1, 1, 24).reshape(6, 4)
    w, b, g = pt.fvector("w"), pt.fmatrix("b"), pt.vector("g", dtype="int16")
    L = np.tril(np.linspace(1, 2, 36).reshape(6, 6)) + 6 * np.eye(6)
    outs = [pt.dot(X, w) + 1, pt.dot(w, X.T) * 2,
            pt.linalg.solve_triangular(L, b, lower=True) + 1,
            pt.linalg.solve(L @ L.T, b, assume_a="pos") * 2]
    assert all(o.dtype == "float64" for o in outs)
    # integer data become int16 indices there: converted to int64 by a recorded step
    i, j = g % 4, g % 2  # int16 still, in range whatever values a call brings
    outs += [pt.exp(w)[i] * 2, pt.inc_subtensor(pt.exp(w)[i], 1.0) + 0, b[i, j] + 1]
    f, ref = modes([w, b, g], outs)
    replays(f, ref, [np.linspace(0, 1, 4).astype("float32"),
                     np.linspace(-1, 1, 12).reshape(6, 2).astype("float32"),
                     np.array([0, 3, 1, 1, -1], "int16")])
    assert am.plan_summary(f)["python"] == 0, am.coverage(f)


def test_batched_products_run_on_kernels(aot_lib):
    """``BatchedDot`` (``pt.matmul``/``einsum`` of 3-d tensors, per-group design matrices)
    and its gradient: one BLAS product per batch entry, no Python item; float32 with
    float64, strided and transposed batches, empty batches and inner sizes of 0; a batch
    size mismatch raises ``perform``'s ``TypeError`` on the first call and on replays."""
    a, b, c = pt.tensor3("a"), pt.tensor3("b"), pt.ftensor3("c")
    outs = [pt.matmul(a, b) * 2, pt.einsum("bij,bjk->bik", a, c) + 1,
            *pytensor.grad((pt.matmul(a, b) ** 2).sum(), [a, b])]
    f, ref = modes([a, b, c], outs)
    r = np.random.default_rng(5)
    for shapes in [((3, 4, 5), (3, 5, 2)), ((1, 2, 3), (1, 3, 4)), ((0, 2, 3), (0, 3, 4)),
                   ((2, 0, 3), (2, 3, 4)), ((2, 3, 0), (2, 0, 4))]:
        x, y = r.normal(size=shapes[0]), r.normal(size=shapes[1])
        replays(f, ref, [x, y, y.astype("float32")])
    big = r.normal(size=(3, 10, 5))
    replays(f, ref, [big[:, ::2, :].transpose(0, 1, 2), r.normal(size=(3, 2, 5)).transpose(
        0, 2, 1), r.normal(size=(3, 5, 2)).astype("float32")])
    assert am.plan_summary(f)["python"] == 0, am.coverage(f)
    rows = [src for row, src in am.coverage(f) if row.startswith("BatchedDot")]
    assert len(rows) >= 3 and all(src == "aot" for src in rows), am.coverage(f)
    for _ in range(3):
        with pytest.raises(TypeError, match="same size in axis 0"):
            f(r.normal(size=(3, 4, 5)), r.normal(size=(2, 5, 2)),
              r.normal(size=(3, 5, 2)).astype("float32"))


def test_constant_boolean_masks_become_indices(aot_lib):
    """``x[mask]``, ``set_subtensor``/``inc_subtensor`` of it, for a constant boolean
    vector (rows of a matrix too): integer indices on the take/put/inc kernels, no Python
    item (a mask index was one per call), the reference's numbers; where the length is not
    static, a mask of another length raises NumPy's ``IndexError`` on every call."""
    mask = np.array([True, False, True, True, False])
    x, m, s = pt.vector("x"), pt.matrix("m"), pt.tensor("s", shape=(5,))
    outs = [x[mask] * 2, pt.set_subtensor(x[mask], 0.0) + 1, pt.inc_subtensor(x[mask], 1.5),
            m[mask] + 1, pt.set_subtensor(m[mask], m[mask] * 3) * 1, s[mask] * 2]
    f, ref = modes([x, m, s], outs)
    r = np.random.default_rng(2)
    replays(f, ref, [r.normal(size=5), r.normal(size=(5, 3)), r.normal(size=5)])
    assert am.plan_summary(f)["python"] == 0, am.coverage(f)
    assert not [row for row, src in am.coverage(f) if src == "pytensor"], am.coverage(f)
    for _ in range(3):
        with pytest.raises(IndexError):
            ref(r.normal(size=7), r.normal(size=(5, 3)), r.normal(size=5))
        with pytest.raises(IndexError):
            f(r.normal(size=7), r.normal(size=(5, 3)), r.normal(size=5))


def test_argsort_runs_on_kernels(aot_lib):
    """``ArgSortOp`` (``pt.argsort`` in a Deterministic: on ``perform`` it kept a Python
    item in the expand function, and nutpie fell back to Python callbacks): every axis,
    integers, the stable kind with ties; NumPy's indices, no Python item."""
    x, m, k = pt.vector("x"), pt.matrix("m"), pt.lvector("k")
    outs = [pt.argsort(x) + 1, pt.argsort(m, axis=0) * 1, pt.argsort(m, axis=None) + 0,
            pt.argsort(k, kind="stable") + 0, pt.argsort(m, axis=1, kind="mergesort") * 2]
    f, ref = modes([x, m, k], outs)
    r = np.random.default_rng(4)
    replays(f, ref, [r.normal(size=9), r.normal(size=(4, 3)), r.integers(0, 3, 10)])
    rows = [src for row, src in am.coverage(f) if row.startswith("ArgSortOp")]
    assert len(rows) == 5 and all(src in ("aot", "jit") for src in rows), am.coverage(f)
    assert am.plan_summary(f)["python"] == 0


def test_sort_runs_on_kernels(aot_lib):
    """``SortOp`` (a Deterministic's ``pt.sort``: on ``perform`` it kept a Python item in
    the expand function, and nutpie fell back to Python callbacks): every axis, the
    flattened array, integers; the same bits as ``np.sort`` in the plan too."""
    name, inputs, outputs, values = next(c for c in CASES if c[0].startswith("sort"))
    f = pytensor.function(inputs, outputs, mode="AOT")
    replays(f, pytensor.function(inputs, outputs, mode="FAST_COMPILE"), values)
    rows = [(row, source) for row, source in am.coverage(f) if row.startswith("SortOp")]
    assert len(rows) == 5 and all(source == "aot" for _, source in rows), rows
    assert am.plan_summary(f)["python"] == 0


def test_inplace_graphs_are_served(aot_lib):
    x = pt.vector("x")
    y = pt.exp(x) * 2 + 1
    f = pytensor.function([x], y, mode="AOT")
    inplace = [t for t in f.maker.linker.thunks
               if isinstance(t, ElemwiseThunk) and t.inplace is not None]
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


def test_served_nodes_skip_pytensors_thunk_preparation(aot_lib, monkeypatch):
    """A node served on kernels gets its thunk without PyTensor's ``make_thunk``, whose
    ``Elemwise.prepare_node`` builds what only ``perform`` uses (the ufunc, SciPy's
    function for ``sigmoid``: an import of ``scipy.special`` in a warm start); a node left
    to PyTensor is prepared as before and still runs."""
    import pytensor.scalar as ps
    from pytensor.tensor.elemwise import Elemwise

    class Halve(ps.UnaryScalarOp):  # a scalar op aotkernels does not know
        def impl(self, x):
            return x / 2

    monkeypatch.setenv("AOT_GRAPH_CACHE", "0")  # the graph's own Ops, not a stored copy's
    x = pt.vector("x")
    halve = Halve(ps.upgrade_to_float, name="halve")
    f = pytensor.function([x], [Elemwise(ps.sigmoid)(x), Elemwise(halve)(x)], mode="AOT")
    X = np.linspace(-0.9, 0.9, 7)
    got_served, got_kept = f(X)
    close(got_served, 1 / (1 + np.exp(-X)))
    close(got_kept, X / 2)
    linker = f.maker.linker
    by_op = {type(node.op.scalar_op).__name__: (node.op, thunk)
             for node, thunk in zip(linker.nodes, linker.thunks) if isinstance(node.op, Elemwise)}
    (served, served_thunk), (kept, kept_thunk) = by_op["Sigmoid"], by_op["Halve"]
    assert isinstance(served_thunk, ElemwiseThunk)
    assert not isinstance(kept_thunk, KernelThunk)
    assert served.nfunc is None and served.ufunc is None  # never prepared
    assert kept.nfunc is not None or kept.ufunc is not None  # PyTensor's thunk, prepared


def test_quick_validation_rejects_what_pytensors_rejects(aot_lib):
    """``lean_rewriting.quick_validation`` swaps only how a failed validation finds its caller:
    a replacement the destroy handler refuses (two inplace writers of one input) raises
    the same exception and leaves the graph as it was, as with PyTensor's validation."""
    import pytensor.scalar as ps
    from pytensor.graph.destroyhandler import DestroyHandler
    from pytensor.graph.features import ReplaceValidate
    from pytensor.graph.fg import FunctionGraph
    from pytensor.tensor.elemwise import Elemwise

    from aotkernels.pytensor import lean_rewriting

    outcomes = []
    for quick in (False, True):
        x = pt.vector("x")
        a, b = pt.exp(x + 1), pt.log(x + 1)
        fg = FunctionGraph([x], [a + b], features=[ReplaceValidate(), DestroyHandler()],
                           clone=False)
        if quick:
            lean_rewriting.quick_validation(fg)
            assert fg.validate.func is lean_rewriting._validate
        shared = a.owner.inputs[0]  # x + 1, read by both
        inplace = Elemwise(ps.exp, {0: 0})(shared), Elemwise(ps.log, {0: 0})(shared)
        fg.replace_all_validate([(a, inplace[0])])  # one writer: fine
        try:
            fg.replace_all_validate([(b, inplace[1])])  # a second writer: refused
            outcomes.append(None)
        except Exception as exc:
            outcomes.append(type(exc))
        outcomes.append(sorted(str(n.op) for n in fg.apply_nodes))
    assert outcomes[0] is not None and outcomes[:2] == outcomes[2:], outcomes


def test_dense_graphs_never_probe_the_blas_toolchain(aot_lib, monkeypatch):
    """PyTensor 2.38's sparse ``local_usmm`` pattern (in ``specialize``) reads
    ``config.blas__ldflags`` on any ``z - alpha * w`` whose ``alpha`` broadcasts, before it
    looks for a sparse dot; reading it the first time runs the C compiler (0.2-0.6 s of a
    cold PyMC compile). Mode AOT excludes it: a dense graph compiles without that read, and
    computes what PyTensor's Python linker computes."""
    from pytensor.configdefaults import config

    param = config._config_var_dict["blas__ldflags"]
    reads = []
    had_value = hasattr(param, "val")
    monkeypatch.delattr(param, "val", raising=False)
    monkeypatch.setattr(param, "_default", lambda: reads.append(1) or "")
    monkeypatch.setenv("AOT_GRAPH_CACHE", "0")
    try:
        z, w, a = pt.vector("z"), pt.vector("w"), pt.scalar("a")
        f = pytensor.function([z, w, a], z - a * pt.exp(w), mode="AOT")
    finally:
        if not had_value and hasattr(param, "val"):
            del param.val
    assert reads == []
    Z, W = np.linspace(-1, 1, 5), np.linspace(0, 2, 5)
    close(f(Z, W, 0.5), Z - 0.5 * np.exp(W))


LATE_SPARSE = r"""
import pytensor, pytensor.tensor as pt
import aotkernels.pytensor
x = pt.vector("x")
f = pytensor.function([x], pt.exp(x) - 2 * x, mode="AOT")
import pytensor.sparse  # PyTensor 3.x imports it lazily: its rewrites register now
g = pytensor.function([x], pt.log1p(x) - 3 * x, mode="AOT")
print(f([1.0])[0], g([1.0])[0])
"""


def test_pytensor_sparse_imports_after_a_mode_aot_compile(aot_lib):
    """Mode AOT's query must not name a rewrite PyTensor has not registered yet: excluding
    ``local_usmm`` before ``pytensor.sparse`` was imported made it a tag of the database,
    and the later import (PyTensor 3.x, lazily) failed to register it, which broke every
    rewrite that imports ``pytensor.sparse`` (15 of PyTensor's own rewriting tests)."""
    env = dict(os.environ, AOT_LIBRARY_DIR=str(aot_lib.directory), AOT_GRAPH_CACHE="0")
    res = subprocess.run([sys.executable, "-c", LATE_SPARSE], env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "already present" not in res.stderr, res.stderr[-3000:]
    got = [float(v) for v in res.stdout.split()]
    close(np.array(got), np.array([np.exp(1.0) - 2, np.log1p(1.0) - 3]))


def test_inplace_passes_run_without_shape_inference(aot_lib, monkeypatch):
    """Mode AOT detaches PyTensor's ``ShapeFeature`` before the inplace passes
    (``aot_drop_shape_feature``), which otherwise infer the shape of every node they try:
    the rewritten graph is the one the passes make with the feature attached, node for
    node, and computes what PyTensor's Python linker computes. Fails if the feature stays
    (the shape work is back) or if dropping it changes the graph."""
    import io

    from pytensor.compile.mode import Mode

    monkeypatch.setenv("AOT_GRAPH_CACHE", "0")
    x, y, w = pt.vector("x"), pt.vector("y"), pt.matrix("w")
    h = pt.tanh(pt.dot(w, x) * 2.0 + y)
    loss = (pt.exp(-h) * pt.log1p(y ** 2) - pt.sigmoid(h + y)).sum() + (w ** 2).sum()
    outs = [loss, *pytensor.grad(loss, [x, w])]
    f = pytensor.function([x, y, w], outs, mode="AOT")
    with_feature = pytensor.function([x, y, w], outs,
                                     mode=am.AOT.excluding("aot_drop_shape_feature"))
    assert not hasattr(f.maker.fgraph, "shape_feature")
    assert hasattr(with_feature.maker.fgraph, "shape_feature")

    def text(fn):
        out = io.StringIO()
        pytensor.dprint(fn.maker.fgraph, print_type=True, file=out)
        return out.getvalue()

    assert text(f) == text(with_feature)
    assert any(getattr(n.op, "destroy_map", None) for n in f.maker.fgraph.apply_nodes)
    X, Y = np.linspace(-1, 1, 4), np.linspace(0.5, 2, 3)
    W = np.arange(12.0).reshape(3, 4) / 10
    py = pytensor.function([x, y, w], outs, mode=Mode(linker="py", optimizer=None))
    for _ in range(3):  # the first call, the recorded one, the plan
        for got, want in zip(f(X, Y, W), py(X, Y, W)):
            close(got, want)


def test_dimshuffles_are_built_without_reading_their_c_file(aot_lib, monkeypatch):
    """Rewrites build hundreds of ``DimShuffle`` Ops, and PyTensor's ``ExternalCOp``
    constructor reads and parses the Op's C file in every one; mode AOT reads it once per
    class: later Ops get the same code and sections without touching the file."""
    from pathlib import Path

    from pytensor.tensor.elemwise import DimShuffle

    first = DimShuffle(input_ndim=1, new_order=(0, "x"))
    opened = []
    real_read = Path.read_text
    monkeypatch.setattr(Path, "read_text",
                        lambda self, *a, **k: opened.append(self) or real_read(self, *a, **k))
    second = DimShuffle(input_ndim=2, new_order=(1, 0))
    assert opened == []
    assert second.func_codes == first.func_codes and second.func_codes is not first.func_codes
    assert second.code_sections == first.code_sections
    assert second.code_sections is not first.code_sections
    x = pt.matrix("x")
    f = pytensor.function([x], x.T * 2, mode="AOT")
    close(f(np.arange(6.0).reshape(2, 3)), np.arange(6.0).reshape(2, 3).T * 2)


SOFTMAX = r"""
import json, sys
import numpy as np
import pytensor, pytensor.tensor as pt
import aotkernels.pytensor as am
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


class Wrapped(OpFromGraph):
    """An OpFromGraph subclass (like PyTensor's softmax wrappers): not inlined."""


def test_inner_graphs_run_in_aot_mode(aot_lib):
    """A plain OpFromGraph is inlined (its nodes are kernel steps of the outer plan); a
    subclass without a kernel runs its inner graph in mode AOT, node by node."""
    a = pt.vector("a")
    inner = [pt.exp(a) * 2 + pt.sum(a)]
    x = pt.vector("x")
    v = np.linspace(0, 1, 5)
    for op, inlined in ((OpFromGraph([a], inner), True), (Wrapped([a], inner), False)):
        f = pytensor.function([x], op(x) + 1, mode="AOT")
        for _ in range(3):
            np.testing.assert_allclose(f(v), np.exp(v) * 2 + v.sum() + 1)
        rows = am.coverage(f)
        nested = [source for node, source in rows if " / " in node]
        assert any("OpFromGraph" in node or "Wrapped" in node for node, _ in rows) != inlined
        if inlined:
            assert not nested and am.plan_summary(f)["python"] == 0, rows
        else:
            assert nested and "aot" in nested and "pytensor" not in nested, rows

def test_inlining_clones_the_inner_graph_only(aot_lib, monkeypatch):
    """Inlining a plain OpFromGraph adds its inner graph's nodes and nothing else (PyTensor's
    ``inline_ofg_node`` cloned the inputs' graphs too, for the merge passes to fold back);
    the compiled graph is no larger than with PyTensor's inlining (on PyTensor 2.38 that one
    is larger here: a subtensor is lifted into one copy of the inputs' graph before the
    copies merge, so the upstream is computed twice), and its numbers are FAST_COMPILE's."""
    from pytensor.graph.fg import FunctionGraph
    from pytensor.graph.rewriting.basic import dfs_rewriter
    from pytensor.tensor.rewriting.ofg import inline_ofg_node

    from aotkernels.pytensor import rewrites

    x, a, b = pt.vector("x"), pt.vector("a"), pt.vector("b")
    upstream = pt.exp(pt.cumsum(x)) * 3 + pt.log1p(x ** 2)
    ofg = OpFromGraph([a, b], [a[::-1] * 2 + b.sum(), a * b])
    out = pt.sum(ofg(upstream, x)[0]) + pt.sum(ofg(upstream * 2, upstream)[1])
    fg = FunctionGraph([x], [out], clone=True)
    before = len(fg.apply_nodes)
    dfs_rewriter(rewrites.aot_inline_ofg).rewrite(fg)
    assert len(fg.apply_nodes) <= before + 2 * (len(ofg.fgraph.apply_nodes) - 1)

    monkeypatch.setenv("AOT_GRAPH_CACHE", "0")
    v = np.linspace(-1, 1, 7)
    sizes, values = [], []
    for inline in (rewrites.inline_inner_graph, inline_ofg_node):
        monkeypatch.setattr(rewrites, "inline_inner_graph", inline)
        f = pytensor.function([x], out, mode="AOT")
        sizes.append(len(f.maker.fgraph.apply_nodes))
        values.append(f(v))
    assert sizes[0] <= sizes[1], sizes
    want = pytensor.function([x], out, mode="FAST_COMPILE")(v)
    close(values[0], want)
    close(values[1], want)


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
    want = {"Argmax", "CumOp", "Softmax", "LogSoftmax", "Join", "Alloc", "Dot22", "Gemm",
            "Gemv"}
    served = {type(t.node.op).__name__: t.source for t in f.maker.linker.thunks
              if isinstance(t, KernelThunk) and type(t.node.op).__name__ in want}
    assert want <= set(served), served
    assert all(source == "aot" for source in served.values()), served


def test_a_scalar_times_a_product_is_served(aot_lib):
    """``a * (x @ y)`` becomes PyTensor's ``Dot22Scalar`` when rewritten (``2 * (X @ X.T)``
    in a GP's kernel, a scaled design matrix product): until session 17 it ran its
    ``perform``, a Python item in every plan. Record, plan and replays against FAST_COMPILE
    (strided and transposed operands too); unaligned shapes raise perform's ValueError on
    the first call and on a replayed plan."""
    from pytensor_cases import plan_of

    x, y, a = pt.matrix("x"), pt.matrix("y"), pt.scalar("a")
    outs = [2.0 * (x @ y.T), a * (x[::2].T @ y[::2, ::-1])]
    f, ref = modes([x, y, a], outs)
    ops = {type(n.op).__name__ for n in f.maker.fgraph.apply_nodes}
    assert "Dot22Scalar" in ops, ops
    replays(f, ref, [M, P, np.array(-0.7)])
    served = [t.source for t in f.maker.linker.thunks
              if isinstance(t, KernelThunk) and type(t.node.op).__name__ == "Dot22Scalar"]
    assert len(served) == 2 and set(served) <= {"aot", "jit"}, served  # kernels, not perform
    assert not [node for kind, node, *_ in plan_of(f).finish if kind == "python"]
    for _ in range(2):
        with pytest.raises(ValueError):
            f(M, P[:, :4], np.array(1.0))
    g = pytensor.function([x, y, a], a * (x @ y), mode="AOT")
    for _ in range(4):  # record, plan, replays, then the error from the replayed plan
        close(g(M, P.T, np.array(0.5)), 0.5 * (M @ P.T))
    with pytest.raises(ValueError):
        g(M, P, np.array(0.5))


def test_an_identity_of_a_size_known_at_call_time_is_served(aot_lib):
    """``pt.eye(X.shape[0])`` (a jitter beside a GP covariance of ``pm.Data``) is an ``Eye``
    node whose size is a value: it ran ``perform`` until session 17 (plans computed it once
    per geometry all the same, a value of shapes alone). Zeros and a diagonal written
    through a strided view, still static in plans (though Gemm then writes into it in
    place); any offset ``k``, empty results, NumPy's error for a negative size."""
    from pytensor_cases import plan_of

    x, k, n = pt.dmatrix("x"), pt.lscalar("k"), pt.lscalar("n")
    outs = [x @ x.T + pt.eye(x.shape[0]) * 2.0, pt.eye(x.shape[0], x.shape[1], k) + 0.0,
            pt.eye(x.shape[1], dtype="int32") * 3]
    f, ref = modes([x, k], outs)
    rng = np.random.default_rng(0)
    for shape, kk in [((3, 4), 0)] * 4 + [((3, 4), 2), ((3, 4), -1), ((3, 4), 7),
                                          ((3, 4), -5), ((5, 2), -2), ((0, 3), 0)]:
        v = rng.normal(size=shape)
        for got, want in zip(f(v, np.int64(kk)), ref(v, np.int64(kk))):
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(got, want)
    served = {t.source for t in f.maker.linker.thunks
              if isinstance(t, KernelThunk) and type(t.node.op).__name__ == "Eye"}
    assert served and served <= {"aot", "jit"}, served
    assert plan_of(f).kinds()["static"] >= 2, plan_of(f).kinds()
    g = pytensor.function([n], pt.eye(n), mode="AOT")
    for _ in range(2):
        with pytest.raises(ValueError):
            g(np.int64(-1))


def test_a_block_diagonal_is_served(aot_lib):
    """``pt.linalg.block_diag`` (a state-space transition, a multi-output covariance) ran
    ``perform`` (scipy's ``block_diag``) until session 18: zeros and each block copied in,
    converting to the upcast dtype; empty blocks, and its gradient (views of the output's
    gradient), in a plan with no Python item."""
    from pytensor_cases import plan_of

    a, b, c = pt.dmatrix("a"), pt.fmatrix("b"), pt.imatrix("c")
    d = pt.linalg.block_diag(a, b, c)
    outs = [d, pt.linalg.block_diag(b, b) * 2.0,
            pytensor.grad(pt.sum(pt.exp(pt.linalg.block_diag(a, a.T)) * 0.5), a)]
    f, ref = modes([a, b, c], outs)
    rng = np.random.default_rng(0)
    for shapes in [((2, 3), (1, 1), (2, 2))] * 4 + [((0, 2), (3, 0), (1, 1)),
                                                   ((2, 2), (2, 2), (0, 0))]:
        vals = [rng.normal(size=shapes[0]), rng.normal(size=shapes[1]).astype("float32"),
                rng.integers(-5, 5, size=shapes[2]).astype("int32")]
        for got, want in zip(f(*vals), ref(*vals)):
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=1e-6)
    served = {t.source for t in f.maker.linker.thunks
              if isinstance(t, KernelThunk) and type(t.node.op).__name__ == "BlockDiagonal"}
    assert served and served <= {"aot", "jit"}, served
    assert "python" not in plan_of(f).kinds(), plan_of(f).kinds()


def test_softmax_grad_is_served_where_pytensor_has_it(aot_lib):
    """PyTensor 2.x has a SoftmaxGrad op (3.x spells the gradient out); run by
    tests/test_pytensor2.py on 2.38."""
    from aotkernels.pytensor.servers import SoftmaxGrad

    if SoftmaxGrad is None:
        pytest.skip("this PyTensor has no SoftmaxGrad op")
    x, y = pt.matrix("x"), pt.matrix("y")
    out = pytensor.grad(pt.sum(pt.special.softmax(x, axis=1) * y), x)
    f, ref = modes([x, y], [out])
    replays(f, ref, [M, M[::-1]])
    served = {type(t.node.op).__name__: t.source for t in f.maker.linker.thunks
              if isinstance(t, KernelThunk)}
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
    reductions = [t for t in f.maker.linker.thunks
                  if isinstance(t, KernelThunk) and isinstance(t.node.op, CAReduce)]
    assert len(reductions) >= 6 and all(t.source == "aot" for t in reductions)


def test_memoised_calls_never_reuse_a_copys_geometry(aot_lib):
    """A call whose input had to be copied (misaligned) is not memoised: the next input with
    the same shape, strides and dtype must not run with the copy's (contiguous) strides."""
    x = pt.vector("x")
    f = pytensor.function([x], pt.exp(x), mode="AOT")
    (thunk,) = [t for t in f.maker.linker.thunks if isinstance(t, ElemwiseThunk)]
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


MODEL_OPS = ("special functions (SciPy's, and PyTensor's own)",
             "integer switch conditions and composites",
             "make_vector, split, set and inc of basic slices, scalar subtensor",
             "broadcasting point indices (PyMC's p[arange(n)[:, None], y[:, None]])")


@pytest.mark.parametrize("name", MODEL_OPS)
def test_ops_real_models_use_run_on_kernels_in_plans(name, aot_lib):
    """What the model corpus needed (issue 12): SciPy's special functions, conditions of
    any dtype, Composites, MakeVector, Split, basic Set/IncSubtensor and scalar Subtensor
    run on kernels or as views, and the plan replays them with no Python item."""
    _, inputs, outputs, values = next(c for c in CASES if c[0] == name)
    f, ref = modes(inputs, outputs)
    replays(f, ref, values)
    sources = am.coverage_summary(f)
    assert sources["pytensor"] == sources["numpy"] == sources["pending"] == 0, am.coverage(f)
    kinds = am.plan_summary(f)
    assert kinds is not None and kinds["python"] == 0, kinds


def test_scan_inner_graphs_run_in_aot_mode(aot_lib):
    """A Scan's inner graph (and its gradient's) runs in mode AOT, one plan replayed every
    iteration, instead of being compiled with PyTensor's C backend. (The gradient's inner
    plan keeps its last node in Python: it writes a preallocated MIT-MOT output.)"""
    import warnings

    from pytensor.scan.op import Scan

    from aotkernels.pytensor import AOTLinker

    x, a = pt.vector("x"), pt.dscalar("a")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.x: return_updates
        hs, _ = pytensor.scan(lambda xt, h, a: a * h + pt.exp(-xt) * 0.1, sequences=[x],
                              outputs_info=[pt.zeros(())], non_sequences=[a])
    outs = [hs.sum(), *pytensor.grad(hs.sum(), [x, a])]
    f, ref = modes([x, a], outs)
    replays(f, ref, [np.linspace(0, 1, 20), np.array(0.5)])
    scans = [n.op for n in f.maker.fgraph.apply_nodes if isinstance(n.op, Scan)]
    assert len(scans) == 2
    for op in scans:
        assert isinstance(op.fn.maker.linker, AOTLinker)
        sources = am.coverage_summary(op.fn)
        assert sources["pytensor"] == sources["numpy"] == 0, am.coverage(op.fn)
        assert am.plan_summary(op.fn)["kernel"] >= 2, am.plan_summary(op.fn)
