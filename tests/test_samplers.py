"""Samplers on corpus models (``tests/corpus/samplers.py``, run in build/pymc-venv against
the session library): nutpie on C plans (``aotkernels.nutpie``) and ``pm.sample`` in mode
AOT. Skipped with the reason when nutpie is not installed there."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: short nutpie runs: a small model, one with a static value updated in place and an
#: aliased view, one whose kernels call SciPy's special functions from nutpie's threads
NUTPIE_MODELS = ["eight_schools_noncentered", "dirichlet_categorical", "censored_normal"]


def corpus_names(pymc_python) -> list[str]:
    res = subprocess.run([pymc_python, "-c", "from tests.corpus import MODELS; "
                          "print(' '.join(MODELS))"], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return res.stdout.split()


def run(pymc_python, aot_lib, *args, **env_vars) -> list[dict]:
    return run_with_stderr(pymc_python, aot_lib, *args, **env_vars)[0]


@pytest.fixture(scope="module")
def nutpie_python(pymc_python):  # importing nutpie there takes seconds: once per module
    res = subprocess.run([pymc_python, "-c", "import nutpie"], capture_output=True, text=True)
    if res.returncode:
        pytest.skip(f"nutpie is not installed in {pymc_python} (pip install aotkernels[nutpie])")
    return pymc_python


def test_every_python_free_corpus_model_samples_from_c(nutpie_python, aot_lib):
    """Every corpus model through ``compile_pymc_model``: a model whose mode-AOT logp+grad
    plan has no Python item must come back on C plans, whose logp (with nutpie's error
    codes), gradient and expand values are the mode-AOT functions' bit for bit and PyTensor's
    Python implementation's within 1e-9, and 4 threads at once give the sequential results;
    a model that falls back names a node left to Python."""
    names = corpus_names(nutpie_python)
    results = run(nutpie_python, aot_lib, "plan", *names)
    assert [r["name"] for r in results] == names
    assert all(r["ok"] for r in results), json.dumps([r for r in results if not r["ok"]],
                                                     indent=1)
    for r in results:
        if r["c_plan"]:
            assert r["python_items"] == 0 and not r["differ"] and not r["threads_mismatch"], r
        else:
            assert r["python_items"] > 0 and "runs in Python" in r["why"], r
    assert sum(r["c_plan"] for r in results) >= len(names) - 3, results


def test_nutpie_on_c_plans_draws_as_on_python_callbacks(nutpie_python, aot_lib):
    results = run(nutpie_python, aot_lib, "nutpie", *NUTPIE_MODELS)
    assert all(r["ok"] and r["c_plan"] for r in results), results


def test_a_second_process_compiles_from_the_graph_cache(nutpie_python, aot_lib, tmp_path):
    """PyMC's ``compile`` rebuilds mode AOT as a plain ``Mode``; inside
    ``compile_pymc_model`` its functions (logp+gradient, expand, initial points) still go
    through the graph cache: a second process hits every entry the first stored and
    computes the same initial points and values bit for bit."""
    models = ["radon_varying_slopes", "marginal_gp"]  # marginal_gp: OpFromGraph nodes
    env = dict(AOT_GRAPH_CACHE_DIR=str(tmp_path / "graphs"), AOT_MODEL_CACHE="0")
    first = run(nutpie_python, aot_lib, "cache", *models, **env)
    second = run(nutpie_python, aot_lib, "cache", *models, **env)
    for a, b in zip(first, second):
        assert a["c_plan"] and b["c_plan"], (a, b)
        assert a["stats"]["stored"] >= 3 and a["stats"]["hits"] == 0, a["stats"]
        assert b["stats"]["hits"] >= a["stats"]["stored"] and b["stats"]["misses"] == 0, b
        assert a["points"] == b["points"] and a["values"] == b["values"]


def test_a_second_process_compiles_from_the_model_cache(nutpie_python, aot_lib, tmp_path):
    """A second process of ``compile_pymc_model`` on a model the first compiled hits the
    model cache: PyMC builds no logp graph and no gradient (the first built both), its
    compiles hit the graph cache, and the initial points, values and a short nutpie run's
    draws on a fixed seed are those of the first process and of a third with the model
    cache off (and the garbage collector left alone: ``AOT_GC_FREEZE=0``), bit for bit."""
    # dirichlet_categorical: rewriting renames a constant its graphs share after the
    # compile keyed them (graphs are stored as they were when compiled)
    models = ["eight_schools_noncentered", "marginal_gp", "dirichlet_categorical", "toy:bound"]
    cache = str(tmp_path / "graphs")
    first = run(nutpie_python, aot_lib, "model", *models, AOT_GRAPH_CACHE_DIR=cache)
    second = run(nutpie_python, aot_lib, "model", *models, AOT_GRAPH_CACHE_DIR=cache)
    off = run(nutpie_python, aot_lib, "model", *models, AOT_GRAPH_CACHE_DIR=cache,
              AOT_MODEL_CACHE="0", AOT_GC_FREEZE="0")
    for a, b, c in zip(first, second, off):
        assert a["ok"] and b["ok"] and c["ok"] and a["c_plan"] and b["c_plan"], (a, b, c)
        assert a["built"]["logp"] >= 1 and a["built"]["grad"] >= 1, a
        assert b["built"] == {"logp": 0, "grad": 0}, b
        assert c["built"]["logp"] >= 1 and c["model_cache"]["hits"] == 0, c
        assert b["graph_cache"]["misses"] == 0 and b["graph_cache"]["hits"] >= 3, b
        assert a["frozen"] > 10_000 and c["frozen"] == 0, (a["frozen"], c["frozen"])
    stats = [r["model_cache"] for r in first + second]
    assert [s["stored"] for s in stats] == [1, 2, 3, 4] + [0] * 4, stats
    assert [s["hits"] for s in stats] == [0] * 4 + [1, 2, 3, 4], stats
    for a, b, c in zip(first, second, off):
        for key in ("points", "values", "draws"):
            assert a[key] == b[key] == c[key], (a["name"], key)


def test_the_model_cache_misses_on_what_changes_the_model(nutpie_python, aot_lib, tmp_path):
    """After ``toy`` is stored, each variant changing one thing the functions depend on (an
    observed value, the data's length, a ``pm.Data`` value, an interval transform's bound
    alone) misses, builds its graphs and stores its own entry; ``toy`` itself hits. Each
    variant computes what it computes with the cache off."""
    cache = str(tmp_path / "graphs")
    variants = ["toy:y", "toy:n", "toy:data", "toy:bound"]
    run(nutpie_python, aot_lib, "model", "toy", AOT_GRAPH_CACHE_DIR=cache)
    after = run(nutpie_python, aot_lib, "model", *variants, "toy", AOT_GRAPH_CACHE_DIR=cache)
    off = run(nutpie_python, aot_lib, "model", *variants, AOT_MODEL_CACHE="0",
              AOT_GRAPH_CACHE_DIR=str(tmp_path / "other"))
    for k, (r, o) in enumerate(zip(after, off)):
        assert r["ok"] and r["built"]["logp"] >= 1, r
        assert r["model_cache"] == dict(hits=0, misses=k + 1, stored=k + 1, uncachable=0,
                                        rejected=0), r
        assert r["values"] == o["values"] and r["draws"] == o["draws"], r["name"]
    assert after[-1]["built"] == {"logp": 0, "grad": 0}, after[-1]
    assert after[-1]["model_cache"]["hits"] == 1, after[-1]


@pytest.fixture(scope="module")
def stored_toy(nutpie_python, aot_lib, tmp_path_factory) -> tuple[Path, dict]:
    """A graph cache holding ``toy``'s and ``toy:y``'s entries, and ``toy``'s results."""
    graphs = tmp_path_factory.mktemp("stored") / "graphs"
    (good,) = run(nutpie_python, aot_lib, "model", "toy", AOT_GRAPH_CACHE_DIR=str(graphs))
    run(nutpie_python, aot_lib, "model", "toy:y", AOT_GRAPH_CACHE_DIR=str(graphs))
    return graphs, good


@pytest.mark.parametrize("damage", ["flipped", "truncated", "foreign", "stale", "versions"])
def test_a_bad_model_cache_entry_is_one_warning_and_a_normal_compile(
        nutpie_python, aot_lib, stored_toy, tmp_path, damage):
    """A damaged (a flipped byte, cut short), foreign (another model's entry under this
    key), stale (a class gone since it was written) or other versions' entry: one warning
    naming the entry, a normal compile with the same values and draws, and a good entry
    stored in its place, which the next process hits."""
    stored, good = stored_toy
    shutil.copytree(stored, tmp_path / "graphs")  # copy2: modification times kept
    env = dict(AOT_GRAPH_CACHE_DIR=str(tmp_path / "graphs"))
    (directory,) = (tmp_path / "graphs").iterdir()
    entries = sorted(directory.glob("*.model"), key=lambda p: p.stat().st_mtime)
    target, other = entries
    res = subprocess.run([nutpie_python, "-c", DAMAGE, damage, str(target), str(other)],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    (r,), stderr = run_with_stderr(nutpie_python, aot_lib, "model", "toy", **env)
    warned = [line for line in stderr.splitlines() if "model cache: entry" in line]
    assert len(warned) == 1 and target.name in warned[0], stderr[-2000:]
    assert r["model_cache"]["rejected"] == 1 and r["model_cache"]["stored"] == 1, r
    assert r["built"]["logp"] >= 1 and r["values"] == good["values"], r
    assert r["draws"] == good["draws"]
    (again,) = run(nutpie_python, aot_lib, "model", "toy", **env)
    assert again["model_cache"]["hits"] == 1 and again["values"] == good["values"], again


#: rewrites a model-cache entry (argv: how, the entry, another model's entry)
DAMAGE = r"""
import pickle, sys
from pathlib import Path
from aotkernels import jit
from aotkernels.model_cache import MAGIC
how, path, other = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
key = path.stem
data = path.read_bytes()
if how == "flipped":
    data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
elif how == "truncated":
    data = data[: len(data) // 2]
elif how == "foreign":
    data = other.read_bytes()
else:
    payload = jit.unseal(key, data, MAGIC)
    if how == "stale":  # a class that no longer exists (same length: pickle framing)
        payload = payload.replace(b"pytensor.tensor.type", b"pytensor.tensor.typo", 1)
        assert b"pytensor.tensor.typo" in payload
    else:  # written by another version of this format
        assert b"model_format=1|" in payload
        payload = payload.replace(b"model_format=1|", b"model_format=0|", 1)
    data = jit.seal(key, payload, MAGIC)
path.write_bytes(data)
"""


def run_with_stderr(pymc_python, aot_lib, *args, **env_vars) -> tuple[list[dict], str]:
    env = dict(os.environ, AOT_LIBRARY_DIR=str(aot_lib.directory), OPENBLAS_NUM_THREADS="1",
               **env_vars)
    res = subprocess.run([pymc_python, "-m", "tests.corpus.samplers", *args], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=900)
    results = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert results, res.stdout[-3000:] + res.stderr[-3000:]
    return results, res.stderr


def test_sampler_plans_switch_to_fused_kernels_while_called(nutpie_python, aot_lib,
                                                            tmp_path):
    """With fusion on and a JIT cache without the model's fused kernels, the C plans are
    exported unfused, and the background compile's kernels replace them between calls
    while nutpie (a run paused across the swap) and 4 threads call: the values equal the
    mode-AOT functions' bit for bit before and after, every thread call equals the
    sequential one, and nutpie's draws equal those of the same run wholly on the fused
    plans. A later process exports the plans fused (the first of them may still compile
    what its graph-cache hit orders differently; the last finds everything at export)."""
    jit_cache = tmp_path / "jit"  # the session's JIT cache without fused kernels (other
    shutil.copytree(aot_lib_cache(), jit_cache,  # tests' fused programs may be the model's)
                    ignore=shutil.ignore_patterns("aotk_fz*"))
    env = dict(AOT_FUSION="1", AOT_CACHE_DIR=str(jit_cache),
               AOT_GRAPH_CACHE_DIR=str(tmp_path / "graphs"))
    (swap,) = run(nutpie_python, aot_lib, "swap", "eight_schools_noncentered", **env)
    assert swap["ok"], swap
    assert swap["calls_after_swap"] > 0 and swap["fused"][0]["logp_steps"] < swap[
        "at_export"][0]["logp_steps"], swap
    run(nutpie_python, aot_lib, "fused", "eight_schools_noncentered", **env)
    (fused,) = run(nutpie_python, aot_lib, "fused", "eight_schools_noncentered", **env)
    assert fused["ok"] and fused["pending_at_export"] == [False, False], fused
    assert fused["at_export"]["logp_fused"] == swap["fused"][0]["logp_fused"], fused
    assert fused["after"]["swaps"] == 0, fused


def aot_lib_cache() -> Path:
    """The JIT cache the session library's misses come from (conftest's)."""
    return Path(os.environ.get("AOT_CACHE_DIR", ROOT / "build" / "test-jit-cache"))


def test_pm_sample_in_mode_aot_agrees_with_mode_c(pymc_python, aot_lib):
    (result,) = run(pymc_python, aot_lib, "pm", "eight_schools_noncentered")
    assert result["ok"], result
