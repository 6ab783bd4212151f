"""``aotkernels.pytensor.lean_rewriting``: mode AOT's rewriting with less work. Differential:
every shortcut against PyTensor's own code (the same functions outside ``rewriting()``) on
generated shape expressions and graphs; ``tests/test_corpus.py`` compares whole rewritten
PyMC models node for node."""

from __future__ import annotations

import io
import random

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.graph.fg import FunctionGraph
from pytensor.tensor.rewriting.shape import ShapeFeature

import aotkernels.pytensor  # noqa: F401  (installs the shortcuts)
from aotkernels.pytensor import lean_rewriting as lean


def shape_expressions(rng: random.Random, n: int) -> list:
    """Integer scalar expressions over the shapes of variables with static, partly static
    and unknown dimensions: the forms PyTensor's rewrites hand to ``infer_static_shape``
    (``x.shape[i]``, ``Shape_i``, arithmetic with constants, slices of ``x.shape``, casts,
    ``maximum``/``switch`` of broadcasting), nested at random."""
    xs = [pt.tensor("a", shape=(3, 40)), pt.tensor("b", shape=(None, 5, 1)),
          pt.tensor("c", shape=(7,)), pt.tensor("d", shape=(None, None)),
          pt.tensor("e", shape=(1, 40), dtype="int32")]

    def leaf():
        x = rng.choice(xs)
        i = rng.randrange(x.type.ndim)
        kind = rng.randrange(4)
        if kind == 0:
            return x.shape[i]
        if kind == 1:
            return pt.shape(x)[:2][0] if x.type.ndim >= 2 else x.shape[-1]
        if kind == 2:
            from pytensor.tensor.shape import Shape_i
            return Shape_i(i)(x)
        return pt.constant(rng.randrange(0, 9), dtype=rng.choice(["int64", "int8"]))

    def expr(depth):
        if depth == 0 or rng.random() < 0.3:
            return leaf()
        a, b = expr(depth - 1), expr(depth - 1)
        op = rng.randrange(7)
        if op == 0:
            return a + b
        if op == 1:
            return a * b
        if op == 2:
            return pt.maximum(a, b)
        if op == 3:
            return pt.switch(pt.eq(a, 1), b, a)
        if op == 4:
            return a // pt.maximum(b, 1)
        if op == 5:
            return pt.cast(a, "int32")
        return a - b + 0

    return [expr(3) for _ in range(n)]


def test_folded_shapes_are_pytensors():
    """``infer_static_shape`` with the shortcut returns what PyTensor's returns, on 300
    generated shapes (one to three elements each); and the shortcut is taken on the
    fully static ones, so the comparison is not vacuous."""
    rng = random.Random(7)
    exprs = shape_expressions(rng, 600)
    before = lean.stats["folded_shapes"]
    for k in range(0, len(exprs) - 3, 2):
        shape = exprs[k:k + rng.randrange(1, 4)]
        want = lean.infer_static_shape(shape)  # outside rewriting(): PyTensor's
        with lean.rewriting():
            got = lean.infer_static_shape(shape)
        assert got[1] == want[1], [str(s) for s in shape]
        assert [s.type for s in got[0]] == [s.type for s in want[0]]
    assert lean.stats["folded_shapes"] - before > 30


def test_alloc_types_are_pytensors():
    """``Alloc`` built during rewriting (it calls ``infer_static_shape``) gets the same
    output type with the shortcut on and off."""
    rng = random.Random(3)
    exprs = shape_expressions(rng, 200)
    for k in range(0, len(exprs) - 2, 2):
        shape = exprs[k:k + 2]
        want = pt.alloc(np.float64(0.5), *shape).type
        with lean.rewriting():
            got = pt.alloc(np.float64(0.5), *shape).type
        assert got == want


def test_static_imports_record_pytensors_shapes():
    """A ``ShapeFeature`` attached inside ``rewriting()`` records, for every variable of a
    graph, shapes equal (as constants, by value) to those PyTensor's ``on_import`` records,
    and skips ``infer_shape`` on nodes whose outputs are fully static."""
    x = pt.tensor("x", shape=(4, 1, 6))
    y = pt.tensor("y", shape=(None, 6))
    z = pt.tensor("z", shape=(4, 5, 6))
    outs = [(pt.exp(x) * z).sum(axis=1), pt.dot(y, pt.ones((6, 3))), x[:, 0] + z[:, 1],
            pt.concatenate([z, z], axis=1), pt.alloc(0.0, y.shape[0], 6)]

    def shapes(on: bool) -> tuple[list, int]:
        before = lean.stats["static_imports"]
        fg = FunctionGraph([x, y, z], outs, clone=True)
        if on:
            with lean.rewriting():
                fg.attach_feature(ShapeFeature())
        else:
            fg.attach_feature(ShapeFeature())
        text = []
        for node in fg.toposort():
            for out in node.outputs:
                shape = fg.shape_feature.shape_of[out]
                text.append(tuple(int(s.data) if isinstance(s, pytensor.graph.Constant)
                                  else str(s) for s in shape))
        return text, lean.stats["static_imports"] - before

    want, skipped_off = shapes(False)
    got, skipped_on = shapes(True)
    assert got == want
    assert skipped_off == 0 and skipped_on > 5


@pytest.mark.parametrize("seed", range(3))
def test_rewritten_graphs_are_the_same(aot_lib, monkeypatch, seed):
    """Mode AOT's rewriting gives the same graph, node for node, with the shortcuts on and
    off (``AOT_LEAN_REWRITING=0``), on generated graphs of static-shape tensors: broadcasts,
    reductions, ``Alloc`` of symbolic shapes, joins and indexing."""
    monkeypatch.setenv("AOT_GRAPH_CACHE", "0")
    rng = random.Random(seed)
    x = pt.tensor("x", shape=(5, 1))
    y = pt.tensor("y", shape=(1, 4))
    w = pt.tensor("w", shape=(5, 4))
    v = pt.vector("v")
    terms = [x + y, w * x, pt.exp(y) - w, pt.alloc(0.0, w.shape[0], y.shape[1]) + w,
             pt.concatenate([w, x * y], axis=0)[2:7], w[:, rng.randrange(4)][:, None] * y,
             pt.ones_like(w) * pt.sigmoid(x), pt.zeros((w.shape[0] + 0, 4)) + v[:4]]
    rng.shuffle(terms)
    total = sum(t.sum() * (k + 1) for k, t in enumerate(terms[:5]))
    outs = [total, *pytensor.grad(total, [x, y, w, v])]

    def text(on: bool) -> str:
        monkeypatch.setenv("AOT_LEAN_REWRITING", "1" if on else "0")
        f = pytensor.function([x, y, w, v], outs, mode="AOT")
        out = io.StringIO()
        pytensor.dprint(f.maker.fgraph, print_type=True, file=out)
        return out.getvalue()

    before = dict(lean.stats)
    assert text(True) == text(False)
    assert lean.stats["static_imports"] > before["static_imports"]


def test_constant_signatures_are_made_once_and_equal_pytensors():
    """While rewriting, a constant's signature is made once (so its masked copy and sum
    are computed once) and compares and hashes as PyTensor's; replacing the constant's
    data makes a new one; outside ``rewriting()`` every call makes a new one, as before."""
    c = pt.constant(np.array([1.0, np.nan, 3.0]))
    d = pt.constant(np.array([1.0, np.nan, 3.0]))
    e = pt.constant(np.array([1.0, 2.0, 3.0]))
    assert c.signature() is not c.signature()
    with lean.rewriting():
        first = c.signature()
        assert c.signature() is first and first == d.signature() and first != e.signature()
        assert hash(first) == hash(d.signature()) and c.equals(d) and not c.equals(e)
        c.data = np.array([1.0, 2.0, 3.0])
        assert c.signature() is not first and c.signature() == e.signature()


def test_trackers_give_pytensors_rewrites():
    """Node rewriters found for an Op through the shared MRO cache are PyTensor's, in
    PyTensor's order, for every equilibrium rewriter of mode AOT's query and Ops of the
    classes real graphs hold (subclasses included)."""
    from pytensor.compile import optdb
    from pytensor.graph.rewriting.basic import EquilibriumGraphRewriter
    from pytensor.tensor.blockwise import Blockwise

    try:  # PyTensor 3.x; 2.x has it in slinalg only
        from pytensor.tensor.linalg import Cholesky
    except ImportError:
        from pytensor.tensor.slinalg import Cholesky

    import aotkernels.pytensor as am

    def trackers():
        found, todo = [], [optdb.query(am.AOT.provided_optimizer)]
        while todo:
            r = todo.pop()
            if isinstance(r, EquilibriumGraphRewriter):
                found.append(r.node_tracker)
            todo.extend(getattr(r, "data", None) or getattr(r, "rewrites", None) or [])
        return found

    x, m = pt.vector("x"), pt.matrix("m")
    ops = [n.owner.op for n in (x + 1, pt.exp(x), x.dimshuffle(0, "x"), x[1:], x[[0, 1]],
                                pt.alloc(0.0, 3), m.sum(axis=0), pt.dot(m, x), m.T,
                                pt.switch(x > 0, x, 0), pt.join(0, x, x))]
    ops += [Blockwise(Cholesky()), Cholesky()]
    plain = trackers()
    want = [[[str(r) for r in t.get_trackers(op)] for op in ops] for t in plain]
    fresh = trackers()
    with lean.rewriting():
        got = [[[str(r) for r in t.get_trackers(op)] for op in ops] for t in fresh]
    assert len(plain) > 3 and got == want


def destroy_graph(rng: random.Random) -> tuple[list, list]:
    """Square tensors through unary and binary ``Elemwise`` nodes, views (transposes,
    reversals), joins and switches, many read twice: the in-place passes meet readers
    after the node they try, views of what it would destroy, and would-be cycles."""
    x, y = pt.tensor("x", shape=(4, 4)), pt.tensor("y", shape=(4, 4))
    pool = [x, y, pt.exp(x), y * 2.0]
    for _ in range(rng.randrange(12, 30)):
        k, a, b = rng.random(), rng.choice(pool), rng.choice(pool)
        if k < 0.2:
            v = rng.choice([pt.exp, pt.neg, pt.sqr, pt.tanh])(a)
        elif k < 0.55:
            v = rng.choice([pt.add, pt.mul, pt.sub])(a, b)
        elif k < 0.7:
            v = a.T
        elif k < 0.8:
            v = pt.concatenate([a[:2], b[2:]], axis=0)
        elif k < 0.9:
            v = a[::-1]
        else:
            v = pt.switch(a > 0, a, b)
        pool.append(v)
    outs = [v.sum(axis=rng.choice([0, 1])) for v in rng.sample(pool[2:], 4)]
    return [x, y], [*outs, rng.choice(pool[2:])]


@pytest.mark.parametrize("seed", range(2))
def test_destroy_check_accepts_only_what_pytensor_accepts(aot_lib, monkeypatch, seed):
    """Every in-place replacement ``destroy_check`` accepts on its own is one PyTensor's full
    validation accepts too (each is run both ways here), on 60 generated graphs whose
    in-place passes also meet replacements both refuse; the functions compute what the
    Python linker does. Fails if ``reaches`` misses a cycle, directly or through the
    orderings of another in-place node."""
    from pytensor.graph.utils import InconsistencyError

    from aotkernels.pytensor import destroy_check

    monkeypatch.setenv("AOT_GRAPH_CACHE", "0")
    seen = {"both": 0, "refused by both": 0, "only here": 0}
    plain = destroy_check.accepts

    def both(handler, fgraph, journal):
        ok = plain(handler, fgraph, journal)
        try:
            destroy_check.PYTENSOR_VALIDATE(handler, fgraph)
            full = True
        except InconsistencyError:
            full = False
        key = ("both" if full else "only here") if ok else (
            "refused by both" if not full else None)
        if key:
            seen[key] += 1
        return ok

    monkeypatch.setattr(destroy_check, "accepts", both)
    data = np.random.default_rng(seed)
    for k in range(30):
        ins, outs = destroy_graph(random.Random(1000 * seed + k))
        a, b = data.normal(size=(4, 4)), data.normal(size=(4, 4))
        f = pytensor.function(ins, outs, mode="AOT", on_unused_input="ignore")
        want = pytensor.function(ins, outs, mode=pytensor.compile.mode.Mode("py", "fast_run"),
                                 on_unused_input="ignore")(a, b)
        for got, ref in zip(f(a, b), want):
            np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    assert seen["only here"] == 0, seen
    assert seen["both"] > 20 and seen["refused by both"] > 0, seen


def test_destroy_check_refuses_with_pytensors_error():
    """Replacements the local check must refuse go to PyTensor's full validation, which
    raises its own error and leaves the graph as it was: a reader of the destroyed value
    downstream of the in-place node (a cycle), an input viewing what the node destroys
    (aliasing), a constant destroyed."""
    from pytensor.graph.destroyhandler import DestroyHandler
    from pytensor.graph.features import ReplaceValidate
    from pytensor.graph.utils import InconsistencyError
    from pytensor.tensor.elemwise import Elemwise

    from aotkernels.pytensor import destroy_check

    def in_place(node, i):
        return Elemwise(node.op.scalar_op, {0: i}).make_node(*node.inputs)

    x, y = pt.matrix("x"), pt.matrix("y")
    t, s = pt.exp(x), pt.exp(y)
    c = pt.constant(np.ones((2, 2)))
    cases = {"cycle": (t + 1.0, lambda u: [u, t * u], 0),
             "aliasing": (t + t.T, lambda u: [u], 0),
             "constant": (c + t, lambda u: [u], 0)}
    for name, (u, outs, i) in cases.items():
        fg = FunctionGraph([x, y], [*outs(u), s + 1.0], clone=False)
        fg.attach_feature(ReplaceValidate())
        fg.attach_feature(DestroyHandler())
        with lean.rewriting():
            first = [n for n in fg.apply_nodes if n.outputs[0] is fg.outputs[-1]][0]
            fg.replace_all_validate(list(zip(first.outputs, in_place(first, 0).outputs)))
            before = dict(destroy_check.stats)
            node = fg.outputs[0].owner
            with pytest.raises(InconsistencyError):
                fg.replace_all_validate(list(zip(node.outputs, in_place(node, i).outputs)))
            assert fg.outputs[0].owner is node, name
            assert destroy_check.stats["full"] == before["full"] + 1, name
            good = fg.outputs[-1].owner
            assert good.op.destroy_map and good in fg.apply_nodes, name


def signature_values(rng: np.random.Generator) -> list:
    """Constant data a graph holds: scalars and arrays of every numeric kind, with and
    without NaN, infinities of one and both signs, empty, 0-d, strided and big values."""
    out = [np.array(v) for v in (0, 1, -1, 2.5, np.nan, np.inf, -np.inf, True, False)]
    out += [np.array([], dtype="float64"), np.array([], dtype="int64"),
            np.arange(6, dtype="uint8"), np.arange(12.0).reshape(3, 4).T,
            np.array([1.0, np.nan, 2.0]), np.array([np.nan, np.nan]),
            np.array([np.inf, -np.inf, 1.0]), np.array([np.inf, 1.0]),
            np.array([np.inf, np.nan, 3.0]), np.array([1e308, 1e308]),
            np.array([2 ** 62, 2 ** 62], dtype="int64"), np.array([True, False, True]),
            np.array([1.5, 2.5], dtype="float32"), np.array([1 + 2j]),
            np.arange(20, dtype="int32")[::3]]
    for _ in range(40):
        a = rng.normal(size=rng.integers(0, 5, size=rng.integers(0, 3)))
        if a.size and rng.random() < 0.3:
            a.flat[rng.integers(a.size)] = rng.choice([np.nan, np.inf, -np.inf])
        out.append(a.astype(rng.choice(["float64", "float32", "int64", "int8"]))
                   if np.isfinite(a).all() and rng.random() < 0.4 else a)
    return out


def test_signature_sums_and_equality_are_pytensors():
    """A new signature's sum, hash and equality inside ``rewriting()`` (no masked copy for
    NaN-free numbers) are PyTensor's, on every pair of generated constants, and on each
    pair compared before either was hashed; data with NaN or infinities goes through
    PyTensor's code. Fails if the sum or the equality differ on any of them."""
    values = signature_values(np.random.default_rng(0))

    def run(on: bool) -> tuple[list, list]:
        sigs = [pt.constant(v).signature() for v in values]
        twins = [pt.constant(v.copy()).signature() for v in values]
        if on:
            with lean.rewriting():
                eq = [[a == b for b in twins] for a in sigs]
                info = [(repr(s.sum), type(s.sum).__name__, hash(s)) for s in sigs]
        else:
            eq = [[a == b for b in twins] for a in sigs]
            info = [(repr(s.sum), type(s.sum).__name__, hash(s)) for s in sigs]
        return eq, info

    assert run(True) == run(False)
    with lean.rewriting():  # the shortcut is taken, not only PyTensor's code under it
        s = pt.constant(np.arange(3.0)).signature()
        assert s.sum == 3.0 and "_no_nan" not in s.__dict__


def pattern_rewriters() -> list:
    """Every ``PatternNodeRewriter`` PyTensor registers in its rewrite databases."""
    import pytensor.tensor.rewriting.math as ptm
    from pytensor.graph.rewriting.basic import PatternNodeRewriter

    found = {id(v): v for v in vars(ptm).values() if isinstance(v, PatternNodeRewriter)}
    from pytensor.compile import optdb
    todo = [optdb]
    while todo:
        db = todo.pop()
        for r in list(getattr(db, "__db__", {}).values()):
            for item in (r if isinstance(r, set) else [r]):
                if isinstance(item, PatternNodeRewriter):
                    found[id(item)] = item
                elif hasattr(item, "__db__"):
                    todo.append(item)
    return list(found.values())


def stabilisation_graph(rng: random.Random, x, y, depth: int = 0):
    """Random expressions over the functions PyTensor's pattern rewrites look for."""
    if depth > 3 or rng.random() < 0.2:
        return rng.choice([x, y, x * y])
    a = stabilisation_graph(rng, x, y, depth + 1)
    k = rng.randrange(12)
    if k < 7:
        return [pt.sigmoid, pt.softplus, pt.log, pt.log1p, pt.exp, pt.neg, pt.expm1][k](a)
    b = stabilisation_graph(rng, x, y, depth + 1)
    return [lambda: 1 - a, lambda: a - b, lambda: a * b, lambda: pt.log(pt.exp(a) - pt.exp(b)),
            lambda: pt.log1p(-a)][k - 7]()


def test_pattern_rewrites_skip_only_nodes_they_cannot_match():
    """``cannot_match`` refuses a node only where PyTensor's unification of the pattern
    fails too: every pattern rewrite PyTensor registers, on every node of 80 generated
    graphs over sigmoid, softplus, log, log1p, exp, expm1, negation and differences; and
    ``pattern_transform`` returns what PyTensor's does on each."""
    from aotkernels.pytensor import lean_rewriting

    plain = lean_rewriting._PYTENSOR_PATTERN_TRANSFORM  # PyTensor's own
    rewriters = pattern_rewriters()
    x, y = pt.vector("x"), pt.vector("y")
    rng = random.Random(0)
    seen = {"refused": 0, "matched": 0}
    for _ in range(80):
        fg = FunctionGraph([x, y], [stabilisation_graph(rng, x, y)], clone=True)
        for node in list(fg.apply_nodes):
            for r in rewriters:
                want = plain(r, fg, node, get_nodes=False)
                refused = lean_rewriting.cannot_match(r.in_pattern, node.outputs[0])
                seen["refused"] += refused
                seen["matched"] += want is not False and want is not None
                assert not (refused and want), (r, node)
                with lean.rewriting():
                    got = r.transform(fg, node)
                want = plain(r, fg, node)
                assert (got in (None, False)) == (want in (None, False)), (r, node)
    assert len(rewriters) > 8 and seen["refused"] > 1000 and seen["matched"] > 20, seen
