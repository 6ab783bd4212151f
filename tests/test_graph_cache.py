"""Mode AOT's cache of rewritten graphs (``aotkernels.pytensor.graph_cache``).

A second process compiling the same graph takes the rewritten graph from the cache and
must behave as a fresh compile: the same results bit for bit, the same exception on bad
input, shared variables and updates working (their values are never stored). Graphs that
differ in anything rewriting could see (a constant, a dtype, a static shape, a broadcast
pattern, the mode, which input is shared) get different keys. A damaged, stale, foreign
or foreign-owned entry is one warning and a normal compile, and an entry is unpickled only
if this user owns it: a planted entry that would run code does not. ``AOT_GRAPH_CACHE=0``
turns the cache off; processes compiling the same graph at once all succeed.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import Mode

import aotkernels.pytensor as am
from aotkernels import jit
from aotkernels.pytensor import graph_cache

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="acting as another uid needs root")

#: a child process: compile one case in mode AOT, print what it computed and the cache stats
CHILD = r"""
import json, sys
import numpy as np
import pytensor
import pytensor.tensor as pt
import aotkernels.pytensor as am
from aotkernels.pytensor import graph_cache

case, init = sys.argv[1], float(sys.argv[2])
rng = np.random.default_rng(0)

def hexes(values):
    return [np.asarray(v).tobytes().hex() for v in values]

report = {}
if case == "logistic":
    x, w, t = pt.matrix("x"), pt.vector("w"), pt.vector("t")
    p = pt.sigmoid(x @ w)
    loss = -pt.mean(t * pt.log(p) + (1 - t) * pt.log(1 - p)) + 1e-3 * pt.sum(w ** 2)
    f = pytensor.function([x, w, t], [loss, pytensor.grad(loss, w)], mode="AOT")
    X, W, T = rng.normal(size=(20, 4)), rng.normal(size=4), (rng.random(20) < 0.5) * 1.0
    report["calls"] = [hexes(f(X * k, W, T)) for k in (1, 2, 3)]
    bad = []
    for args in ((X[:, :3], W, T), (X, W, T[:5]), (X[0], W, T)):
        try:
            f(*args)
            bad.append(None)
        except Exception as exc:
            bad.append([type(exc).__name__, str(exc).splitlines()[0]])
    report["bad"] = bad
elif case == "shared":
    w = pytensor.shared(np.full(3, init), name="w")
    x = pt.vector("x")
    loss = pt.sum((x - w) ** 2)
    f = pytensor.function([x], loss, updates={w: w - 0.1 * pytensor.grad(loss, w)},
                          mode="AOT")
    X = np.array([1.0, 2.0, 3.0])
    report["calls"] = [hexes([f(X), w.get_value()]) for _ in range(4)]
    w.set_value(np.zeros(3))
    report["after_set"] = hexes([f(X), w.get_value()])
elif case == "inner":  # a Scan, an OpFromGraph (inlined) and AllocDiag (an OFG subclass)
    from pytensor.compile.builders import OpFromGraph
    x = pt.vector("x")
    res = pytensor.scan(lambda a, acc: acc * 0.5 + pt.exp(a), sequences=[x],
                        outputs_info=[pt.zeros(())])
    ys = res[0] if isinstance(res, tuple) else res
    a = pt.vector("a")
    twice = OpFromGraph([a], [a * 2 + init])
    loss = pt.sum(ys) + pt.sum(pt.diag(x) @ x) + pt.sum(twice(x) ** 2)
    f = pytensor.function([x], [loss, pytensor.grad(loss, x)], mode="AOT")
    X = np.linspace(-1.0, 1.0, 5)
    report["calls"] = [hexes(f(X * k)) for k in (1, 2, 3)]
report["stats"] = graph_cache.stats
print(json.dumps(report))
"""


def child(case: str, env: dict, init: float = 0.5) -> dict:
    res = subprocess.run([sys.executable, "-c", CHILD, case, str(init)],
                         env=dict(os.environ, **env), capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.fixture
def graphs(tmp_path, monkeypatch, aot_lib) -> Path:
    """A fresh graph cache (the JIT cache stays the session's); warnings seen anew."""
    root = tmp_path / "graph-cache"
    monkeypatch.setenv("AOT_GRAPH_CACHE_DIR", str(root))
    monkeypatch.delenv("AOT_GRAPH_CACHE", raising=False)
    monkeypatch.setattr(graph_cache, "_warned", set())
    for k in graph_cache.stats:
        monkeypatch.setitem(graph_cache.stats, k, 0)
    return root


def entries(root: Path) -> list[Path]:
    return sorted(root.glob("graphs-*/*.graph"))


def compile_logistic(mode=None, dtype="float64", const=1e-3, wshape=(None,)):
    x, t = pt.matrix("x", dtype=dtype), pt.vector("t", dtype=dtype)
    w = pt.tensor("w", dtype=dtype, shape=wshape)
    p = pt.sigmoid(x @ w)
    loss = -pt.mean(t * pt.log(p) + (1 - t) * pt.log(1 - p)) + const * pt.sum(w ** 2)
    return pytensor.function([x, w, t], [loss, pytensor.grad(loss, w)], mode=mode or am.AOT)


LOGISTIC_ARGS = (np.linspace(-1, 1, 12).reshape(4, 3), np.array([0.5, -0.25, 1.0]),
                 np.array([1.0, 0.0, 1.0, 0.0]))


def test_a_second_process_hits_and_matches_a_fresh_compile(graphs):
    env = {"AOT_GRAPH_CACHE_DIR": str(graphs)}
    first = child("logistic", env)
    second = child("logistic", env)
    fresh = child("logistic", dict(env, AOT_GRAPH_CACHE="0"))
    assert first["stats"]["misses"] == 1 and first["stats"]["stored"] == 1
    assert second["stats"]["hits"] == 1 and second["stats"]["misses"] == 0
    assert fresh["stats"] == dict.fromkeys(graph_cache.stats, 0)
    assert second["calls"] == first["calls"] == fresh["calls"]  # bit for bit
    assert second["bad"] == fresh["bad"] and all(fresh["bad"]), fresh["bad"]
    assert len(entries(graphs)) == 1


def test_shared_variables_and_updates_after_a_hit(graphs):
    """The update still writes the shared variable; its value is not part of the entry:
    another initial value is still a hit and computes from that value."""
    env = {"AOT_GRAPH_CACHE_DIR": str(graphs)}
    first = child("shared", env, init=0.5)
    second = child("shared", env, init=0.5)
    other = child("shared", env, init=7.25)
    fresh = child("shared", dict(env, AOT_GRAPH_CACHE="0"), init=7.25)
    assert first["stats"]["stored"] == 1
    assert second["stats"]["hits"] == other["stats"]["hits"] == 1
    assert second["calls"] == first["calls"]
    assert other["calls"] == fresh["calls"] != first["calls"]
    assert other["after_set"] == fresh["after_set"]
    (entry,) = entries(graphs)
    data = entry.read_bytes()
    for value in (0.5, 7.25):
        assert np.full(3, value).tobytes() not in data


def test_inner_graphs_are_keyed_and_stored_fresh(graphs):
    """Graphs with a ``Scan`` and ``OpFromGraph``s (Ops without props, whose inner graphs
    are keyed like the outer one) are cached; a second process hits (the Scan's inner
    function too) and computes what a fresh compile computes. Another constant inside an
    inner graph is another key."""
    env = {"AOT_GRAPH_CACHE_DIR": str(graphs)}
    first = child("inner", env)
    second = child("inner", env)
    other = child("inner", env, init=1.5)
    fresh = child("inner", dict(env, AOT_GRAPH_CACHE="0"))
    assert first["stats"]["uncachable"] == 0 and first["stats"]["stored"] >= 1
    assert second["stats"]["hits"] >= 1 and second["stats"]["misses"] == 0
    assert second["stats"]["rejected"] == 0
    assert other["stats"]["misses"] >= 1
    assert second["calls"] == first["calls"] == fresh["calls"]
    assert other["calls"] != fresh["calls"]


@pytest.fixture
def keys(graphs, monkeypatch) -> list:
    """Every key computed, in order."""
    seen, real = [], graph_cache.graph_key

    def spy(fgraph, mode):
        seen.append(real(fgraph, mode))
        return seen[-1]

    monkeypatch.setattr(graph_cache, "graph_key", spy)
    return seen


def test_equal_graphs_share_a_key_and_others_do_not(keys):
    compile_logistic()
    compile_logistic()  # built again: new variables, same graph
    assert keys[0] == keys[1] and graph_cache.stats["hits"] == 1
    compile_logistic(const=2e-3)  # a constant
    compile_logistic(dtype="float32")  # dtypes
    compile_logistic(wshape=(3,))  # a static shape
    compile_logistic(wshape=(1,))  # a broadcast pattern
    compile_logistic(mode=am.AOT.excluding("inplace"))  # a derived mode: its own query
    compile_logistic(mode=am.AOT.including("local_remove_all_assert"))
    assert isinstance(am.AOT.excluding("inplace").optimizer, graph_cache.CachedRewriter)
    x, y = pt.vector("x"), pt.vector("y")
    s = pytensor.shared(np.ones(3), name="s")
    pytensor.function([x, y], x - y, mode=am.AOT)
    pytensor.function([y, x], x - y, mode=am.AOT)  # input order
    pytensor.function([x], x - s, mode=am.AOT)  # a shared variable where an input was
    pytensor.function([x], x - s, mode=am.AOT, updates={s: s + 1})  # an update
    assert len(set(keys[1:])) == len(keys) - 1, keys


def test_inner_graphs_are_keyed_by_their_nodes(keys):
    """An ``OpFromGraph`` (PyTensor's ``AllocDiag`` is one; PyMC's gradients make anonymous
    ones) is keyed by its inner graph: the same inner graph built twice shares a key (and
    the hit computes what a fresh compile does), another constant inside does not."""
    from pytensor.compile.builders import OpFromGraph

    def compile_ofg(k):
        a = pt.dvector("a")
        x = pt.dvector("x")
        return pytensor.function([x], OpFromGraph([a], [pt.exp(a) * k])(x)
                                 + pt.diag(x).sum(0), mode=am.AOT)

    X = np.array([0.5, -1.0, 2.0])
    fresh = compile_ofg(2.0)(X)
    hit = compile_ofg(2.0)(X)
    other = compile_ofg(3.0)(X)
    assert keys[0] == keys[1] != keys[2] and graph_cache.stats["hits"] == 1
    assert np.array_equal(fresh, hit) and not np.array_equal(fresh, other)
    np.testing.assert_allclose(other, np.exp(X) * 3 + X)


def test_a_mode_built_around_the_aot_linker_is_cached(graphs):
    """PyMC compiles with ``Mode(linker=mode.linker, optimizer=query)``: a plain ``Mode``
    around mode AOT's linker rewrites through the cache (with its own query in the key);
    a mode with another linker never does."""
    def pymc_like():
        return Mode(linker=am.AOT.linker,
                    optimizer=am.AOT.provided_optimizer.including("random_make_inplace"))

    assert isinstance(pymc_like().optimizer, graph_cache.CachedRewriter)
    assert not isinstance(Mode(linker="py", optimizer="fast_run").optimizer,
                          graph_cache.CachedRewriter)
    f = compile_logistic(mode=pymc_like())
    assert graph_cache.stats["misses"] == 1 and len(entries(graphs)) == 1
    g = compile_logistic(mode=pymc_like())
    assert graph_cache.stats["hits"] == 1
    compile_logistic()  # mode AOT's own query: another key
    assert graph_cache.stats["misses"] == 2 and len(entries(graphs)) == 2
    for want, got in zip(f(*LOGISTIC_ARGS), g(*LOGISTIC_ARGS)):
        assert np.asarray(want).tobytes() == np.asarray(got).tobytes()


def test_a_hit_in_process_behaves_as_a_fresh_compile(graphs, monkeypatch):
    """The same nodes, results and errors; the destroy handler watches the graph."""
    f = compile_logistic()
    g = compile_logistic()
    assert graph_cache.stats["hits"] == 1
    monkeypatch.setenv("AOT_GRAPH_CACHE", "0")
    h = compile_logistic()
    for _ in range(3):
        want = h(*LOGISTIC_ARGS)
        for fn in (f, g):
            for got, ref in zip(fn(*LOGISTIC_ARGS), want):
                assert got.tobytes() == ref.tobytes()
    assert sorted(map(str, g.maker.fgraph.toposort())) == sorted(
        map(str, h.maker.fgraph.toposort()))
    assert hasattr(g.maker.fgraph, "destroyers")  # the destroy handler sees the hit graph
    bad = (LOGISTIC_ARGS[0][:, :2], *LOGISTIC_ARGS[1:])
    with pytest.raises(Exception) as fresh:
        h(*bad)
    with pytest.raises(type(fresh.value)) as hit:
        g(*bad)
    assert str(hit.value).splitlines()[0] == str(fresh.value).splitlines()[0]


def test_a_rewriter_profile_prints_on_a_miss_and_a_hit(graphs, monkeypatch):
    """``config.profile_optimizer`` with ``profile=True``: the profile's summary prints the
    real rewriter's report on a miss and says so on a hit (it raised
    ``NotImplementedError`` from the cached rewriter before session 18)."""
    import io

    monkeypatch.setattr(pytensor.config, "profile", True)
    monkeypatch.setattr(pytensor.config, "profile_optimizer", True)
    texts = []
    for _ in range(2):
        f = compile_logistic()
        f(*LOGISTIC_ARGS)
        out = io.StringIO()
        f.profile.summary(file=out)
        texts.append(out.getvalue())
    assert graph_cache.stats["misses"] == graph_cache.stats["hits"] == 1
    assert "canonicalize" in texts[0] and "graph cache: a hit" in texts[1]


def test_the_switch_turns_it_off(graphs, monkeypatch):
    monkeypatch.setenv("AOT_GRAPH_CACHE", "0")
    compile_logistic()
    compile_logistic()
    assert graph_cache.stats == dict.fromkeys(graph_cache.stats, 0)
    assert not graphs.exists()


#: a child process: the freeze count before, after one and after two mode-AOT compiles
FREEZE_CHILD = r"""
import gc, json
import pytensor, pytensor.tensor as pt
import aotkernels.pytensor as am
counts = [gc.get_freeze_count()]
for k in (1, 2):
    x = pt.vector("x")
    pytensor.function([x], pt.exp(x) * k, mode=am.AOT)
    garbage = [[] for _ in range(1000)]  # new objects a second freeze would take
    counts.append(gc.get_freeze_count())
print(json.dumps(counts))
"""


@pytest.mark.parametrize("switch", [None, "0"])
def test_the_first_compile_freezes_the_imports_once(graphs, switch):
    """The first full garbage collection of a fresh process scanned everything the imports
    made, inside the first compile's rewriting; the first compile freezes those objects
    instead (once), unless ``AOT_GC_FREEZE=0``."""
    env = dict(os.environ, AOT_GRAPH_CACHE_DIR=str(graphs))
    env.pop("AOT_GC_FREEZE", None)
    if switch is not None:
        env["AOT_GC_FREEZE"] = switch
    res = subprocess.run([sys.executable, "-c", FREEZE_CHILD], env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    before, first, second = json.loads(res.stdout.strip().splitlines()[-1])
    assert before == 0
    if switch is None:
        assert first > 10_000 and second <= first  # frozen objects freed by refcount leave
    else:
        assert first == second == 0


def test_edited_rewriting_code_uses_other_entries(monkeypatch):
    """Entries made by other sources of aotkernels' rewriting are never read: an edited
    checkout (or a reinstall under the same version) gets a directory of its own. Before
    this, a rewrite fixed in place kept serving the graphs its old code had rewritten."""
    before, where = graph_cache.versions(), graph_cache.cache_dir()
    rewrites_py = Path(graph_cache.__file__).with_name("rewrites.py")
    plain = Path.read_bytes

    def edited(path):
        data = plain(path)
        return data + b"# edited" if path.name == rewrites_py.name else data

    graph_cache.source_digest.cache_clear()
    monkeypatch.setattr(Path, "read_bytes", edited)
    try:
        assert graph_cache.versions() != before and graph_cache.cache_dir() != where
    finally:
        monkeypatch.undo()
        graph_cache.source_digest.cache_clear()
    assert graph_cache.versions() == before


def test_an_uncachable_graph_compiles_normally(graphs):
    """An Op without props has no canonical name: no key, no entry, a normal compile."""
    from pytensor.graph.basic import Apply
    from pytensor.graph.op import Op

    class Twice(Op):  # identity equality: two instances are different Ops
        def make_node(self, x):
            return Apply(self, [x], [x.type()])

        def perform(self, node, inputs, outputs):
            outputs[0][0] = inputs[0] * 2

    x = pt.vector("x")
    f = pytensor.function([x], Twice()(pt.exp(x)), mode=am.AOT)
    np.testing.assert_allclose(f(np.zeros(2)), [2.0, 2.0])
    assert graph_cache.stats["uncachable"] == 1 and not entries(graphs)


def _damage(kind: str, entry: Path, other: Path | None) -> None:
    data = entry.read_bytes()
    if kind == "truncated":
        entry.write_bytes(data[:len(data) // 2])
    elif kind == "modified":
        entry.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    elif kind == "foreign":  # a whole, valid entry of another graph under this name
        entry.write_bytes(other.read_bytes())
    elif kind == "stale":  # sealed right, but naming a class that is gone
        key = entry.stem
        entry.write_bytes(jit.seal(key, b"cvanished_module\nGone\n.", graph_cache.MAGIC))
    elif kind == "old":  # sealed right, written by other versions
        payload = pickle.loads(jit.unseal(entry.stem, data, graph_cache.MAGIC))
        payload["versions"] = "format=0"
        entry.write_bytes(jit.seal(entry.stem, pickle.dumps(payload), graph_cache.MAGIC))


@pytest.mark.parametrize("kind", ["truncated", "modified", "foreign", "stale", "old"])
def test_a_bad_entry_is_one_warning_and_a_normal_compile(graphs, caplog, kind):
    x = pt.vector("x")
    pytensor.function([x], pt.exp(x) + 1, mode=am.AOT)
    other, = entries(graphs)
    want = compile_logistic()(*LOGISTIC_ARGS)
    entry, = set(entries(graphs)) - {other}
    _damage(kind, entry, other)
    for _ in range(2):
        with caplog.at_level(logging.WARNING, logger="aotkernels"):
            f = compile_logistic()
        for got, ref in zip(f(*LOGISTIC_ARGS), want):
            assert got.tobytes() == ref.tobytes()
    lines = [r.getMessage() for r in caplog.records if "graph cache" in r.getMessage()]
    assert len(lines) == 1 and str(entry) in lines[0], lines
    assert graph_cache.stats["rejected"] == 1
    assert graph_cache.stats["hits"] == 1  # the second compile used the rewritten entry


@as_root
def test_an_entry_of_another_user_is_never_unpickled(graphs, caplog, tmp_path):
    """A planted entry, sealed right, whose unpickling would create a file: owned by
    another uid it is refused unread; the same entry owned by this user would have run."""
    compile_logistic()
    entry, = entries(graphs)
    marker = tmp_path / "ran"

    class Plant:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    entry.write_bytes(jit.seal(entry.stem, pickle.dumps(Plant()), graph_cache.MAGIC))
    os.chown(entry, 65534, 65534)
    with caplog.at_level(logging.WARNING, logger="aotkernels"):
        f = compile_logistic()
    f(*LOGISTIC_ARGS)
    assert not marker.exists()
    lines = [r.getMessage() for r in caplog.records if "graph cache" in r.getMessage()]
    assert len(lines) == 1 and "owned by uid 65534" in lines[0], lines
    # the control: the same entry, this user's, is unpickled (then rejected as no graph)
    entry.write_bytes(jit.seal(entry.stem, pickle.dumps(Plant()), graph_cache.MAGIC))
    compile_logistic()
    assert marker.exists()


def test_a_group_writable_cache_is_not_used(graphs, caplog):
    compile_logistic()
    entry, = entries(graphs)
    entry.parent.chmod(0o770)
    with caplog.at_level(logging.WARNING, logger="aotkernels"):
        compile_logistic()
        compile_logistic()
    lines = [r.getMessage() for r in caplog.records if "graph cache" in r.getMessage()]
    assert len(lines) == 1 and "writable by group" in lines[0], lines
    assert graph_cache.stats["hits"] == 0


def test_processes_compiling_at_once_all_succeed(graphs):
    env = dict(os.environ, AOT_GRAPH_CACHE_DIR=str(graphs))
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, "logistic", "0.5"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    assert all(r["calls"] == reports[0]["calls"] for r in reports)
    assert len(entries(graphs)) == 1
    assert not [p for p in entries(graphs)[0].parent.iterdir() if p.suffix != ".graph"]
    assert child("logistic", {"AOT_GRAPH_CACHE_DIR": str(graphs)})["stats"]["hits"] == 1


def test_a_forked_child_compiles_and_stores(graphs):
    compile_logistic()
    pid = os.fork()
    if pid == 0:  # the child: a hit, then a new graph stored
        try:
            compile_logistic()
            x = pt.vector("x")
            pytensor.function([x], pt.exp(x) * 3, mode=am.AOT)
            ok = graph_cache.stats["hits"] == 1 and graph_cache.stats["stored"] == 2
        except BaseException:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(entries(graphs)) == 2


def test_scans_sharing_inner_nodes_compile_from_a_hit(graphs):
    """Third derivatives of a Scan make Scan Ops whose inner graphs share nodes; a hit
    installs them so, and compiling one loop's inner function (which rewrites its graph's
    own nodes, inplace ones included) broke the next loop's: each Scan node now gets its
    own clone. PyTensor's ``scan/test_basic.py::TestExamples::test_higher_order_derivatives``
    failed this way in mode AOT."""
    from pytensor.scan import scan

    def compile_derivatives():
        x = pt.dscalar("x")
        xs = scan(lambda prev: prev ** 2, outputs_info=[x], n_steps=4)
        xs = xs[0] if isinstance(xs, tuple) else xs  # 2.x returns (outputs, updates)
        r = xs[-1]
        g = pytensor.grad(r, x)
        gg = pytensor.grad(g, x)
        return pytensor.function([x], [r, g, gg, pytensor.grad(gg, x)], mode=am.AOT)

    want = [0.95 ** 16, 16 * 0.95 ** 15, 240 * 0.95 ** 14]
    for _ in range(2):  # a miss that stores, then a hit
        got = compile_derivatives()(np.array(0.95))
        np.testing.assert_allclose(got[:3], want, rtol=1e-12)
    assert graph_cache.stats["hits"] >= 1, graph_cache.stats
