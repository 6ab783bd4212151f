"""``Elemwise{ScalarLoop}`` on ``loop`` kernels (``kernels/loop.py``) against PyTensor's
Python linker: a while loop whose ``until`` holds on the first step, later, or never, for
loops refusing a negative count on the first call and on a replayed plan, the gradients
of ``gammainc``, ``gammaincc`` and ``betainc``; and the loop's program as data."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.scalar as ps
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import Mode
from pytensor.scalar.loop import ScalarLoop
from pytensor.tensor.elemwise import Elemwise

import aotkernels.pytensor as am
from aotkernels.generator.catalog import usage_signatures
from aotkernels.kernels import FAMILIES, program_json
from aotkernels.kernels.loop import LOOPS, Loop

PY = Mode(linker="py", optimizer="fast_run")


def _loop_rows(f) -> list[str]:
    return [src for node, src in am.coverage(f) if "Scalarloop" in node or "ScalarLoop" in node]


def _while_loop():
    """x <- x * 0.5 + psi(c), n <- n + 1 (int16) until x < t: ``psi`` through SciPy's slot
    table, an integer carry, a float constant of the inner graph."""
    x0, c, t = ps.float64("x0"), ps.float64("c"), ps.float64("t")
    n0 = ps.int16("n0")
    x1 = x0 * np.float64(0.5) + ps.psi(c)
    n1 = n0 + np.int16(1)
    return ScalarLoop(init=[x0, n0], update=[x1, n1], constant=[c, t], until=x1 < t)


def test_while_loop_bit_for_bit(aot_lib):
    """``until`` true on the first step, after a few, never; zero and negative counts (no
    step: the flag stays false); NaN and infinite carries and constants."""
    op = Elemwise(_while_loop())
    steps, x, n, c, t = (pt.ivector("s"), pt.dvector("x"), pt.wvector("n"), pt.dvector("c"),
                         pt.dvector("t"))
    outs = op(steps, x, n, c, t)
    f = pytensor.function([steps, x, n, c, t], outs, mode="AOT")
    ref = pytensor.function([steps, x, n, c, t], outs, mode=PY)
    m = 9
    args = [np.array([0, -3, 1, 5, 50, 50, 50, 7, 50], np.int32),
            np.array([3.0, 3.0, 3.0, 100.0, 1e300, np.nan, np.inf, -5.0, 2.0]),
            np.arange(m, dtype=np.int16),
            np.array([2.0, 2.0, 1.5, 0.5, 3.0, 2.0, 2.0, 1.0, np.inf]),
            np.array([10.0, 10.0, 10.0, -1e9, 1.0, 0.0, 5.0, 100.0, 0.0])]
    for _ in range(3):  # first call, recording, replayed plan
        got, want = f(*args), ref(*args)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and g.tobytes() == w.tobytes(), (g, w)
    assert want[-1].tolist() == [False, False, True, False, False, False, False, True, False]
    assert _loop_rows(f) and set(_loop_rows(f)) <= {"aot", "jit"}
    assert am.plan_summary(f)["python"] == 0


def test_for_loop_negative_count_raises_on_first_call_and_replay(aot_lib):
    x0, c = ps.float64("x0"), ps.float64("c")
    op = Elemwise(ScalarLoop(init=[x0], update=[x0 * c + np.float64(1.0)], constant=[c]))
    steps, x, c = pt.ivector("s"), pt.dvector("x"), pt.dvector("c")
    (out,) = [op(steps, x, c)]
    f = pytensor.function([steps, x, c], out, mode="AOT")
    ref = pytensor.function([steps, x, c], out, mode=PY)
    good = [np.array([0, 1, 3, 20], np.int32), np.array([1.0, 2.0, -3.0, 0.5]),
            np.array([0.5, 1.5, 2.0, np.nan])]
    bad = [np.array([2, -1, 0, 0], np.int32), *good[1:]]
    with pytest.raises(ValueError) as want:
        ref(*bad)
    with pytest.raises(ValueError) as first:
        f(*bad)
    for _ in range(3):
        assert f(*good).tobytes() == ref(*good).tobytes()
    assert am.plan_summary(f)["python"] == 0
    with pytest.raises(ValueError) as replayed:
        f(*bad)
    assert str(first.value) == str(replayed.value) == str(want.value)


def test_gamma_and_beta_gradients_match_the_python_linker(aot_lib):
    """The loops PyTensor builds for these gradients, on a model's range of values: within
    the series' own stopping precision (gammaincc's stops at terms of 1e-6 relative,
    gammainc's at 1e-10, betainc's at 1e-12: ``exp``, ``log1p``, ``pow`` are
    NumPy's SIMD functions in ``perform``, libm's in the kernels, and an ulp decides
    whether one more term is added); a replayed plan gives the first call's bits."""
    k, x, p, q, z = (pt.dvector(n) for n in "kxpqz")
    outs = [pt.grad(pt.sum(pt.gammainc(k, x)), k), pt.grad(pt.sum(pt.gammaincc(k, x)), k),
            pt.grad(pt.sum(pt.betainc(p, q, z)), p)]
    f = pytensor.function([k, x, p, q, z], outs, mode="AOT")
    ref = pytensor.function([k, x, p, q, z], outs, mode=PY)
    rng = np.random.default_rng(3)
    args = [np.concatenate([rng.uniform(0.5, 12, 20), [0.7, 10.0]]),
            np.concatenate([rng.uniform(0.1, 40, 20), [20.0, 0.0]]),
            rng.uniform(0.5, 8, 22), rng.uniform(0.5, 8, 22),
            np.concatenate([rng.uniform(0.02, 0.98, 20), [1.5, 0.0]])]
    first = f(*args)
    for g, w in zip(first, ref(*args)):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-9, equal_nan=True)
    for _ in range(2):
        for g, w in zip(f(*args), first):
            assert g.tobytes() == w.tobytes()
    assert len(_loop_rows(f)) >= 5 and set(_loop_rows(f)) <= {"aot", "jit"}
    assert am.plan_summary(f)["python"] == 0


def test_loop_programs_travel_as_data(aot_lib, tmp_path):
    """A loop is named by its JSON, which ``misses.txt`` carries for ``--from-usage``."""
    op = Elemwise(_while_loop())
    args = [pt.ivector(), pt.dvector(), pt.wvector(), pt.dvector(), pt.dvector()]
    f = pytensor.function(args, op(*args), mode="AOT")
    f(np.array([3], np.int32), np.ones(1), np.zeros(1, np.int16), np.ones(1), np.zeros(1))
    name = next(iter(LOOPS))
    loop = LOOPS[name]
    assert Loop.from_json(loop.to_json()) == loop and loop.name == name
    misses = tmp_path / "misses.txt"
    misses.write_text(f"{loop.signature.key}\t{program_json(loop.signature)}\n"
                      f"{loop.signature.key}\t[]\n")  # a damaged line is skipped
    LOOPS.clear()
    assert usage_signatures(misses) == [loop.signature]
    assert FAMILIES["loop"].table[name] == loop



_NAMES = """
import pytensor, pytensor.tensor as pt
import aotkernels.pytensor
p, q, z = pt.dvector("p"), pt.dvector("q"), pt.dvector("z")
f = pytensor.function([p, q, z], pt.grad(pt.sum(pt.betainc(p, q, z)), [p, q]), mode="AOT")
names = []
for t in f.maker.linker.thunks:
    for cell in getattr(getattr(t, "run", None), "__closure__", None) or ():
        if type(cell.cell_contents).__name__ == "LoopCall":
            names.append(cell.cell_contents.loop(1, cell.cell_contents.chunks[0]).name)
print(" ".join(sorted(names)))
"""


def test_a_loop_is_named_the_same_in_every_process(aot_lib):
    """The name (the kernel's symbol) of a loop program does not depend on the order of a
    set: the inner graph's constants are numbered in topological order. (Numbered by
    ``fgraph.variables``, a set of objects hashed by address, betainc's programs changed
    from one process to the next, and every process compiled its loops again.)"""
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONHASHSEED="random")
    runs = {subprocess.run([sys.executable, "-c", _NAMES], capture_output=True, text=True,
                           env=env, check=True).stdout.strip() for _ in range(3)}
    assert len(runs) == 1 and len(runs.pop().split()) >= 4, runs
