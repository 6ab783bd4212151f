"""Values and graphs shared by the mode-AOT tests: elementwise-heavy graphs plus nodes
that fall back, and how results are compared with PyTensor's Python implementation."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt

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
    yield ("inverse trig (VonMises' arctan2)", [x, y],
           [pt.arctan2(pt.sin(x), pt.cos(y)) + pt.arcsin(x / 10) * pt.arccos(y / 10)
            + pt.arctan(x) - pt.arccosh(1 + x**2)], [M, M[::-1]])
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
    yield ("sort (a Deterministic's pt.sort)", [x, i],
           [pt.sort(x), pt.sort(x * 0, axis=0), pt.sort(x, axis=None),
            pt.sort(i, axis=0, kind="mergesort"), pt.sort(i.T[::-1], axis=1)], [M, I8])
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
    u = pt.matrix("u")  # values in (0, 1)
    yield ("special functions (SciPy's, and PyTensor's own)", [x, u],
           [pt.psi(x) + pt.tri_gamma(x) - pt.erfcx(x) + pt.erfinv(u) * pt.erfcinv(u)
            + pt.log1mexp(-x) + pt.gammainc(x, 1.5) - pt.gammaincc(x, x)
            + pt.betainc(x, 2.0, u) + pt.owens_t(x, 0.5) + pt.j0(x) + pt.i1(x)
            + pt.hyp2f1(1.0, 2.0, 3.0, u * 0.5) + pt.gammaincinv(x, u) + pt.kve(1.5, x),
            pytensor.grad(pt.sum(pt.gammaln(x) * pt.psi(x)), x)], [P, P / 3.5])
    yield ("integer switch conditions and composites", [x, y, i],
           [pt.switch(i, x, y), pt.switch(i > 0, i, 0) * x, x**3 - y**3, (x + 1)**4],
           [M, M[::-1], I8 % 2])
    s = pt.dscalar("s")
    yield ("make_vector, split, set and inc of basic slices, scalar subtensor", [x, r, s],
           [pt.stack([s, s * 2, pt.exp(s)]), *pt.split(r, [2, 3], n_splits=2),
            pt.set_subtensor(x[1:3, ::2], 0.5), pt.inc_subtensor(x[:, 1], x[:, 0] * 2),
            pt.set_subtensor(r[-2:], s), x[2, 3] * s, pt.inc_subtensor(x[1:, 2:], s)],
           [M, V5, np.array(0.3)])
    ar, ys = pt.constant(np.arange(6)), pt.constant(np.array([1, 4, 0, 2, 3, 1]))
    yield ("broadcasting point indices (PyMC's p[arange(n)[:, None], y[:, None]])", [x, c],
           [x[ar[:, None], ys[:, None]] * 2, pt.inc_subtensor(x[ar[:, None], ys[:, None]],
                                                            c[:, None]),
            x[ar[:3, None], ys[None, :]], pt.set_subtensor(x[ar[None, :2], ys[:2, None]], 7.0)],
           [M, V6])


CASES = list(graphs())


def close(got: np.ndarray, want: np.ndarray) -> None:
    """Within dtype tolerance; float32 sums of terms that cancel get an absolute slack."""
    if got.dtype == np.float32:
        scale = float(np.abs(want).max(initial=1.0))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * scale)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-11)


def changed(a: np.ndarray, k: int) -> np.ndarray:
    if a.dtype.kind == "f":
        return a * (1 + 0.25 * k) + 0.125 * k
    return np.where(a == 0, a, a + k * np.sign(a)).astype(a.dtype)  # nonzero stays nonzero


def variants(values, k: int) -> list:
    """Call ``k`` of a test: other numbers in the same geometry (so a plan replays), views
    rebuilt on a changed copy of their base with the same offset and strides."""
    if k == 0:
        return values
    out = []
    for v in values:
        base = v.base if isinstance(v.base, np.ndarray) else None
        if base is None:
            out.append(changed(v, k))
            continue
        new = changed(base, k)
        out.append(np.ndarray(v.shape, v.dtype, buffer=new,
                              offset=v.ctypes.data - base.ctypes.data, strides=v.strides))
    return out


def plan_of(f):
    plans = [p for p in getattr(f.vm, "plans", {}).values() if p is not None]
    return plans[0] if plans else None


def replays(f, ref, values, calls: int = 4) -> None:
    """Call ``f`` and ``ref`` on ``calls`` variants of one geometry and compare every result;
    no result may share memory with another call's."""
    results = []
    for k in range(calls):
        vals = variants(values, k)
        got, want = f(*vals), ref(*vals)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and g.shape == w.shape
            close(g, w)
        results.append([g for g in got if g.size])
    for i, rs in enumerate(results):
        for later in results[i + 1:]:
            assert not any(np.shares_memory(p, q) for p in rs for q in later)


def modes(inputs, outputs):
    return (pytensor.function(inputs, outputs, mode="AOT"),
            pytensor.function(inputs, outputs, mode="FAST_COMPILE"))


def threads_agree(call, xs: list, calls: int, threads: int = 4) -> list:
    """``call(x) -> (rc, logp, grad)`` (a C plan's entry point) from ``threads`` threads at
    once, ``calls`` times each over ``xs``; the (thread, call) pairs whose result was not
    the sequential one's with rc 0 (empty: every concurrent call agreed)."""
    import threading

    sequential = [call(x) for x in xs]
    bad = []

    def worker(t):
        for i in range(calls):
            k = (i * (t + 1) + t) % len(xs)
            rc, logp, grad = call(xs[k])
            if rc or logp != sequential[k][1] or not np.array_equal(grad, sequential[k][2]):
                bad.append((t, i))
                return

    running = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for t in running:
        t.start()
    for t in running:
        t.join()
    return bad
