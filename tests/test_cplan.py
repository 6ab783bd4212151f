"""Plans as C functions (``aotkernels.pytensor.cplan``, ``aotk_nutpie_logp`` in the shim):
the entry point nutpie calls, on PyTensor graphs of one float64 vector, through ctypes
(which releases the GIL, so threads really call it at once). Differential: against the same
function's Python results. The corpus models are in tests/test_samplers.py."""

from __future__ import annotations

import ctypes

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.graph import clone_replace
from pytensor_cases import threads_agree

import aotkernels.pytensor  # noqa: F401  (mode "AOT")
from aotkernels.pytensor.cplan import Model, NotExportable, entry_points, export, planned

LOGP = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p,
                        ctypes.c_void_p, ctypes.c_void_p)
EXPAND = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_void_p,
                          ctypes.c_void_p, ctypes.c_void_p)
N = 7


def model_functions(grad_of=None):
    """A small hierarchical logp and gradient built as nutpie builds them: of value variables,
    then each replaced by a slice of one vector, reshaped; plus an expand function."""
    mu, log_sigma, z = pt.dscalar("mu"), pt.dscalar("log_sigma"), pt.dmatrix("z")
    y = np.linspace(-1, 2, N - 2)
    theta = mu + pt.exp(log_sigma) * z
    logp = (-0.5 * pt.sum(z ** 2) - 0.5 * mu ** 2 - pt.sum((y - theta) ** 2)
            + pt.log(pt.sigmoid(log_sigma)))
    values = [mu, log_sigma, z]
    grad = (pt.concatenate([g.ravel() for g in pytensor.grad(logp, values)])
            if grad_of is None else grad_of(values))
    x = pt.dvector("x")
    slices = [x[0:1].reshape(()), x[1:2].reshape(()), x[2:].reshape((1, N - 2))]
    logp, grad, theta = clone_replace([logp, grad, theta], dict(zip(values, slices)))
    f = pytensor.function([x], [logp, grad], mode="AOT")
    e = pytensor.function([x], [pt.concatenate([x, theta.ravel()])], mode="AOT")
    return f, e


@pytest.fixture
def entries(aot_lib):
    found = entry_points()
    assert found is not None, "the session library lacks aotk_nutpie_logp/expand"
    return found


def caller(entries, model):
    fn = LOGP(entries[0])

    def call(x):
        grad, logp = np.full(N, -7.0), np.full(1, -7.0)
        rc = fn(x.size, x.ctypes.data, grad.ctypes.data, logp.ctypes.data,
                model.user_data.ctypes.data)
        return rc, logp[0], grad
    return call


def test_logp_and_expand_match_python_and_threads_match_sequential(entries):
    f, e = model_functions()
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=N) for _ in range(5)]
    model = Model(export(f, xs[0], (1, N)), export(e, xs[0], (2 * N - 2,)), entries)
    assert model.logp.steps > 10
    call = caller(entries, model)
    for x in xs:
        rc, logp, grad = call(x)
        want = f(x)
        assert rc == 0
        assert logp == want[0] and np.array_equal(grad, want[1])  # the same kernels
        out = np.full(2 * N - 2, -7.0)
        rc = EXPAND(entries[1])(N, 2 * N - 2, x.ctypes.data, out.ctypes.data,
                                model.user_data.ctypes.data)
        assert rc == 0 and np.array_equal(out, e(x)[0])
    assert not threads_agree(call, xs, 3000)


def test_error_codes_are_nutpies(entries):
    # a "gradient" that casts to integers: a NaN makes the cast kernel fail (status 1)
    f, e = model_functions(lambda values: pt.cast(pt.cast(pt.concatenate(
        [v.ravel() for v in values]), "int64"), "float64"))
    x = np.linspace(0.1, 0.7, N)
    model = Model(export(f, x, (1, N)), export(e, x, (2 * N - 2,)), entries)
    call = caller(entries, model)
    assert call(x)[0] == 0
    bad = x.copy()
    bad[3] = np.nan
    assert call(bad)[0] == 1  # kernel error status: recoverable, as nutpie's numba backend
    f, e = model_functions()
    model = Model(export(f, x, (1, N)), export(e, x, (2 * N - 2,)), entries)
    call = caller(entries, model)
    big = x.copy()
    big[1] = 800.0  # exp overflows: infinite logp and gradient
    assert call(big)[0] == 3  # non-finite gradient first, as nutpie's numba backend
    fn = LOGP(entries[0])
    g, lp = np.empty(N), np.empty(1)
    assert fn(N - 1, x.ctypes.data, g.ctypes.data, lp.ctypes.data,
              model.user_data.ctypes.data) == -1  # wrong dimension
    assert fn(N, x.ctypes.data, g.ctypes.data, lp.ctypes.data, None) == -1


def test_a_python_item_is_not_exportable(aot_lib):
    x = pt.dvector("x")
    # searchsorted has no kernel: its node runs in Python, between kernel steps
    f = pytensor.function([x], [pt.sum(pt.exp(pt.extra_ops.searchsorted(x, x))), pt.exp(x)],
                          mode="AOT")
    with pytest.raises(NotExportable, match="Searchsorted"):
        export(f, np.ones(N), (1, N))


def test_a_fused_plan_exports_its_fused_kernels(entries, monkeypatch):
    """Fused elementwise runs (issue 13) swapped into a plan before its export are what the
    C function runs: fewer steps, the mode-AOT function's results bit for bit."""
    x = np.linspace(0.1, 0.7, N)
    unfused = export(model_functions()[0], x, (1, N)).steps  # AOT_FUSION=0 (conftest)
    monkeypatch.setenv("AOT_FUSION", "1")  # a JIT cache holding the fused kernels already
    f, e = model_functions()               # makes the first export of f a fused one
    plan = planned(f, x)
    assert plan.runs and plan.fuse(None) > 0  # wait for the background compile
    model = Model(export(f, x, (1, N)), export(e, x, (2 * N - 2,)), entries)
    assert model.logp.steps < unfused
    call = caller(entries, model)
    for k in range(3):
        y = x + 0.2 * k
        rc, logp, grad = call(y)
        want = f(y)
        assert rc == 0 and logp == want[0] and np.array_equal(grad, want[1])
