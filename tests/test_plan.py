"""Plans: later calls of a mode-AOT function replay its kernels from C (record, plan,
replay), with the same results and errors as PyTensor's Python implementation."""

from __future__ import annotations

import numpy as np
import pytest

pytensor = pytest.importorskip("pytensor")
pt = pytest.importorskip("pytensor.tensor")
am = pytest.importorskip("aotkernels.pytensor")

from pytensor_cases import V5, V6, M, P, modes, plan_of, replays, rng, variants  # noqa: E402

from aotkernels.pytensor.executor import Segment  # noqa: E402
from aotkernels.pytensor.loop import PlannedLoop  # noqa: E402
from aotkernels.pytensor.thunks import KernelThunk  # noqa: E402


def test_whole_graphs_replay_from_c(aot_lib):
    """Logistic regression's loss and gradient (gemv, reductions, views, shape arithmetic):
    after the recorded call no node runs in Python, and results follow the inputs."""
    x, w, t = pt.matrix("x"), pt.vector("w"), pt.vector("t")
    p = pt.sigmoid(x @ w)
    loss = -pt.mean(t * pt.log(p) + (1 - t) * pt.log(1 - p)) + 1e-3 * pt.sum(w ** 2)
    f, ref = modes([x, w, t], [loss, pytensor.grad(loss, w)])
    replays(f, ref, [M, V5, (V6 > 0).astype(float)])
    kinds = plan_of(f).kinds()
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
    f, ref = modes([x, z, r, f4], outs)
    replays(f, ref, [M, P, V5, M.astype(np.float32)])
    kinds = plan_of(f).kinds()
    assert kinds["kernel"] >= len(outs), kinds
    python = [str(node) for kind, node, *_ in plan_of(f).finish if kind == "python"]
    assert not any(name.split("{")[0] in ("Argmax", "CumOp", "Softmax", "LogSoftmax", "Join",
                                           "Alloc", "Dot22", "Gemm", "Gemv", "Sum", "Max")
                   for name in python), python


def test_views_and_indices_in_plans(aot_lib):
    """Constant views are offsets into their base; a view whose index is an input runs in
    Python every call, and kernels read it where it is this call."""
    x, i = pt.vector("x"), pt.lscalar("i")
    y = pt.exp(x[2:]) + x[:-2].T + x[::-1][1:-1]
    dyn = pt.exp(x[i:i + 3]) * 2
    f, ref = modes([x, i], [y, dyn, x[1:] * 3])
    v = np.linspace(-1, 1, 9)
    for k, start in enumerate((0, 0, 3, 1, 5, 0)):
        vals = (variants([v], k)[0], np.array(start))
        for g, w in zip(f(*vals), ref(*vals)):
            np.testing.assert_allclose(g, w, rtol=1e-13)
    assert plan_of(f) is not None


def test_a_reshape_that_copies_is_a_kernel_step(aot_lib):
    """``Reshape`` of a value that is not C-contiguous (a transposed result, a strided
    slice: ZeroSumNormal's backward transform flattens one) copies in NumPy; the plan copies
    it with an identity kernel into the node's own buffer instead of running its thunk, so
    the plan keeps no Python item (and nutpie can sample it from C)."""
    x = pt.matrix("x")
    flat = pt.exp(x).T.reshape((-1,))
    rows = pt.exp(x)[:, ::2].reshape((-1,))  # rewritten to exp of the input's copy
    f, ref = modes([x], [flat * 3, rows + 1, flat, rows])
    replays(f, ref, [M])
    reshapes = [node for node in f.maker.fgraph.toposort() if "Reshape" in str(node.op)]
    python = [str(node) for kind, node, *_ in plan_of(f).finish if kind == "python"]
    assert len(reshapes) == 2 and not python, (reshapes, python, plan_of(f).kinds())


def test_same_array_for_two_inputs_then_different_ones(aot_lib):
    """f(a, a) records one buffer behind both inputs; the plan must still read each input
    from where it is when the arrays differ."""
    x, y = pt.vector("x"), pt.vector("y")
    f, ref = modes([x, y], [x * 2 + y, pt.exp(x) - y])
    a = np.linspace(0, 1, 6)
    for args in ((a, a), (a, a + 1), (a + 2, a), (a, a)):
        for g, w in zip(f(*args), ref(*args)):
            np.testing.assert_allclose(g, w, rtol=1e-13)


def test_results_that_are_views_of_plan_buffers_are_fresh(aot_lib):
    x = pt.matrix("x")
    e = pt.exp(x)
    f, ref = modes([x], [e.T, e[1:], e.sum(axis=0), pt.exp(x).T @ x])
    replays(f, ref, [M])


def test_intermediates_share_memory_when_their_lives_do_not_overlap(aot_lib):
    """Without inplace rewrites a chain of eight nodes has seven intermediates, but needs
    only two buffers at a time, as PyTensor's garbage collection would."""
    x = pt.vector("x")
    y = x
    for op in (pt.exp, pt.sin, pt.tanh, pt.cos, pt.sigmoid, pt.abs, pt.log1p, pt.sqrt):
        y = op(y)
    f = pytensor.function([x], [y, x * 2], mode=am.AOT.excluding("inplace"))
    ref = pytensor.function([x], [y, x * 2], mode="FAST_COMPILE")
    replays(f, ref, [np.linspace(-1, 1, 1000)])
    assert plan_of(f).kinds()["kernel"] == 9
    big = [a for a in plan_of(f).keep if isinstance(a, np.ndarray) and a.nbytes >= 8000]
    blocks = {a.base.ctypes.data if isinstance(a.base, np.ndarray) else a.ctypes.data
              for a in big}
    assert len(big) == 7 and len(blocks) == 2, (len(big), len(blocks))


def test_nodes_numpy_computes_are_never_replayed(aot_lib, monkeypatch):
    """Without BLAS kernels Gemm copies z with a kernel, then NumPy adds the product: the
    plan must not replay the copy alone (the record marks the NumPy part opaque)."""
    from aotkernels.families import blas

    monkeypatch.setattr(blas, "_ships", lambda op, dtype: False)
    x, z = pt.matrix("x"), pt.matrix("z")
    f, ref = modes([x, z], [z + 2 * (x @ x[:5].T), (x @ x.T).sum()])
    assert any(type(t.node.op).__name__ == "Gemm" for t in f.maker.linker.thunks
               if isinstance(t, KernelThunk))
    replays(f, ref, [M, P])


def test_later_calls_run_a_plan_from_c(aot_lib):
    x, y = pt.vector("x"), pt.vector("y")
    out = pt.exp(-x * x) * pt.sigmoid(y) + pt.log1p(pt.abs(x - y)) / (1 + y * y)
    f = pytensor.function([x, y], [out, x * 2], mode="AOT")
    ref = pytensor.function([x, y], [out, x * 2], mode="FAST_COMPILE")
    assert isinstance(f.vm, PlannedLoop)
    results = []
    for k in range(4):
        a, b = rng.normal(size=7) * (k + 1), rng.normal(size=7)
        got = f(a, b)
        for g, w in zip(got, ref(a, b)):
            np.testing.assert_allclose(g, w, rtol=1e-12)
        results.append(got)
    plan = plan_of(f)
    assert plan is not None and any(isinstance(i, Segment) for i in plan.items)
    # every call returns new arrays: no result is an internal (pinned) buffer
    flat = [r for rs in results for r in rs]
    assert not any(np.shares_memory(p, q) for i, p in enumerate(flat) for q in flat[i + 1:])


def test_the_fast_path_reads_every_calls_arrays_in_c(aot_lib):
    """The generated fast path hands the shim the array objects and the shim reads their
    data pointers (``aotk_run_call``): every call's new input arrays (contiguous, reversed,
    strided: each geometry its own plan) and fresh results are the ones computed on, and
    no result is written by a later call."""
    from aotkernels.pytensor.executor import data_offset

    assert data_offset() is not None  # CPython lays out ndarray objects as NumPy says
    x, y = pt.vector("x"), pt.vector("y")
    outs = [pt.exp(x) * y + 1, (x - y).sum(), x[::-1] * 2, pt.outer(x, y) + 1]
    f, ref = modes([x, y], outs)
    held = []
    for make in (lambda v: v, lambda v: v[::-1], lambda v: np.repeat(v, 2)[::2]):
        for k in range(8):
            a = make(rng.normal(size=6) * (k + 1))
            b = make(rng.normal(size=6))
            got = f(a, b)
            for g, w in zip(got, ref(a, b)):
                np.testing.assert_allclose(g, w, rtol=1e-12)
            held.append((got, [np.copy(g) for g in got]))
        fast = f.vm._fast
        assert fast is not None and fast.__globals__["run_call"] is not None
    for got, copies in held:  # no later call wrote into an earlier call's results
        for g, c in zip(got, copies):
            np.testing.assert_array_equal(g, c)


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
    assert plan_of(f) is not None
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
        assert len(f.vm.plans) <= PlannedLoop.MAX_PLANS
