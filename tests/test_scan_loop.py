"""Scan's loop in C (``aotkernels.pytensor.scan_loop``, ``aotk_loop`` in the shim).

Differential: generated Scans (sequences with random taps, mit-sot/sit-sot/nit-sot mixes,
non-sequences, go_backwards, save-memory circular buffers, gradients through a Scan) in mode
AOT against the same graph built with PyTensor's Python linker (``Mode(linker="py")``, its
Scan's inner function too), each called on several values of one geometry (record, plan,
replays) and then on another geometry; the plan must hold the Scan as a loop step, with no
Python item. Errors inside the loop raise what the first call raised. A scan logp exported
to C (``cplan``) gives the mode-AOT function's numbers bit for bit, from 4 threads at once.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import Mode
from pytensor.link.vm import VMLinker
from pytensor.scan.op import Scan
from pytensor_cases import threads_agree

import aotkernels.pytensor  # noqa: F401  (mode "AOT")
from aotkernels.pytensor.coverage import coverage
from aotkernels.pytensor.cplan import Model, entry_points, export
from aotkernels.pytensor.executor import LOOP, PYTHON, VIEW_RUN

pytestmark = pytest.mark.filterwarnings("ignore:Scan return signature:DeprecationWarning")
#: the reference: PyTensor's Python linker, without elementwise fusion (PyTensor 2.38's
#: ``perform`` of a ``Composite`` of more than 32 outputs fails: NumPy's ufunc limit)
PY = Mode(linker="py", optimizer="fast_run").excluding("fusion")
#: the inner functions of the reference's Scans: PyTensor's Python VM on ``perform`` (a
#: Scan with preallocated mit-mot taps needs a VM; the "py" linker is none)
PY_VM = Mode(VMLinker(use_cloop=False, c_thunks=False), "fast_run").excluding("fusion")
K = 3  # length of vector states


def plan_kinds(f):
    plans = list(getattr(f.vm, "plans", {}).values())
    assert plans, "no plan"
    return plans[-1].kinds()


def random_scan(seed: int, scan_mode):
    """(inputs, outputs, values) of a Scan drawn from ``seed``: 0-2 sequences with random
    taps, 1-3 recurrent or nit-sot outputs of scalar or vector rows, 0-2 non-sequences,
    maybe go_backwards, maybe only the last step kept (a circular buffer), maybe a gradient
    through the loop (a second Scan with mit-mot outputs)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 9))
    inputs, values = [], []
    seqs, seq_args = [], []
    for s in range(int(rng.integers(0, 3))):
        taps = sorted(int(t) for t in rng.choice([-2, -1, 0, 1, 2], int(rng.integers(1, 3)),
                                                 replace=False))
        length = n + max(taps) - min(taps)
        var = pt.dmatrix(f"s{s}")
        inputs.append(var)
        values.append(rng.normal(size=(length, K)))
        seqs.append(dict(input=var, taps=taps))
        seq_args += [("v", t) for t in taps]
    outputs_info, out_kinds = [], []
    for o in range(int(rng.integers(1, 4))):
        kind = rng.choice(["sit", "mit", "nit"])
        vec = bool(rng.integers(0, 2))
        if kind == "nit":
            outputs_info.append(None)
            out_kinds.append(("nit", vec, []))
            continue
        taps = [-1] if kind == "sit" else sorted(
            int(t) for t in rng.choice([-3, -2, -1], 2, replace=False))
        depth = -min(taps)
        var = (pt.dmatrix if vec else pt.dvector)(f"init{o}")
        inputs.append(var)
        values.append(rng.normal(size=(depth, K) if vec else depth) * 0.5)
        outputs_info.append(dict(initial=var, taps=taps) if kind == "mit"
                            else dict(initial=var[0], taps=[-1]))
        if kind == "sit":
            values[-1] = values[-1][:1]
        out_kinds.append((kind, vec, taps))
    non_seqs = []
    for k in range(int(rng.integers(0 if inputs else 1, 3))):  # some input
        var = pt.dvector(f"w{k}") if k == 0 else pt.dmatrix(f"W{k}")
        inputs.append(var)
        values.append(rng.normal(size=K) if k == 0 else rng.normal(size=(K, K)) * 0.3)
        non_seqs.append(var)
    go_backwards = bool(rng.integers(0, 2))
    coefs = rng.uniform(0.2, 0.8, 64)

    def step(*args):
        args = list(args)
        seq_vals = args[:len(seq_args)]
        rest = args[len(seq_args):]
        taps_vals = []
        for kind, vec, taps in out_kinds:
            if kind != "nit":
                taps_vals += [(v, vec) for v in rest[:len(taps)]]
                rest = rest[len(taps):]
        ns = rest
        total_vec = pt.zeros(K)
        total_sc = pt.constant(0.1)
        c = iter(coefs)
        for v in seq_vals:
            total_vec = total_vec + next(c) * v
            total_sc = total_sc + next(c) * v.sum()
        for v, vec in taps_vals:
            if vec:
                total_vec = total_vec + next(c) * v
                total_sc = total_sc + next(c) * v.mean()
            else:
                total_sc = total_sc + next(c) * v
                total_vec = total_vec + next(c) * v
        for w in ns:
            if w.ndim == 1:
                total_vec = total_vec * (1 + 0.1 * pt.tanh(w))
            else:
                total_vec = total_vec + pt.dot(w, pt.tanh(total_vec))
        outs = []
        for _kind, vec, _ in out_kinds:
            a = next(c)
            outs.append(pt.tanh(a * total_vec + total_sc) if vec
                        else pt.tanh(a * total_sc + total_vec.sum() * 0.1))
        return outs if len(outs) > 1 else outs[0]

    kwargs = dict(sequences=seqs, outputs_info=outputs_info, non_sequences=non_seqs,
                  go_backwards=go_backwards, mode=scan_mode, strict=False)
    if not seqs:
        kwargs["n_steps"] = n
    res, _ = pytensor.scan(step, **kwargs)
    res = res if isinstance(res, list) else [res]
    if rng.integers(0, 3) == 0:  # only the last step: PyTensor's save-memory buffers
        outs = [r[-1] for r in res]
    else:
        outs = [r for r in res]
    if rng.integers(0, 2) and inputs:  # a gradient through the loop
        cost = sum((o ** 2).sum() for o in outs)
        wrt = [v for v in inputs]
        outs = [cost, *pytensor.grad(cost, wrt, disconnected_inputs="ignore")]
    return inputs, outs, values


def variants(values, k):
    rng = np.random.default_rng(100 + k)
    return [v + rng.normal(scale=0.1, size=v.shape) for v in values]


def compare(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", range(24))
def test_generated_scans_match_pythons_and_run_as_loops(aot_lib, seed):
    inputs, outs, values = random_scan(seed, None)
    f = pytensor.function(inputs, outs, mode="AOT", on_unused_input="ignore")
    r_inputs, r_outs, _ = random_scan(seed, PY_VM)
    ref = pytensor.function(r_inputs, r_outs, mode=PY, on_unused_input="ignore")
    for k in range(4):  # first call, recorded call, two replays
        vals = variants(values, k)
        compare(f(*vals), ref(*vals))
    if not any(isinstance(node.op, Scan) for node in f.maker.fgraph.apply_nodes):
        pytest.skip("PyTensor folded this Scan away (its outputs do not depend on inputs)")
    kinds = plan_kinds(f)
    assert kinds[LOOP] >= 1 and not kinds[PYTHON] and not kinds[VIEW_RUN], kinds
    # another geometry: a longer first axis where it is free to change
    if inputs and values[0].ndim == 2 and inputs[0].name.startswith("s"):
        vals = variants(values, 7)
        vals[0] = np.concatenate([vals[0], vals[0][:2]])
        for _ in range(3):
            compare(f(*vals), ref(*vals))


def test_kernel_errors_inside_a_loop_raise_as_on_the_first_call(aot_lib):
    a, b = pt.lvector("a"), pt.lvector("b")
    h0 = pt.lscalar("h0")
    res, _ = pytensor.scan(lambda x, y, h: h + x // y, sequences=[a, b], outputs_info=[h0])
    f = pytensor.function([a, b, h0], res, mode="AOT")
    good = (np.arange(1, 7), np.array([1, 2, 3, 1, 2, 3]), np.array(1))
    bad = (np.arange(1, 7), np.array([1, 2, 0, 1, 2, 3]), np.array(1))
    want = 1 + np.cumsum(good[0] // good[1])
    errors = []
    for k in range(5):
        np.testing.assert_array_equal(f(*good), want)
        if k >= 2:
            assert plan_kinds(f)[LOOP] == 1
        with pytest.raises(ZeroDivisionError) as info:
            f(*bad)
        errors.append(str(info.value).splitlines()[0])
    assert len(set(errors)) == 1, errors  # the same exception, recorded or replayed
    np.testing.assert_array_equal(f(*good), want)


def test_inner_graphs_left_to_python_keep_scan_on_perform(aot_lib):
    idx, w, h0 = pt.lvector("idx"), pt.dvector("w"), pt.dscalar("h0")
    res, _ = pytensor.scan(lambda i, h, w: h * 0.5 + w[i], sequences=[idx],
                           outputs_info=[h0], non_sequences=[w])
    f = pytensor.function([idx, w, h0], res, mode="AOT")
    wv = np.arange(5.0)
    for _ in range(4):
        np.testing.assert_allclose(f(np.array([0, 1, 4, 2]), wv, 1.0),
                                   [0.5, 1.25, 4.625, 4.3125])
    assert plan_kinds(f)[PYTHON] == 1  # a dynamic index: the inner plan keeps a Python item
    assert [source for row, source in coverage(f) if row.startswith("Scan")][-1] == "pytensor"
    for _ in range(3):
        with pytest.raises(IndexError):
            f(np.array([0, 7]), wv, 1.0)


def garch_functions():
    """A GARCH(1,1) logp and its gradient as a function of one float64 vector, as nutpie
    takes them: two Scans (the recursion and its gradient, with mit-mot outputs)."""
    rng = np.random.default_rng(3)
    r = rng.normal(scale=0.1, size=60)
    x = pt.dvector("x")
    omega, alpha, beta = pt.exp(x[0]), pt.sigmoid(x[1]), pt.sigmoid(x[2])
    var, _ = pytensor.scan(lambda r_prev, v, o, a, b: o + a * r_prev ** 2 + b * v,
                           sequences=[pt.as_tensor(r[:-1])],
                           outputs_info=[pt.as_tensor(np.float64(r.var()))],
                           non_sequences=[omega, alpha, beta])
    logp = (-0.5 * pt.sum(r[1:] ** 2 / var) - 0.5 * pt.sum(pt.log(var))
            - 0.5 * pt.sum(x ** 2))
    return pytensor.function([x], [logp, pytensor.grad(logp, x)], mode="AOT")


def test_a_scan_logp_exports_to_c_and_threads_agree(aot_lib):
    entries = entry_points()
    assert entries is not None
    f = garch_functions()
    rng = np.random.default_rng(0)
    xs = [rng.normal(scale=0.5, size=3) for _ in range(5)]
    plan_of_f = export(f, xs[0], (1, 3))
    assert plan_kinds(f)[LOOP] == 2 and not plan_kinds(f)[PYTHON]
    rows = coverage(f)  # the Scans' inner nodes on kernels, their loops in the plan
    assert sum(" / " in row for row, _ in rows) >= 4
    assert not [row for row, source in rows if source == "pytensor"]
    model = Model(plan_of_f, plan_of_f, entries)  # only its logp entry is called
    fn = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p,
                          ctypes.c_void_p, ctypes.c_void_p)(entries[0])

    def call(x):
        grad, logp = np.full(3, -7.0), np.full(1, -7.0)
        rc = fn(3, x.ctypes.data, grad.ctypes.data, logp.ctypes.data,
                model.user_data.ctypes.data)
        return rc, logp[0], grad

    for x in xs:
        rc, logp, grad = call(x)
        want = f(x)
        assert rc == 0
        assert logp == want[0] and np.array_equal(grad, want[1])  # the same kernels
    assert not threads_agree(call, xs, 400)


def test_a_recurrence_with_a_static_initial_state_and_its_gradient(aot_lib):
    """tanh(W h + x_t + b) over vector states: gemv in the body, and the gradient Scan's
    accumulators start from static zeros that PyTensor updates in place; the loop gives
    them memory of their own (a static value is never written) and copies them in."""
    k, t = 4, 30
    xs = np.random.default_rng(1).normal(size=(t, k))

    def build(scan_mode):
        x = pt.dvector("x")
        w, b = x[:k * k].reshape((k, k)) * 0.3, x[k * k:]
        h, _ = pytensor.scan(lambda x_t, h, w, b: pt.tanh(pt.dot(w, h) + x_t + b),
                             sequences=[pt.as_tensor(xs)], outputs_info=[pt.zeros(k)],
                             non_sequences=[w, b], mode=scan_mode)
        logp = -0.5 * pt.sum((h - 0.1) ** 2) - 0.5 * pt.sum(x ** 2)
        return [x], [logp, pytensor.grad(logp, x), h]

    f = pytensor.function(*build(None), mode="AOT")
    ref = pytensor.function(*build(PY_VM), mode=PY)
    rng = np.random.default_rng(2)
    for _ in range(5):
        x = rng.normal(size=k * k + k)
        compare(f(x), ref(x))
    kinds = plan_kinds(f)
    assert kinds[LOOP] == 2 and not kinds[PYTHON] and not kinds[VIEW_RUN], kinds
    first = f(x)[2]
    second = f(x + 1)[2]
    assert not np.shares_memory(first, second)  # results are fresh every call
    compare([first], [ref(x)[2]])


def test_a_number_of_steps_given_as_a_value_stays_on_perform(aot_lib):
    """The plan's key is the inputs' geometry: a number of steps read from an input's value
    could change between calls of one geometry, so that Scan keeps PyTensor's loop."""
    n, h0 = pt.lscalar("n"), pt.dscalar("h0")
    res, _ = pytensor.scan(lambda h: 0.5 * h + 1.0, outputs_info=[h0], n_steps=n)
    f = pytensor.function([n, h0], res[-1], mode="AOT")
    ref = pytensor.function([n, h0], res[-1], mode=PY)
    for k in (5, 5, 5, 9, 3, 9):
        np.testing.assert_allclose(f(k, 2.0), ref(k, 2.0), rtol=1e-15)
    assert not plan_kinds(f)[LOOP]


@pytest.mark.parametrize("length", [7, None])
def test_checks_inside_a_scan_read_tensors(aot_lib, length):
    """A check inside a Scan on a condition of its non-sequences (``pm.Normal.dist``'s
    ``sigma > 0`` in a ``CustomDist`` written as a scan): PyTensor pushes the condition's
    ``ScalarFromTensor`` out of the loop, so the Scan read a NumPy scalar, which its C loop
    cannot bind. Mode AOT remakes the Scan to read the 0-d tensor and check it with
    ``TensorCheck``. The gradient's Scan also computes a reversed output in place of a
    static initial state, which the planner now copies into memory of that layout (it gave
    up on the negative stride). Both scans are C loops, no Python item in the plan, the
    reference's numbers, and the check's ``AssertionError`` on the first call and on
    replays."""
    from pytensor.raise_op import Assert

    from aotkernels.pytensor.rewrites import TensorCheck

    sigma, xs = pt.scalar("sigma"), pt.tensor("xs", shape=(length,))

    def step(x, acc, sigma):
        return acc + Assert("sigma > 0")(x / sigma, pt.gt(sigma, 0)) ** 2

    out = pytensor.scan(step, sequences=[xs], outputs_info=[pt.zeros(())],
                        non_sequences=[sigma], return_updates=False)
    outs = [out[-1], *pytensor.grad(out[-1], [xs, sigma])]
    f = pytensor.function([xs, sigma], outs, mode="AOT")
    ref = pytensor.function([xs, sigma], outs, mode="FAST_COMPILE")
    scans = [n for n in f.maker.fgraph.apply_nodes if isinstance(n.op, Scan)]
    assert scans
    for node in scans:
        checks = [n.op for n in node.op.fgraph.apply_nodes if "sigma > 0" in str(n.op)]
        assert checks and all(isinstance(op, TensorCheck) for op in checks), checks
        assert all(i.type.ndim == 0 for i in node.inputs if i.type.dtype == "bool")
    x = np.linspace(-1, 1, 7)
    for _ in range(3):  # the first call records, the later ones replay
        for got, want in zip(f(x, 2.0), ref(x, 2.0)):
            np.testing.assert_allclose(got, want, rtol=1e-13)
        with pytest.raises(AssertionError, match="sigma > 0"):
            f(x, -1.0)
    kinds = plan_kinds(f)
    assert kinds[LOOP] == len(scans) and kinds[PYTHON] == 0, kinds
