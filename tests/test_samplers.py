"""Samplers on corpus models (``tests/corpus/samplers.py``, run in build/pymc-venv against
the session library): nutpie on C plans (``aotkernels.nutpie``) and ``pm.sample`` in mode
AOT. Skipped with the reason when nutpie is not installed there."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: small models whose plans run wholly from C (and one that keeps Python nodes, if any)
PLAN_MODELS = ["eight_schools_noncentered", "logistic_regression", "radon_varying_slopes"]


def run(pymc_python, aot_lib, *args) -> list[dict]:
    env = dict(os.environ, AOT_LIBRARY_DIR=str(aot_lib.directory), OPENBLAS_NUM_THREADS="1")
    res = subprocess.run([pymc_python, "-m", "tests.corpus.samplers", *args], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=900)
    results = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert results, res.stdout[-3000:] + res.stderr[-3000:]
    return results


@pytest.fixture
def nutpie_python(pymc_python):
    res = subprocess.run([pymc_python, "-c", "import nutpie"], capture_output=True, text=True)
    if res.returncode:
        pytest.skip(f"nutpie is not installed in {pymc_python} (pip install aotkernels[nutpie])")
    return pymc_python


def test_c_plans_match_python_and_concurrent_calls_match_sequential(nutpie_python, aot_lib):
    results = run(nutpie_python, aot_lib, "plan", *PLAN_MODELS)
    assert all(r["ok"] for r in results), json.dumps(results, indent=1)
    assert sum(r["c_plan"] for r in results) >= 1, results  # the path is exercised
    for r in results:
        if not r["c_plan"]:
            assert "runs in Python" in r["why"] or "made in Python" in r["why"], r


def test_nutpie_on_c_plans_draws_as_on_python_callbacks(nutpie_python, aot_lib):
    (result,) = run(nutpie_python, aot_lib, "nutpie", "eight_schools_noncentered")
    assert result["ok"] and result["c_plan"], result


def test_pm_sample_in_mode_aot_agrees_with_mode_c(pymc_python, aot_lib):
    (result,) = run(pymc_python, aot_lib, "pm", "eight_schools_noncentered")
    assert result["ok"], result
