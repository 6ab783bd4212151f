"""Fused runs of elementwise steps: the same results as the steps they replace, and as
PyTensor's Python linker, on generated graphs; compiled in the background, never in the
caller's thread; loaded by a second process without compiling.

Each fused kernel is a real compile in a child process (a few seconds), so the generated
cases are few; ``tests/test_graphs.py`` draws the graphs (structure, broadcast patterns,
static shapes, dtypes, tails of reductions, indexing and joins).
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import event, given, note, settings
from hypothesis import strategies as st

pytensor = pytest.importorskip("pytensor")
pt = pytest.importorskip("pytensor.tensor")
am = pytest.importorskip("aotkernels.pytensor")

from aotkernels import jit  # noqa: E402
from tests.test_graphs import REF, SETTINGS, _outcome, _same, gradients, graphs  # noqa: E402

WAIT = 600  # seconds a test waits for a background compile on a loaded machine


@pytest.fixture
def fusion(monkeypatch, aot_lib):
    monkeypatch.setenv("AOT_FUSION", "1")


def _plan(f):
    return next(iter(f.vm.plans.values()))


def _steps(f) -> int:
    return sum(item.n.value for item in _plan(f).items if hasattr(item, "n"))


def chain():
    x, y = pt.vector("x"), pt.vector("y")
    return [x, y], [pt.exp(-x * x) * pt.sigmoid(y) + pt.log1p(pt.abs(x - y)) / (1 + y * y)]


def test_a_chain_is_one_fused_step_with_the_same_bits(fusion):
    ins, outs = chain()
    f = pytensor.function(ins, outs, mode="AOT")
    rng = np.random.default_rng(0)
    vals = [rng.normal(size=1000), rng.normal(size=1000)]
    for _ in range(3):
        before = f(*vals)[0]
    steps = _steps(f)
    assert am.wait_for_fusion(f, WAIT) == 1
    after = f(*vals)[0]
    assert _steps(f) == 1 < steps
    np.testing.assert_array_equal(after, before)  # bit for bit
    ref = pytensor.function(ins, outs, mode=REF)
    _same(f, ref, [rng.normal(size=1000), rng.normal(size=1000)], "fused")
    _same(f, ref, [np.zeros(1000), np.full(1000, np.inf)], "fused, infinities")


def test_fusion_never_makes_a_caller_wait(fusion, monkeypatch, tmp_path):
    """Calls made while the fused kernel compiles return at the unfused speed, through the
    plan's fast path (a sampler's first seconds are all such calls): the compile runs in a
    child process driven by a background thread. Once it is in, the next call runs it."""
    monkeypatch.setenv("AOT_CACHE_DIR", str(tmp_path))  # nothing cached: a real compile
    ins, outs = chain()
    outs = [outs[0] * 3.0]  # a program no other test of this process compiled
    f = pytensor.function(ins, outs, mode="AOT")
    vals = [np.ones(10), np.ones(10)]
    for _ in range(3):
        f(*vals)
    plan = _plan(f)
    assert plan.pending is not None and not plan.pending[2].done()
    t = time.perf_counter()
    for _ in range(200):
        f(*vals)
    assert time.perf_counter() - t < 2.0  # 200 calls, not a compile (seconds)
    assert any(t.name == "aotkernels-jit" for t in threading.enumerate())
    assert plan.pending is not None and f.vm.fast_args is not None  # unfused, fast
    want = f(*vals)[0]
    assert am.wait_for_fusion(f, WAIT) == 1
    np.testing.assert_array_equal(f(*vals)[0], want)
    assert _steps(f) == 1 and plan.fast[0] is plan.items  # the fused step, fast
    assert f.vm.fast_args is plan.fast[2]


def test_off_switch(monkeypatch, aot_lib):
    monkeypatch.setenv("AOT_FUSION", "0")
    ins, outs = chain()
    f = pytensor.function(ins, outs, mode="AOT")
    for _ in range(3):
        f(np.ones(5), np.ones(5))
    assert _plan(f).pending is None and am.wait_for_fusion(f, 0) == 0


def test_memory_read_in_another_order_ends_a_run(fusion):
    """``a + a.T`` reads the buffer ``exp`` writes in another element order: fusing them
    element by element would read values not yet computed."""
    x = pt.matrix("x")
    a = pt.exp(x)
    outs = [pt.sigmoid(a + a.T) * 2.0]
    f = pytensor.function([x], outs, mode="AOT")
    ref = pytensor.function([x], outs, mode=REF)
    v = np.arange(16.0).reshape(4, 4) / 10
    for k in range(3):
        _same(f, ref, [v + k], f"call {k}")
    am.wait_for_fusion(f, WAIT)
    for k in range(3):
        _same(f, ref, [v - k], f"fused call {k}")


def test_intermediate_results_that_are_outputs_are_written(fusion):
    x, y = pt.matrix("x"), pt.vector("y")
    a = pt.exp(x) + y  # an output, and read by the next steps
    b = pt.log1p(a * a)
    outs = [a, b, (b - y).sum(axis=0)]
    f = pytensor.function([x, y], outs, mode="AOT")
    ref = pytensor.function([x, y], outs, mode=REF)
    rng = np.random.default_rng(1)
    for k in range(3):
        _same(f, ref, [rng.normal(size=(3, 5)), rng.normal(size=5)], f"call {k}")
    assert am.wait_for_fusion(f, WAIT) >= 1
    for k in range(3):
        _same(f, ref, [rng.normal(size=(3, 5)), rng.normal(size=5)], f"fused call {k}")


def test_results_in_an_inputs_memory_are_stored_through_it(fusion):
    """PyTensor's in-place nodes put a run's results in the memory of its inputs (here the
    products' buffers, and a sum's 0-d one): the fused program records each such alias, its
    kernel stores through the input and checks the alias on entry, and the results stay the
    Python linker's. (A one-element run reads its inputs once, as broadcast scalars: it
    once stored such a result into that local copy, and eight schools' logp came out
    wrong.)"""
    from aotkernels.kernels.fused import BAD_GEOMETRY

    x, w = pt.matrix("x"), pt.matrix("w")
    a, b = x @ w, x @ w.T
    e = pt.exp(a * 0.1)
    outs = [e, pt.log1p(e + b * b), pt.sigmoid(b) - e, pt.log1p(pt.exp(x.sum() * 0.01)) * 2]
    f = pytensor.function([x, w], outs, mode="AOT")
    ref = pytensor.function([x, w], outs, mode=REF)
    rng = np.random.default_rng(2)
    vals = [rng.normal(size=(40, 40)) / 4, rng.normal(size=(40, 40)) / 4]
    for k in range(3):
        _same(f, ref, [v + k for v in vals], f"call {k}")
    assert am.wait_for_fusion(f, WAIT) >= 1
    runs = [run for run in _plan(f).runs if max(run.program.aliases) >= 0]
    assert runs, [run.program for run in _plan(f).runs]
    for k in range(3):
        _same(f, ref, [v - k for v in vals], f"fused call {k}")
    # called with that output elsewhere, the kernel refuses before touching memory
    run = runs[0]
    fn = next(step[0] for item in _plan(f).items for step in getattr(item, "steps", ())
              if step[2] is run.shapes)
    buffers = [np.zeros(1) for _ in run.program.dtypes]
    data = (ctypes.c_void_p * len(buffers))(*[b.ctypes.data for b in buffers])
    kernel = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p,
                              ctypes.c_void_p)(fn)
    assert kernel(data, run.shapes, run.strides) == BAD_GEOMETRY


def _fused_same_bits(ins, outs, vals):
    """The fused function after its kernels arrived (fused, the same bits as unfused and
    as before fusion, PyTensor's Python linker's numbers) and its plan's runs."""
    f = pytensor.function(ins, outs, mode="AOT")
    ref = pytensor.function(ins, outs, mode=REF)
    for _ in range(3):
        before = [np.array(v, copy=True) for v in f(*vals)]
    assert am.wait_for_fusion(f, WAIT) >= 1
    for got, want in zip(f(*vals), before):
        np.testing.assert_array_equal(got, want)
    _same(f, ref, vals, "fused")
    return _plan(f).runs


def _row(run) -> int:
    return run.shapes[run.program.ndim - 1]


def test_long_rows_do_not_join_a_run_of_short_rows(fusion):
    """``y - x[:, None]`` over a (150, 2) matrix iterates rows of 2 elements; the ``exp`` and
    the product after it run one flat loop of 300 on their own kernels. Fused together, the
    loop ran its exp scalar, row by row (zero-inflated Poisson's fused plan was slower than
    its unfused one): the long-row steps make a run of their own."""
    from aotkernels.pytensor.fusion import SHORT_ROW

    x, y = pt.vector("x"), pt.matrix("y")
    outs = [pt.exp(y - x[:, None]) * 3.0]
    rng = np.random.default_rng(3)
    runs = _fused_same_bits([x, y], outs, [rng.normal(size=150), rng.normal(size=(150, 2))])
    ops = [[step[0] for step in run.program.steps] for run in runs]
    assert any("exp" in o for o in ops), ops
    for run, o in zip(runs, ops):
        assert "exp" not in o or _row(run) >= SHORT_ROW, (o, list(run.shapes))


def test_scalar_bodies_are_not_fused_with_vector_math(fusion):
    """``log1mexp`` calls libm's ``log1p``/``expm1``, which no loop widens: fused with
    ``log`` and ``expm1``, their vector bodies ran scalar too (censored Weibull's fused plan
    was slower than its unfused one). Each kind gets runs of its own."""
    from aotkernels.pytensor.fusion import _libm_ops, _loop_kind

    x = pt.vector("x")
    outs = [pt.log1mexp(-pt.abs(x) - 0.5) / pt.expm1(x * x + 0.1) + pt.log(x * x + 1.0)]
    rng = np.random.default_rng(4)
    runs = _fused_same_bits([x], outs, [rng.normal(size=100)])
    libm = _libm_ops()
    kinds = [{_loop_kind(step[0], libm) for step in run.program.steps} - {None}
             for run in runs]
    assert any("scalar" in k for k in kinds), kinds
    assert all(len(k) <= 1 for k in kinds), kinds


STRIDED_VECTORISES = r"""
import os, re, sys
os.environ["NUMBA_OPT"] = "0"
from aotkernels.generator.compile import compile_kernel
from aotkernels.generator.link import host_machine, kernel_module, optimise
from aotkernels.kernels.fused import Program, register
# out0 = x * y + 1 over contiguous x, out1 = exp(...) stored with a stride (a 'g' operand)
p = Program(("float64", "float64", "float64", "float64", "float64"), 3, "cccgc", 1,
            (("mul", ("float64", "float64"), "float64", (0, 1)),
             ("add", ("float64", "float64"), "float64", (3, 2)),
             ("exp", ("float64",), "float64", (4,))), (1, 2), (-1, -1))
k = compile_kernel(register(p))
mod = kernel_module(k.ir, k.inner, k.symbol)
optimise(mod, host_machine())
print(len(re.findall(r"^vector\.body[0-9]*:", str(mod), re.M)))
"""


def test_a_strided_operand_keeps_the_fused_loop_vectorised(tmp_path):
    """A fused loop with a strided operand did not vectorise at all (LLVM widens no
    strided store): strided operands go through stack blocks, and the loop computing the
    steps gets a vector body (checked in the optimised IR of a real compile)."""
    res = subprocess.run([sys.executable, "-c", STRIDED_VECTORISES], capture_output=True,
                         text=True, cwd=tmp_path, env=dict(os.environ, AOT_CPU_TARGET=""))
    assert res.returncode == 0, res.stderr[-3000:]
    assert int(res.stdout.split()[-1]) >= 1, res.stdout


def test_a_second_process_loads_fused_kernels_without_numba(fusion, tmp_path):
    """The fused kernel compiled here is an entry of the JIT cache; a second process swaps
    it in without compiling and without importing numba."""
    code = (
        "import sys, numpy as np, pytensor\n"
        "from tests.test_fusion import chain\n"
        "import aotkernels.pytensor as am\n"
        "from aotkernels import jit\n"
        "ins, outs = chain()\n"
        "f = pytensor.function(ins, outs, mode='AOT')\n"
        "v = [np.linspace(-1, 1, 7), np.linspace(1, 2, 7)]\n"
        "r = [f(*v)[0] for _ in range(3)]\n"
        f"n = am.wait_for_fusion(f, {WAIT})\n"
        "print(n, jit.stats['compiled'], 'numba' in sys.modules, "
        "np.array_equal(f(*v)[0], r[0]))\n")
    env = {**os.environ, "AOT_CACHE_DIR": str(tmp_path), "AOT_FUSION": "1"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    runs = [subprocess.run([sys.executable, "-c", code], env=env, cwd=root, text=True,
                           capture_output=True, timeout=WAIT) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr[-2000:]
    first, second = (r.stdout.split()[-4:] for r in runs)
    assert first[0] == "1" and int(first[1]) >= 1 and first[2:] == ["False", "True"], first
    assert second == ["1", "0", "False", "True"], second  # nothing compiled, no numba


def _fused_check(case, seed: int) -> None:
    note(case.describe())
    f = pytensor.function(case.inputs, case.outputs, mode="AOT")
    ref = pytensor.function(case.inputs, case.outputs, mode=REF)
    vals = [case.values(case.sizes, seed + k) for k in range(3)]
    before = []
    for k, v in enumerate(vals):
        _same(f, ref, v, f"call {k}")
        before.append(_outcome(f, v))
    fused = am.wait_for_fusion(f, WAIT)
    event(f"fused runs: {min(fused, 2)}")
    for k, v in enumerate(vals):
        _same(f, ref, v, f"fused call {k}")
        got = _outcome(f, v)
        assert got[0] == before[k][0]
        if got[0] is None:
            for a, b in zip(got[1], before[k][1]):  # the same bits as the unfused steps
                np.testing.assert_array_equal(a, b)
    other = case.values(case.sizes, seed + 7, strided=True)
    _same(f, ref, other, "strided inputs")


@pytest.mark.usefixtures("fusion")
@settings(max_examples=20, **SETTINGS)
@given(graphs(), st.integers(0, 2**16))
def test_generated_graphs_fused(case, seed):
    _fused_check(case, seed)


@pytest.mark.usefixtures("fusion")
@settings(max_examples=8, **SETTINGS)
@given(gradients(), st.integers(0, 2**16))
def test_generated_gradients_fused(case, seed):
    _fused_check(case, seed)


def test_from_usage_bakes_fused_kernels_into_a_library(fusion, tmp_path):
    """A fused kernel a workload compiled is recorded with its program in ``misses.txt``;
    ``build-kernels --from-usage`` builds it; a process using that library swaps it in at
    once, with no compile."""
    import time

    from aotkernels.build_tools.cli import build
    from aotkernels.generator.catalog import catalog
    from aotkernels.targets import default_targets

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run = ("import sys, numpy as np, pytensor\n"
           "from tests.test_fusion import chain\n"
           "import aotkernels.pytensor as am\n"
           "from aotkernels import jit, library\n"
           "if len(sys.argv) > 1: library.bind('fused', sys.argv[1])\n"
           "ins, outs = chain()\n"
           "f = pytensor.function(ins, outs, mode='AOT')\n"
           "v = [np.linspace(-1, 1, 7), np.linspace(1, 2, 7)]\n"
           "r = [f(*v)[0] for _ in range(3)]\n"
           "plan = next(iter(f.vm.plans.values()))\n"
           "print(plan.fused, plan.pending is None, jit.stats['compiled'])\n"
           f"am.wait_for_fusion(f, {WAIT})\n"
           "print(','.join(r.program.signature.key for r in plan.runs))\n")
    env = {**os.environ, "AOT_FUSION": "1"}
    first = subprocess.run([sys.executable, "-c", run], env=env, cwd=root, text=True,
                           capture_output=True, timeout=WAIT)
    assert first.returncode == 0, first.stderr[-2000:]
    (key,) = first.stdout.split()[-1:]
    misses = jit.cache_dir() / "misses.txt"  # this target's (other tests fill others)
    sigs = [s for s in catalog(usage=misses, families=["fused"]) if s.key == key]
    assert len(sigs) == 1
    t = time.perf_counter()
    build(sigs, list(default_targets()), tmp_path / "lib", wheel=False, jobs=os.cpu_count() or 1,
          cache_dir=None, quiet=True)
    print(f"build: {time.perf_counter() - t:.1f} s")
    second = subprocess.run([sys.executable, "-c", run, str(tmp_path / "lib")], env=env,
                            cwd=root, text=True, capture_output=True, timeout=WAIT)
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.stdout.split()[-4:-1] == ["1", "True", "0"], second.stdout  # at once


def test_a_forked_child_gets_its_fused_kernels(fusion, monkeypatch, tmp_path):
    """A process forked while its parent's compile runs has no compiler thread: the plan
    asks again in the child instead of waiting forever."""
    monkeypatch.setenv("AOT_CACHE_DIR", str(tmp_path))
    ins, outs = chain()
    outs = [outs[0] * 5.0]  # a program no other test of this process compiled
    f = pytensor.function(ins, outs, mode="AOT")
    v = [np.linspace(-1, 1, 9), np.linspace(1, 2, 9)]
    want = [f(*v)[0] for _ in range(3)][0]
    assert _plan(f).pending is not None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, never return into pytest
        ok = np.array_equal(f(*v)[0], want) and am.wait_for_fusion(f, WAIT) == 1
        ok = ok and np.array_equal(f(*v)[0], want) and _plan(f).fast[0] is _plan(f).items
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1" and status == 0
    assert am.wait_for_fusion(f, WAIT) == 1
