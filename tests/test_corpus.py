"""The model corpus (``tests/corpus``): every PyMC model's logp and gradient, compiled as
``pm.sample`` compiles them, in mode AOT against PyTensor's Python implementation of the same
graph. Runs ``tests/corpus/check.py`` in ``build/pymc-venv`` (PyMC 5.28, PyTensor 2.38),
against the session kernel library; kernels outside it are JIT-compiled once into the JIT
cache (``AOT_CACHE_DIR``, build/test-jit-cache by default). Two worker processes: about a
minute with a warm JIT cache on 2 cores, two with a cold one (28 JIT compiles).

The second registry (``tests/corpus/wild.py``, models outside the corpus's distributions
and ops) is checked the same way on its representative subset ``wild.CI`` (about a minute
more); ``python -m tests.corpus.check --registry wild`` checks all of it. So is the third
(``tests/corpus/generated.py``, models drawn from seeds) on ``generated.CI``."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def check(pymc_python, aot_lib, *args) -> tuple[list[dict], subprocess.CompletedProcess]:
    env = dict(os.environ, AOT_LIBRARY_DIR=str(aot_lib.directory))
    res = subprocess.run([pymc_python, "-m", "tests.corpus.check", "--jobs", "2", *args],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    return [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")], res


def test_corpus_matches_python_implementation_in_mode_aot(aot_lib, pymc_python):
    results, res = check(pymc_python, aot_lib)
    assert len(results) >= 20, res.stdout[-3000:] + res.stderr[-3000:]
    bad = [r for r in results if not r["ok"]]
    assert not bad, json.dumps(bad, indent=1)[-6000:]
    assert res.returncode == 0, res.stderr[-3000:]
    for r in results:  # every model ran on kernels, and later calls replayed a plan
        assert r["coverage"]["aot"] > 0 and r["plan"], r
    jit = sum(r["jit_compiled"] for r in results)
    print(f"{len(results)} models match; {jit} kernels JIT-compiled (0 with a warm cache)")


LINALG_NODES = r"""
import collections, json, os
os.environ["AOT_FUSION"] = "0"
from pytensor.compile.mode import Mode
from tests.corpus import MODELS, logp_dlogp
m = MODELS["marginal_gp"]()
count = {}
for label, mode in (("AOT", "AOT"), ("fast_run", Mode(linker="py", optimizer="fast_run"))):
    nodes = logp_dlogp(m, mode).maker.fgraph.toposort()
    c = collections.Counter(type(n.op).__name__ for n in nodes)
    count[label] = {k: c[k] for k in ("Cholesky", "SolveTriangular")}
print(json.dumps(count))
"""


def test_inlined_graphs_are_merged_as_in_fast_run(aot_lib, pymc_python, tmp_path):
    """Mode AOT inlines plain ``OpFromGraph`` nodes (``rewrites.aot_inline_ofg``): before
    PyTensor's merge passes, or marginal GP's logp+gradient computed its Cholesky factor
    and triangular solves twice over (4 and 8 nodes, where fast_run has 2 and 4)."""
    env = dict(os.environ, AOT_LIBRARY_DIR=str(aot_lib.directory), AOT_GRAPH_CACHE="0")
    res = subprocess.run([pymc_python, "-c", LINALG_NODES], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    count = json.loads(res.stdout.strip().splitlines()[-1])
    assert count["AOT"] == count["fast_run"] and count["AOT"]["Cholesky"] > 0, count


LEAN_REWRITING = r"""
import io, json, os, re, sys
os.environ["AOT_FUSION"] = "0"
import pytensor
from aotkernels.pytensor import destroy_check, lean_rewriting
from tests.corpus import MODELS, logp_dlogp
out = {}
for name in sys.argv[1:]:
    texts, taken = [], []
    for on in ("1", "0"):
        os.environ["AOT_LEAN_REWRITING"] = on
        before = dict(lean_rewriting.stats, accepted=destroy_check.stats["accepted"])
        fn = logp_dlogp(MODELS[name](), "AOT")
        now = dict(lean_rewriting.stats, accepted=destroy_check.stats["accepted"])
        taken.append({k: now[k] - before[k] for k in before})
        text = io.StringIO()
        pytensor.dprint(fn.maker.fgraph, print_type=True, file=text)
        texts.append(re.sub(r"0x[0-9A-Fa-f]+", "0x", text.getvalue()))
    out[name] = {"same": texts[0] == texts[1], "on": taken[0], "off": taken[1],
                 "nodes": len(fn.maker.fgraph.apply_nodes)}
print(json.dumps(out))
"""


def test_lean_rewriting_rewrites_models_the_same(aot_lib, pymc_python):
    """Mode AOT rewrites with less work (``lean_rewriting``: shapes read off static types,
    constants' signatures and Op classes' MROs computed once; ``destroy_check``: in-place
    replacements validated locally): the logp+gradient graphs of the four corpus models
    where it saves most are the same, node for node, with the shortcuts off
    (``AOT_LEAN_REWRITING=0``), and the shortcuts were taken (so the comparison is not
    vacuous)."""
    models = ["marginal_gp", "truncated_normal", "mvnormal_lkj", "mixture_of_families"]
    env = dict(os.environ, AOT_LIBRARY_DIR=str(aot_lib.directory), AOT_GRAPH_CACHE="0")
    res = subprocess.run([pymc_python, "-c", LEAN_REWRITING, *models], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    for name in models:
        r = out[name]
        assert r["same"] and r["nodes"] > 20, (name, r)
        assert r["on"]["static_imports"] > 50 and r["on"]["accepted"] > 10, (name, r)
        assert r["off"] == {"static_imports": 0, "folded_shapes": 0, "accepted": 0}, (name, r)
    assert sum(r["on"]["folded_shapes"] for r in out.values()) > 0, out


LEAN_GRAPH_BUILDING = r"""
import hashlib, io, json, os, re, sys, warnings
warnings.filterwarnings("ignore")
os.environ.update(AOT_FUSION="0", AOT_GRAPH_CACHE="0", AOT_MODEL_CACHE="0")
import pytensor
import aotkernels.nutpie
from aotkernels.pytensor import graph_cache, lean_rewriting
from tests.corpus import MODELS
texts, calls, inside = [], {"inside": 0, "outside": 0}, [0]
plain_apply = graph_cache.CachedRewriter.apply
plain_infer = lean_rewriting._PYTENSOR_INFER_STATIC_SHAPE
def apply(self, fgraph, *args, **kwargs):
    inside[0] += 1
    try:
        return plain_apply(self, fgraph, *args, **kwargs)
    finally:
        inside[0] -= 1
        text = io.StringIO()
        pytensor.dprint(fgraph, print_type=True, file=text)
        texts.append(text.getvalue())
def infer(shape):
    calls["inside" if inside[0] else "outside"] += 1
    return plain_infer(shape)
graph_cache.CachedRewriter.apply = apply
lean_rewriting._PYTENSOR_INFER_STATIC_SHAPE = infer
import pytensor.gradient
limits, plain_grad = [], pytensor.gradient.grad
def grad(*args, **kwargs):
    limits.append(pytensor.config.traceback__limit)
    return plain_grad(*args, **kwargs)
pytensor.gradient.grad = grad
out = {"limit": pytensor.config.traceback__limit}
for on in ("0", "1"):
    os.environ["AOT_LEAN_REWRITING"] = on
    texts.clear(); calls.update(inside=0, outside=0)
    aotkernels.nutpie.compile_pymc_model(MODELS[sys.argv[1]]())
    text = re.sub(r"0x[0-9A-Fa-f]+", "0x", "\n".join(texts))
    out[on] = dict(calls, graphs=len(texts), hash=hashlib.sha1(text.encode()).hexdigest())
out["limits"], out["limit_after"] = limits, pytensor.config.traceback__limit
print(json.dumps(out))
"""


def test_compile_pymc_model_builds_its_graphs_with_the_shortcuts(aot_lib, pymc_python):
    """``aotkernels.nutpie.compile_pymc_model`` keeps ``lean_rewriting``'s shortcuts on
    while PyMC and nutpie build the graphs they compile (mvnormal_lkj's gradient through
    batched Cholesky factors and solves asks ``infer_static_shape`` for shapes the types
    already know): PyTensor's own ``infer_static_shape`` runs less often outside the
    rewriter, and every graph mode AOT rewrites (logp+gradient, expand, initial point,
    nutpie's canonicalisation) comes out the same as with the shortcuts off. The gradient
    is built with PyTensor's compile-time stack traces (``traceback__compile_limit``, 0),
    and the user's limit is back afterwards."""
    env = dict(os.environ, AOT_LIBRARY_DIR=str(aot_lib.directory))
    res = subprocess.run([pymc_python, "-c", LEAN_GRAPH_BUILDING, "mvnormal_lkj"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    off, on = out["0"], out["1"]
    assert off["hash"] == on["hash"] and off["graphs"] == on["graphs"] >= 3, out
    assert on["outside"] < off["outside"] and on["inside"] < off["inside"], out
    assert out["limits"] == [0, 0] and out["limit_after"] == out["limit"] > 0, out


@pytest.mark.parametrize("registry", ["wild", "generated"])
def test_registry_subsets_match_python_implementation_in_mode_aot(registry, aot_lib,
                                                                 pymc_python):
    """``wild.CI``: ZeroSumNormal (a Reshape that copies), pm.Data changed by set_data,
    GARCH11's Scan, CustomDist, softmax regression, an explicit MvNormal covariance, a
    change point, an HSGP, MvStudentT on an LKJCorr covariance (SLogDet, MatrixInverse,
    FillDiagonal, PyMC's PosDefMatrix), the Rice family (PyMC's I0e, I1e) and a CustomDist
    written as a Scan with a check inside, an observed Wishart (``ProdWithoutZeros``), a
    MatrixNormal regression (``Dot22Scalar``).
    ``generated.CI``: regressions and hierarchies drawn from seeds (families, links,
    censoring, group effects, ``pm.Data``). Every one matches and keeps no Python item in
    its plan."""
    names = subprocess.run([pymc_python, "-c", f"from tests.corpus.{registry} import CI; "
                            "print(' '.join(CI))"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    results, res = check(pymc_python, aot_lib, "--registry", registry, *names)
    assert [r["name"] for r in results] == names, res.stdout[-3000:] + res.stderr[-3000:]
    bad = [r for r in results if not r["ok"]]
    assert not bad, json.dumps(bad, indent=1)[-6000:]
    for r in results:
        assert r["coverage"]["aot"] > 0 and r["plan"] and r["python_items"] == 0, r
