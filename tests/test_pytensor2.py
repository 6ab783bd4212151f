"""Mode AOT on the PyTensor line PyMC uses (2.38.x): the mode-AOT suite, its plans, its
``Function``, its lean rewriting and the generated graphs (tests/test_graphs.py) again, in
a second environment (``build/pymc-venv``, made by ``make setup``), against the same kernel
library."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: PyTensor's solver Ops in plans (the solver kernels themselves need no second run)
LAPACK_TESTS = [f"tests/test_lapack.py::{name}" for name in (
    "test_gaussian_logp_and_gradient_replay_without_python",
    "test_not_positive_definite_is_nan_or_raises_on_every_call",
    "test_singular_triangle_is_nan_in_plans", "test_solves_replay_without_python",
    "test_singular_solve_is_nan_in_plans", "test_batched_solvers_replay_without_python")]
#: Scan's loop in C: PyTensor 2.38's Scan (the line PyMC users run) in a few cases
SCAN_TESTS = [f"tests/test_scan_loop.py::{name}" for name in (
    "test_generated_scans_match_pythons_and_run_as_loops[0]",
    "test_generated_scans_match_pythons_and_run_as_loops[13]",
    "test_kernel_errors_inside_a_loop_raise_as_on_the_first_call",
    "test_a_recurrence_with_a_static_initial_state_and_its_gradient",
    "test_a_scan_logp_exports_to_c_and_threads_agree")]


def test_mode_aot_suite_passes_on_pytensor_2(aot_lib, pymc_python):
    version = subprocess.run([pymc_python, "-c", "import pytensor; print(pytensor.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version.startswith("2.38"), version
    env = dict(os.environ, AOT_LIBRARY_DIR=str(aot_lib.directory))
    res = subprocess.run([pymc_python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/test_pytensor_mode.py", "tests/test_plan.py",
                          "tests/test_function.py", "tests/test_lean_rewriting.py",
                          "tests/test_graphs.py", "tests/test_type_rules.py", *LAPACK_TESTS,
                          *SCAN_TESTS],
                         cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stdout[-5000:] + res.stderr[-2000:]
    assert " passed" in res.stdout and "skipped" not in res.stdout, res.stdout[-2000:]
