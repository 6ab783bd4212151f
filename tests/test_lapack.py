"""Cholesky factors and triangular solves against SciPy, for both LAPACK bindings (SciPy's
cython_lapack, the kernels' own loops), with C, Fortran, strided and reversed matrices,
vector and matrix right-hand sides, their error statuses, and PyTensor's Ops in plans."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg as sl
from reference import ran

import aotkernels as ak
from aotkernels.library import bind_lapack

DTYPES = ["float64", "float32"]


@pytest.fixture(params=["scipy", "loop"])
def lapack(request, no_jit):
    bind_lapack(no_jit, request.param)
    yield request.param
    bind_lapack(no_jit)


def tol(dtype: str) -> dict:
    return {"rtol": 1e-4, "atol": 1e-5} if dtype == "float32" else {"rtol": 1e-11, "atol": 1e-12}


def layouts(m: np.ndarray) -> list[np.ndarray]:
    """C, Fortran, a strided view (copied for LAPACK) and a reversed view of ``m``."""
    big = np.zeros((m.shape[0] * 2, m.shape[1] * 3), m.dtype)
    big[::2, ::3] = m
    return [m, np.asfortranarray(m), big[::2, ::3], m[::-1].copy()[::-1]]


def spd(n: int, dtype: str, seed: int = 0) -> np.ndarray:
    m = np.random.default_rng(seed).normal(size=(n, n))
    return (m @ m.T + n * np.eye(n)).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cholesky_matches_scipy(lapack, dtype):
    for n in (1, 2, 7, 40):
        a = spd(n, dtype, n)
        junk = 100 * np.ones((n, n), dtype)  # only the chosen triangle may be read
        for lower in (True, False):
            want = sl.cholesky(a, lower=lower)
            for av in layouts(a + (np.triu(junk, 1) if lower else np.tril(junk, -1))):
                got, where = ran(ak.cholesky, av, lower=lower)
                assert got.dtype == dtype and got.flags.f_contiguous and where == "aot"
                np.testing.assert_allclose(got, want, **tol(dtype))
    assert ak.cholesky(np.zeros((0, 0))).shape == (0, 0)
    np.testing.assert_allclose(ak.cholesky(np.array([[4, 2], [2, 5]])), [[2, 0], [1, 2]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_solve_triangular_matches_scipy(lapack, dtype):
    rng = np.random.default_rng(1)
    n = 9
    a = (rng.normal(size=(n, n)) + 4 * np.eye(n)).astype(dtype)
    b = rng.normal(size=(n, 4)).astype(dtype)
    for lower in (True, False):
        for trans in (0, "T"):
            for unit in (False, True):
                for av in layouts(a):
                    for bv in (b, np.asfortranarray(b), b[:, 1], b[::-1, ::2]):
                        kw = {"lower": lower, "trans": trans, "unit_diagonal": unit}
                        got, where = ran(ak.solve_triangular, av, bv, **kw)
                        want = sl.solve_triangular(av, bv, **kw)
                        assert got.shape == want.shape and got.dtype == want.dtype
                        assert where == "aot"
                        np.testing.assert_allclose(got, want, **tol(dtype))
    assert ak.solve_triangular(a, b[:, :0]).shape == (n, 0)


def general(n: int, dtype: str, seed: int = 0) -> np.ndarray:
    m = np.random.default_rng(seed).normal(size=(n, n))
    return (m + n * np.eye(n)).astype(dtype)


def symmetric(n: int, dtype: str, seed: int = 0) -> np.ndarray:
    """Symmetric and indefinite: Bunch-Kaufman pivots."""
    m = np.random.default_rng(seed).normal(size=(n, n))
    return (m + m.T + np.diag(np.where(np.arange(n) % 2, 1.0, -1.0))).astype(dtype)


MATRICES = {"gen": general, "sym": symmetric, "pos": spd}


def same(got, want, lapack: str, dtype: str) -> None:
    """SciPy's own LAPACK routines on the same column-major copies: the same bits; the
    kernels' loops: within rounding."""
    if lapack == "scipy":
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, **tol(dtype))


@pytest.mark.parametrize("assume_a", ["gen", "sym", "pos"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_solve_matches_scipy(lapack, dtype, assume_a):
    rng = np.random.default_rng(2)
    for n in (1, 2, 7, 70):  # 70: sytrf's blocked code (blocks of 64)
        base = MATRICES[assume_a](n, dtype, n)
        b = rng.normal(size=(n, 3)).astype(dtype)
        for lower in (True, False):
            junk = 100 * np.ones((n, n), dtype)  # sym and pos read only one triangle
            a = base if assume_a == "gen" else (
                np.tril(base) + np.triu(junk, 1) if lower else np.triu(base) + np.tril(junk, -1))
            for av in layouts(a):
                for bv in (b, np.asfortranarray(b), b[:, 1], b[::-1, ::2]):
                    kw = {"assume_a": assume_a, "lower": lower}
                    got, where = ran(ak.solve, av, bv, **kw)
                    want = sl.solve(av, bv, **kw)
                    assert got.shape == want.shape and got.dtype == want.dtype
                    assert where == "aot"
                    same(got, want, lapack, dtype)
    assert ak.solve(np.eye(3), np.ones((3, 0))).shape == (3, 0)
    assert ak.solve(np.zeros((0, 0)), np.ones(0)).shape == (0,)


@pytest.mark.parametrize("dtype", DTYPES)
def test_lu_factor_matches_scipy(lapack, dtype):
    """LU factors and 0-based pivots as SciPy's ``lu_factor`` gives them (the same bits
    through SciPy's getrf), from any layout; an exactly singular matrix raises, or gives
    NaN factors with the pivots kept (PyTensor's ``LUFactor``)."""
    for n in (1, 2, 7, 70):
        a = general(n, dtype, n) - n * np.eye(n, dtype=dtype)  # pivoting happens
        want_lu, want_piv = sl.lu_factor(a)
        for av in layouts(a):
            (lu, piv), where = ran(ak.lu_factor, av)
            assert where == "aot" and lu.dtype == dtype and lu.flags.f_contiguous
            assert piv.dtype == np.int32
            np.testing.assert_array_equal(piv, want_piv)
            same(lu, want_lu, lapack, dtype)
    sing = general(4, dtype)
    sing[:, 3] = 0.0  # a repeated column may leave an ulp on U's diagonal (getrf's kernel)
    with pytest.raises(np.linalg.LinAlgError, match="singular"):
        ak.lu_factor(sing)
    lu, piv = ak.lu_factor(sing, on_error="nan")
    assert np.isnan(lu).all()
    np.testing.assert_array_equal(piv, sl.lu_factor(sing)[1])
    lu, piv = ak.lu_factor(np.zeros((0, 0), dtype))
    assert lu.shape == (0, 0) and piv.shape == (0,) and piv.dtype == np.int32


def pivots_reference(pivots, inverse: bool) -> np.ndarray:
    """PyTensor's ``PivotToPermutations.perform``."""
    p_inv = np.arange(len(pivots), dtype="int64")
    for i in range(len(pivots)):
        p_inv[i], p_inv[pivots[i]] = p_inv[pivots[i]], p_inv[i]
    return p_inv if inverse else np.argsort(p_inv)


def test_pivot_to_permutation_matches_pytensor(no_jit):
    rng = np.random.default_rng(4)
    for n in (0, 1, 2, 9, 64):
        piv = np.array([rng.integers(-n + i, n) for i in range(n)], dtype="int32")
        for inverse in (True, False):
            got, where = ran(ak.pivot_to_permutation, piv, inverse=inverse)
            assert where == ("aot" if n else None) and got.dtype == np.int64
            np.testing.assert_array_equal(got, pivots_reference(piv, inverse))
            np.testing.assert_array_equal(  # other integer dtypes are converted
                ak.pivot_to_permutation(piv.astype("int64"), inverse=inverse), got)
    for bad in ([0, 2], [-3, 1], [0, 2 ** 40]):
        with pytest.raises(IndexError):
            ak.pivot_to_permutation(np.array(bad), inverse=True)
    with pytest.raises(TypeError):
        ak.pivot_to_permutation(np.array([0.0]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_cho_solve_matches_scipy(lapack, dtype):
    rng = np.random.default_rng(3)
    for n in (1, 2, 9, 40):
        a = spd(n, dtype, n)
        b = rng.normal(size=(n, 4)).astype(dtype)
        for lower in (True, False):
            c = sl.cholesky(a, lower=lower)
            c = c + (np.triu(np.ones_like(c), 1) if lower else np.tril(np.ones_like(c), -1))
            for cv in layouts(c):
                for bv in (b, np.asfortranarray(b), b[:, 2], b[::-1, ::2]):
                    got, where = ran(ak.cho_solve, (cv, lower), bv)
                    want = sl.cho_solve((cv, lower), bv)
                    assert got.shape == want.shape and got.dtype == want.dtype
                    assert where == "aot"
                    same(got, want, lapack, dtype)


def test_singular_solves_raise_or_give_nan(lapack):
    """A singular matrix (an exact zero pivot), one that is not positive definite for
    'pos', a 1x1 zero: LinAlgError as SciPy's, or a result all NaN with on_error='nan'."""
    cases = [("gen", [[1.0, 2.0], [2.0, 4.0]]), ("sym", [[0.0, 0.0], [0.0, 0.0]]),
             ("pos", [[1.0, 2.0], [2.0, 1.0]]), ("gen", [[0.0]]), ("pos", [[0.0]])]
    for assume_a, bad in cases:
        with pytest.raises(np.linalg.LinAlgError):
            sl.solve(bad, np.ones(len(bad)), assume_a=assume_a)
        with pytest.raises(np.linalg.LinAlgError, match="singular"):
            ak.solve(bad, np.ones(len(bad)), assume_a=assume_a)
        got = ak.solve(bad, np.ones((len(bad), 3)), assume_a=assume_a, on_error="nan")
        assert got.shape == (len(bad), 3) and np.isnan(got).all()
    # a 1x1 matrix is divided by, in every structure, as SciPy does
    same(ak.solve([[-2.0]], [3.0], assume_a="pos"), sl.solve([[-2.0]], [3.0], assume_a="pos"),
         "scipy", "float64")
    with pytest.raises(ValueError, match="assume_a"):
        ak.solve(np.eye(2), np.ones(2), assume_a="banded")
    with pytest.raises(ValueError, match="incompatible"):
        ak.cho_solve((np.eye(3), True), np.ones(2))


def test_failures_raise_or_give_nan(lapack):
    """Not positive definite (NaN included) and a zero on a triangle's diagonal: LinAlgError,
    or a result all NaN with on_error='nan' (what PyTensor's Ops return)."""
    for bad in ([[1.0, 2.0], [2.0, 1.0]], [[-1.0, 0.0], [0.0, 1.0]]):
        with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
            ak.cholesky(bad)
        assert np.isnan(ak.cholesky(bad, on_error="nan")).all()
    z = np.array([[1.0, 0.0], [3.0, 0.0]])
    with pytest.raises(np.linalg.LinAlgError, match="singular"):
        ak.solve_triangular(z, np.ones(2), lower=True)
    assert np.isnan(ak.solve_triangular(z, np.ones((2, 3)), lower=True, on_error="nan")).all()
    # a unit diagonal is never read, so the same matrix solves
    np.testing.assert_allclose(ak.solve_triangular(z, [1.0, 5.0], lower=True,
                                                   unit_diagonal=True), [1.0, 2.0])


def test_bad_arguments_are_refused(no_jit):
    with pytest.raises(ValueError, match="square"):
        ak.cholesky(np.ones((2, 3)))
    with pytest.raises(ValueError, match="infs or NaNs"):
        ak.cholesky(np.array([[np.nan]]))
    with pytest.raises(ValueError, match="on_error"):
        ak.cholesky(np.eye(2), on_error="warn")
    with pytest.raises(ValueError, match="square"):
        ak.solve_triangular(np.ones((2, 3)), np.ones(2))
    with pytest.raises(ValueError, match="incompatible"):
        ak.solve_triangular(np.eye(3), np.ones(2))
    with pytest.raises(ValueError, match="trans"):
        ak.solve_triangular(np.eye(2), np.ones(2), trans=3)
    got = ak.solve_triangular(np.eye(2, dtype=np.float32), np.ones(2))  # upcast, as SciPy
    assert got.dtype == np.float64


def test_results_into_out(no_jit):
    """``out=``: the solvers write their result into the caller's array (a C-ordered one
    too, through the kernels' loops), and refuse one of another shape or dtype, read-only,
    or sharing memory with an input."""
    a, b = spd(5, "float64"), np.linspace(-1, 1, 10).reshape(5, 2)
    c = sl.cholesky(a, lower=True)
    calls = [(ak.cholesky, (a,), {}, sl.cholesky(a, lower=True)),
             (ak.solve_triangular, (c, b), {"lower": True},
              sl.solve_triangular(c, b, lower=True)),
             (ak.solve, (a, b), {"assume_a": "pos"}, sl.solve(a, b, assume_a="pos")),
             (ak.cho_solve, ((c, True), b), {}, sl.cho_solve((c, True), b))]
    for fn, args, kw, want in calls:
        for order in "FC":
            out = np.full(want.shape, np.nan, order=order)
            assert fn(*args, **kw, out=out) is out
            np.testing.assert_allclose(out, want, rtol=1e-12)
        for bad in (np.empty((5, 3)), np.empty(want.shape, np.float32)):
            with pytest.raises(ValueError, match="out must be"):
                fn(*args, **kw, out=bad)
        with pytest.raises(ValueError, match="shares memory"):
            fn(*args, **kw, out=b if b.shape == want.shape else a)


LAPACK_ENV = r"""
import json, sys
if sys.argv[1:] == ["no-scipy"]:
    sys.modules["scipy"] = None  # as if SciPy were not installed
import numpy as np, aotkernels as ak
a = np.array([[4.0, 2.0], [2.0, 5.0]])
ok = bool(np.allclose(ak.cholesky(a), np.linalg.cholesky(a)))
ok &= bool(np.allclose(ak.solve_triangular(a, [8.0, 10.0]), [1.0, 2.0]))
lib = ak.default_library()
print(json.dumps({"lapack": lib.lapack if lib else None, "ok": ok}))
"""


@pytest.mark.parametrize("library", [True, False])
def test_without_scipy_or_without_the_library(aot_lib, library):
    """No SciPy: the kernels run their own loops (logged); no library: NumPy computes."""
    env = dict(os.environ, AOT_LIBRARY_DIR=str(aot_lib.directory) if library else "/nonexistent",
               AOT_DISABLE_JIT="1")
    res = subprocess.run([sys.executable, "-c", LAPACK_ENV, "no-scipy"], env=env,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["ok"], report
    assert report["lapack"] == ("none (the kernels' own loops)" if library else None)


@pytest.mark.parametrize("value,expect", [("loop", "none"), ("scipy", "scipy"),
                                          ("bogus", "scipy")])
def test_aot_lapack_chooses_the_binding(aot_lib, value, expect):
    env = dict(os.environ, AOT_LIBRARY_DIR=str(aot_lib.directory), AOT_LAPACK=value)
    res = subprocess.run([sys.executable, "-c", LAPACK_ENV], env=env, capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["ok"] and report["lapack"].startswith(expect), report
    assert ("AOT_LAPACK=bogus" in res.stderr) == (value == "bogus")


@pytest.mark.parametrize("dtype", DTYPES)
def test_determinants_and_inverse_match_numpy(lapack, dtype):
    """``slogdet``, ``det`` and ``inv`` from the LU factors, against NumPy on every layout;
    a singular matrix: ``(0, -inf)``, 0, and ``LinAlgError``; an empty one ``(1, 0)``."""
    for n in (1, 2, 7, 40):
        a = general(n, dtype, n) * np.where(np.arange(n) % 3, 1, -1).astype(dtype)
        sign, logdet = np.linalg.slogdet(a)
        for av in layouts(a):
            (s, ld), where = ran(ak.slogdet, av)
            assert where == "aot" and s.shape == ld.shape == () and s.dtype == ld.dtype == dtype
            assert s == sign
            np.testing.assert_allclose(ld, logdet, **tol(dtype))
            np.testing.assert_allclose(ak.det(av), np.linalg.det(a), **tol(dtype))
            np.testing.assert_allclose(ak.inv(av), np.linalg.inv(a), **tol(dtype))
    sing = general(5, dtype)
    sing[:, 3] = 0  # an exactly zero pivot (a repeated row leaves rounding in its place)
    assert [float(v) for v in np.linalg.slogdet(sing)] == [0.0, -np.inf]
    assert [float(v) for v in ak.slogdet(sing)] == [0.0, -np.inf]
    assert ak.det(sing) == 0
    with pytest.raises(np.linalg.LinAlgError):
        ak.inv(sing)
    assert np.isnan(ak.inv(sing, on_error="nan")).all()
    assert [float(v) for v in ak.slogdet(np.zeros((0, 0), dtype))] == [1.0, 0.0]
    with pytest.raises(ValueError, match="square"):
        ak.slogdet(np.ones((2, 3)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_positive_definite_matches_scipy(lapack, dtype):
    """Whether ``scipy.linalg.cholesky`` succeeds (PyMC's ``posdef``), reading the upper
    triangle (or the lower); a non-finite element raises SciPy's ``ValueError``."""
    def scipy_says(m, lower):
        try:
            sl.cholesky(m, lower=lower)
            return True
        except np.linalg.LinAlgError:
            return False

    for n in (1, 2, 7):
        good = spd(n, dtype, n)
        junk = good.copy()
        junk[np.tril_indices(n, -1)] = -100  # only the upper triangle is read
        cases = [good, -good, junk, junk.T, good - 2 * n * np.eye(n, dtype=dtype)]
        for m in cases:
            for lower in (False, True):
                want = scipy_says(m, lower)
                for mv in layouts(m):
                    got, where = ran(ak.is_positive_definite, mv, lower=lower)
                    assert where == "aot" and got.dtype == bool and got.shape == ()
                    assert bool(got) == want, (n, lower, m)
        bad = good.copy()
        bad[0, -1] = np.nan
        with pytest.raises(ValueError, match="infs or NaNs"):
            ak.is_positive_definite(bad)
    assert ak.is_positive_definite(np.zeros((0, 0)))


# -- PyTensor's Ops in mode AOT: served, replayed by plans, NaN and errors as PyTensor -------

pytensor = pytest.importorskip("pytensor")
pt = pytest.importorskip("pytensor.tensor")
am = pytest.importorskip("aotkernels.pytensor")

from pytensor_cases import modes, plan_of, replays  # noqa: E402


def test_gaussian_logp_and_gradient_replay_without_python(aot_lib):
    """An MvNormal-like logp (Cholesky, triangular solves, the diagonal's logs) and its
    gradient (more triangular solves, a rank-1 update): every solver node a plan step."""
    cov, y = pt.matrix("cov"), pt.vector("y")
    chol = pt.linalg.cholesky(cov)
    z = pt.linalg.solve_triangular(chol, y, lower=True)
    logp = -0.5 * (z @ z) - pt.log(pt.diagonal(chol)).sum()
    g = pytensor.grad(logp, [cov, y])
    f, ref = modes([cov, y], [logp, *g])
    replays(f, ref, [spd(6, "float64"), np.linspace(-1, 1, 6)])
    served = ("Cholesky", "SolveTriangular", "Ger", "ExtractDiag")
    rows = [(node, src) for node, src in am.coverage(f) if node.startswith(served)]
    assert rows and all(src in ("aot", "view") for _, src in rows), rows
    python = [str(node) for kind, node, *_ in plan_of(f).finish if kind == "python"]
    assert not any(name.startswith(served) for name in python), python


def test_not_positive_definite_is_nan_or_raises_on_every_call(aot_lib):
    """PyTensor's Cholesky gives NaN for a matrix that is not positive definite; with
    on_error='raise' its CheckAndRaise raises LinAlgError: the first call and a replayed
    plan alike."""
    x = pt.matrix("x")
    bad = np.array([[1.0, 2.0], [2.0, 1.0]])
    with pytest.warns(FutureWarning):
        raising = pt.linalg.cholesky(x, on_error="raise")
    f_nan, ref = modes([x], [pt.linalg.cholesky(x) * 2])
    f_raise = pytensor.function([x], raising * 2, mode="AOT")
    for f in (f_nan, f_raise):
        f(spd(2, "float64"))
    for call in range(3):  # the first call records, the later ones replay
        assert np.isnan(f_nan(bad)[0]).all() and np.isnan(ref(bad)[0]).all()
        with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
            f_raise(bad)
        np.testing.assert_allclose(f_raise(spd(2, "float64", call)),
                                   2 * sl.cholesky(spd(2, "float64", call), lower=True))
    assert plan_of(f_nan) is not None and plan_of(f_raise) is not None


def test_singular_triangle_is_nan_in_plans(aot_lib):
    a, b = pt.matrix("a"), pt.matrix("b")
    f, ref = modes([a, b], [pt.linalg.solve_triangular(a, b, lower=False) + 1])
    good, rhs = np.triu(spd(4, "float64")), np.ones((4, 2))
    sing = good.copy()
    sing[2, 2] = 0
    for _ in range(3):
        np.testing.assert_allclose(f(good, rhs)[0], ref(good, rhs)[0], rtol=1e-12)
        assert np.isnan(f(sing, rhs)[0]).all() and np.isnan(ref(sing, rhs)[0]).all()
    assert plan_of(f) is not None


def test_solves_replay_without_python(aot_lib):
    """``Solve`` (general, symmetric, positive definite; vector and matrix right-hand
    sides), ``CholeskySolve`` and the gradients of symmetric and positive definite solves
    (PyTensor makes the latter a Cholesky and solves with its factor): every solver node a
    kernel step of the plan, the results SciPy's. (A general solve's gradient becomes
    ``LUFactor``: ``test_lu_factor_and_its_solves_replay_without_python``.)"""
    try:  # PyTensor 3.x (slinalg warns there)
        from pytensor.tensor.linalg import cho_solve
    except ImportError:
        from pytensor.tensor.slinalg import cho_solve

    a, s, p = pt.matrix("a"), pt.matrix("s"), pt.matrix("p")
    b, v = pt.matrix("b"), pt.vector("v")
    x = pt.linalg.solve(a, b)
    y = pt.linalg.solve(s, v, assume_a="sym", lower=True)
    outs = [x, y, pt.linalg.solve(p, v, assume_a="pos"),
            cho_solve((pt.linalg.cholesky(p), True), b),
            *pytensor.grad((y * y).sum() + pt.linalg.solve(p, v, assume_a="pos").sum(), [s, p])]
    f, ref = modes([a, s, p, b, v], outs)
    replays(f, ref, [general(5, "float64"), symmetric(5, "float64"), spd(5, "float64"),
                     np.linspace(-1, 1, 10).reshape(5, 2), np.linspace(0, 2, 5)])
    served = ("Solve", "CholeskySolve")
    rows = [(node, src) for node, src in am.coverage(f) if node.startswith(served)]
    assert len(rows) >= 5 and all(src == "aot" for _, src in rows), rows
    assert {"Solve", "CholeskySolve"} <= {node.split("{")[0] for node, _ in rows}, rows
    assert plan_of(f).kinds()["python"] == 0, plan_of(f).kinds()


def test_singular_solve_is_nan_in_plans(aot_lib):
    """A singular matrix gives NaN (``perform``'s, which has ``a``'s shape: the same as the
    solution's for a square right-hand side) on the first call and in replayed plans."""
    a, b = pt.matrix("a"), pt.matrix("b")
    for assume_a in ("gen", "pos"):
        f, ref = modes([a, b], [pt.linalg.solve(a, b, assume_a=assume_a) * 2])
        good, rhs = spd(4, "float64"), np.linspace(-1, 1, 16).reshape(4, 4)
        sing = good.copy()  # LU: an exact zero pivot; Cholesky: not positive definite
        sing[3] = sing[2]
        sing[:, 3] = sing[:, 2]
        sing = sing if assume_a == "gen" else -good
        for _ in range(3):
            np.testing.assert_array_equal(f(good, rhs)[0], ref(good, rhs)[0])
            got, want = f(sing, rhs)[0], ref(sing, rhs)[0]
            assert got.shape == want.shape and np.isnan(got).all() and np.isnan(want).all()
        assert plan_of(f) is not None and plan_of(f).kinds()["python"] == 0


def test_batched_solvers_replay_without_python(aot_lib):
    """Blockwise-wrapped solvers (batches of matrices): one kernel step per matrix writing
    its slice of the result, no Python item in the plan; a batch dimension of length 1
    broadcasts where its type says so."""
    try:  # PyTensor 3.x (slinalg warns there)
        from pytensor.tensor.linalg import cho_solve
    except ImportError:
        from pytensor.tensor.slinalg import cho_solve

    a, b = pt.tensor3("a"), pt.tensor3("b")
    one, v = pt.tensor("one", shape=(1, None, None)), pt.matrix("v")
    chol = pt.linalg.cholesky(a)
    outs = [chol * 2, pt.linalg.solve_triangular(chol, b, lower=True), pt.linalg.solve(a, b),
            pt.linalg.solve(one, v, b_ndim=1), cho_solve((chol, True), b),
            pt.linalg.solve(a, b, assume_a="sym")]
    f, ref = modes([a, b, one, v], outs)
    mats = np.stack([spd(4, "float64", k) for k in range(3)])
    replays(f, ref, [mats, np.linspace(-1, 1, 24).reshape(3, 4, 2), mats[:1],
                     np.linspace(0, 2, 12).reshape(3, 4)])
    rows = [(node, src) for node, src in am.coverage(f) if node.startswith("Blockwise")]
    assert len(rows) >= 5 and all(src == "aot" for _, src in rows), am.coverage(f)
    assert plan_of(f).kinds()["python"] == 0, plan_of(f).kinds()
    with pytest.raises(ValueError):  # a batch of 1 where the type says 3 (or any)
        f(mats, np.ones((1, 4, 2)), mats[:1], np.ones((3, 4)))


def test_lu_factor_and_its_solves_replay_without_python(aot_lib):
    """A general solve with its gradient (PyTensor shares one ``LUFactor`` between the
    solve and its transpose, and sorts ``PivotToPermutations``'s result), and a user's
    ``lu_factor``/``lu_solve``: every node a kernel step (the sort rewritten away), no
    Python item, SciPy's numbers; a singular matrix gives NaN on every call, and a bad
    pivot raises ``IndexError`` on the first call and on replays."""
    try:  # PyTensor 3.x (slinalg warns there)
        from pytensor.tensor.linalg import lu_factor, lu_solve, pivot_to_permutation
    except ImportError:
        from pytensor.tensor.slinalg import lu_factor, lu_solve, pivot_to_permutation

    a, b, m = pt.matrix("a"), pt.vector("b"), pt.matrix("m")
    x = pt.linalg.solve(a, b)
    lu_and_piv = lu_factor(m)
    outs = [x, *pytensor.grad((x * x).sum(), [a, b]), lu_solve(lu_and_piv, b) * 2,
            lu_and_piv[0] + 1, lu_and_piv[1] * 1]
    f, ref = modes([a, b, m], outs)
    replays(f, ref, [general(6, "float64"), np.linspace(-1, 1, 6), general(6, "float64", 1)])
    names = {node.split("{")[0].split("(")[0]: src for node, src in am.coverage(f)}
    assert names.get("LUFactor") == "aot" and names.get("PivotToPermutations") == "aot", names
    assert "ArgSortOp" not in names, names
    assert plan_of(f).kinds()["python"] == 0, plan_of(f).kinds()
    sing = general(6, "float64")
    sing[:, 5] = sing[:, 0]
    lu_and_piv = lu_factor(m)  # PyTensor's Solve.perform gives NaN of the wrong shape
    h, href = modes([m, b], [lu_solve(lu_and_piv, b), lu_and_piv[0] + 1, lu_and_piv[1] * 1])
    for _ in range(3):
        assert all(np.isnan(v).all() for v in f(sing, np.ones(6), sing)[:3])
        for got, want in zip(h(sing, np.ones(6)), href(sing, np.ones(6))):
            np.testing.assert_array_equal(got, want)

    p = pt.vector("p", dtype="int32")
    g, gref = modes([p], [pivot_to_permutation(p, inverse=True),
                          pivot_to_permutation(p, inverse=False)])
    good, bad = np.array([2, 2, 2], "int32"), np.array([2, 3, 2], "int32")
    for _ in range(4):
        for k, want in enumerate(gref(good)):
            np.testing.assert_array_equal(g(good)[k], want)
        with pytest.raises(IndexError):
            gref(bad)
        with pytest.raises(IndexError):
            g(bad)
    assert plan_of(g).kinds()["python"] == 0, plan_of(g).kinds()


def test_determinants_inverse_and_diagonal_fills_replay_without_python(aot_lib):
    """``MatrixInverse``, ``Det`` (alone and under ``Blockwise``), ``SLogDet``, the
    gradients of the first two and ``FillDiagonal`` (square and rectangular; LKJ
    correlations use it): every node a kernel step, no Python item in the plan, the
    reference's numbers; a singular
    matrix gives det 0 and ``(0, -inf)`` and makes the inverse raise ``LinAlgError``, on the
    first call and on replays."""
    try:  # PyTensor 3.x; 2.x has them in nlinalg only
        from pytensor.tensor.linalg import SLogDet
    except ImportError:
        from pytensor.tensor.nlinalg import SLogDet
    from pytensor.tensor.extra_ops import fill_diagonal

    a, w, r, c = pt.matrix("a"), pt.tensor3("w"), pt.matrix("r"), pt.scalar("c")
    sign, logdet = SLogDet()(a)
    outs = [pt.linalg.inv(a) * 2, pt.linalg.det(a) + 1, sign * 1, logdet + 0,
            pt.linalg.inv(w) + 0, pt.linalg.det(w) * 3, fill_diagonal(a, c) * 2,
            fill_diagonal(r, c) + 1, fill_diagonal(r.T, c) + 1,
            *pytensor.grad(pt.linalg.det(a) + (pt.linalg.inv(a) * fill_diagonal(a, c)).sum(),
                           [a, c])]
    f, ref = modes([a, w, r, c], outs)
    mats = np.stack([general(4, "float64", k) for k in range(3)])
    replays(f, ref, [general(4, "float64"), mats, np.linspace(-1, 1, 12).reshape(3, 4),
                     np.array(2.5)])
    names = ("MatrixInverse", "Det", "SLogDet", "FillDiagonal", "Blockwise")
    rows = [(node, src) for node, src in am.coverage(f) if node.startswith(names)]
    ops = {node.split("{")[0].split("(")[0] for node, _ in rows}
    assert ops >= {"MatrixInverse", "SLogDet", "FillDiagonal", "Blockwise"}, rows
    assert len(rows) >= 6 and all(src == "aot" for _, src in rows), am.coverage(f)
    assert plan_of(f).kinds()["python"] == 0, plan_of(f).kinds()

    x = pt.matrix("x")
    g, g_ref = modes([x], [pt.linalg.det(x) * 2, SLogDet()(x)[1] * 1])
    h = pytensor.function([x], pt.linalg.inv(x) * 2, mode="AOT")
    good, sing = general(4, "float64"), general(4, "float64")
    sing[:, 2] = 0
    for _ in range(3):  # the first call records, the later ones replay
        got, want = g(sing), g_ref(sing)
        assert got[0] == want[0] == 0 and got[1] == want[1] == -np.inf
        np.testing.assert_allclose(h(good), 2 * np.linalg.inv(good))
        with pytest.raises(np.linalg.LinAlgError):
            h(sing)
    assert plan_of(g).kinds()["python"] == 0 and plan_of(h) is not None
