"""``AOTFunction``: a planned call skips ``Function.__call__``'s input filter only where the
filter would pass the argument unchanged; every other argument gets PyTensor's conversion
or PyTensor's error, on the first call and on a replayed plan alike."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

pytensor = pytest.importorskip("pytensor")
pt = pytest.importorskip("pytensor.tensor")
am = pytest.importorskip("aotkernels.pytensor")

from pytensor.tensor.type import TensorType  # noqa: E402
from pytensor_cases import close, modes, rng  # noqa: E402


@pytest.fixture
def filtered(monkeypatch):
    """How many arguments went through ``TensorType.filter`` since the last reset."""
    count = [0]
    plain = TensorType.filter

    def counting(self, data, strict=False, allow_downcast=None):
        count[0] += 1
        return plain(self, data, strict, allow_downcast)

    monkeypatch.setattr(TensorType, "filter", counting)
    return count


def unaligned(values: np.ndarray) -> np.ndarray:
    """``values`` in float64 memory one byte off alignment (same shape and strides)."""
    buf = np.zeros(values.nbytes + 1, np.uint8)
    a = buf[1:].view(np.float64)
    a[:] = values
    assert not a.flags.aligned
    return a


def same_error(f, ref, args) -> None:
    with pytest.raises(Exception) as want:
        ref(*args)
    with pytest.raises(want.type) as got:
        f(*args)
    assert str(got.value).splitlines()[-1] == str(want.value).splitlines()[-1]


def test_planned_calls_skip_the_filter_and_nothing_else(aot_lib, filtered):
    """After the plan exists, arrays of its geometry are not filtered; lists, other dtypes,
    other strides, unaligned memory, keyword arguments and bad calls take
    ``Function.__call__`` and give PyTensor's results or PyTensor's errors."""
    x, y = pt.vector("x"), pt.vector("y")
    f, ref = modes([x, y], [pt.exp(x) * y + 1, (x - y).sum()])
    assert isinstance(f, am.AOTFunction) and f.n_args == 2
    a, b = rng.normal(size=6), rng.normal(size=6)
    for _ in range(3):  # run, record and plan, replay
        f(a, b)
    assert f.vm.fast_args is not None
    calls = [(a * k, b + k) for k in range(3)]
    wants = [ref(*args) for args in calls]
    filtered[0] = 0
    gots = [f(*args) for args in calls]
    assert filtered[0] == 0  # the fast path took every one of these calls
    for got, want in zip(gots, wants):
        for g, w in zip(got, want):
            close(g, w)
    converted = [(list(a), b), (a.astype(np.float32), b), (a.astype(np.int64), b),
                 (np.repeat(a, 2)[::2], b)]
    for args in converted:
        for g, w in zip(f(*args), ref(*args)):
            close(g, w)
    for g, w in zip(f(y=b, x=a), ref(y=b, x=a)):
        close(g, w)
    for bad in [(unaligned(a), b), (a, unaligned(b)), (a,), (a, b, a), (x, b),
                (np.ones((2, 3)), b), (a.astype(np.complex128), b)]:
        same_error(f, ref, bad)
    f(a, b)  # the plan again: still right after the failures
    for g, w in zip(f(a, b), ref(a, b)):
        close(g, w)


def test_shared_variables_are_read_on_every_call(aot_lib):
    """An implicit input (a shared variable) is read where it is this call: a new value of
    the planned geometry runs the plan, another geometry plans anew."""
    x = pt.vector("x")
    s = pytensor.shared(np.ones(5), name="s")
    f = pytensor.function([x], pt.exp(x) * s, mode="AOT")
    assert f.n_args == 1
    v = rng.normal(size=5)
    for value in [np.ones(5), np.arange(5.0), np.arange(5.0)[::-1], np.ones(7),
                  np.full(5, 3.0)]:
        s.set_value(value)
        arg = v if value.size == 5 else rng.normal(size=7)
        for _ in range(3):
            np.testing.assert_allclose(f(arg), np.exp(arg) * value, rtol=1e-15)


def test_functions_the_fast_call_cannot_serve_use_function_call(aot_lib):
    """Updates and inputs that may share memory keep ``Function.__call__``; their results
    stay PyTensor's."""
    x, y = pt.vector("x"), pt.vector("y")
    s = pytensor.shared(np.zeros(4), name="acc")
    with_update = pytensor.function([x], s * 2, updates={s: s + x}, mode="AOT")
    mutable = pytensor.function([pytensor.In(x, mutable=True), pytensor.In(y, mutable=True)],
                                x + y, mode="AOT")
    a = np.arange(4.0)
    for fn in (with_update, mutable):
        assert fn.n_args == -1
    for k in range(4):
        np.testing.assert_array_equal(with_update(a), 2 * k * a)
        c = a.copy()  # one array for both: Function copies one of them first
        np.testing.assert_array_equal(mutable(c, c), 2 * a)
    np.testing.assert_array_equal(s.get_value(), 4 * a)


def test_trusted_inputs_that_may_alias_take_the_fast_call(aot_lib, monkeypatch):
    """Borrowed inputs of one type may alias, so ``Function.__call__`` checks them for
    shared memory, unless the function ``trust_input`` (PyMC's trace point function, once
    per draw): then neither PyTensor nor the fast call checks, and the fast call serves it."""
    from pytensor.compile import Function

    x, y = pt.vector("x"), pt.vector("y")
    f = pytensor.function([pytensor.In(x, borrow=True), pytensor.In(y, borrow=True)],
                          [x * 2.0, y + 1.0], mode="AOT")
    assert f._potential_aliased_input_groups and f.n_args == -1
    f.trust_input = True
    assert f.n_args == 2
    calls, plain = [0], Function.__call__

    def counting(self, *args, **kwargs):
        calls[0] += 1
        return plain(self, *args, **kwargs)

    monkeypatch.setattr(Function, "__call__", counting)
    a = np.arange(4.0)
    for _ in range(3):  # run, record and plan
        f(a, a)
    calls[0] = 0
    for k in range(4):
        got = f(a + k, a)
        np.testing.assert_array_equal(got[0], (a + k) * 2.0)
        np.testing.assert_array_equal(got[1], a + 1.0)
    assert calls[0] == 0  # every call on the fast path
    f.trust_input = False
    assert f.n_args == -1
    np.testing.assert_array_equal(f(a, a)[0], a * 2.0)
    assert calls[0] == 1


def test_results_that_are_views_of_inputs_take_the_fast_call(aot_lib, monkeypatch):
    """A result that is an input (PyMC's trace function returns its value variables through
    ``ViewOp``) or a view of one runs its view's thunk inside the fast call, with the
    pointer of a view a later kernel reads set again (session 18; before, any such view
    kept the plan off the fast call)."""
    from pytensor.compile import Function

    x, y = pt.matrix("x"), pt.vector("y")
    outs = [pytensor.Out(x, borrow=True), pytensor.Out(y[::-1], borrow=True),
            pt.exp(x.T) * y]
    f, ref = modes([pytensor.In(x, borrow=True), pytensor.In(y, borrow=True)], outs)
    assert "ViewOp" in str(f.maker.fgraph.toposort())
    calls, plain = [0], Function.__call__

    def counting(self, *args, **kwargs):
        calls[0] += 1
        return plain(self, *args, **kwargs)

    monkeypatch.setattr(Function, "__call__", counting)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=3)
    for _ in range(3):  # run, record and plan
        f(a, b)
    assert f.vm.fast_args is not None
    wants = [ref(a + k, b - k) for k in range(4)]
    calls[0] = 0
    for k, want in enumerate(wants):
        for got, w in zip(f(a + k, b - k), want):
            close(got, w)
    assert calls[0] == 0  # every call on the fast path
    with pytest.raises(ValueError) as want:  # another geometry that does not broadcast
        ref(np.ones((4, 3)), b)
    with pytest.raises(want.type):
        f(np.ones((4, 3)), b)


def test_copies_and_pickles_keep_the_fast_call(aot_lib):
    """A copy or an unpickled function (of one that has a plan) is made again from the graph
    as PyTensor makes a ``Function``, and plans its own calls."""
    x = pt.vector("x")
    f = pytensor.function([x], pt.exp(x) + 1, mode="AOT")
    v = rng.normal(size=5)
    for _ in range(4):
        f(v)
    for g in (f, f.copy(), pickle.loads(pickle.dumps(f))):
        assert isinstance(g, am.AOTFunction) and (g is f or g.vm is not f.vm)
        for _ in range(4):
            np.testing.assert_allclose(g(v), np.exp(v) + 1, rtol=1e-15)
        assert g.vm.fast_args is not None


def test_a_mode_built_around_the_aot_linker_gets_the_fast_call(aot_lib):
    """PyMC compiles with ``Mode(linker=mode.linker, optimizer=...)``: the ``Function`` is
    still an ``AOTFunction``; other linkers keep PyTensor's ``Function``."""
    from pytensor.compile.mode import Mode

    x = pt.vector("x")
    f = pytensor.function([x], x * 2, mode=Mode(linker=am.AOT.linker, optimizer="fast_run"))
    g = pytensor.function([x], x * 2, mode="FAST_COMPILE")
    assert isinstance(f, am.AOTFunction) and not isinstance(g, am.AOTFunction)
