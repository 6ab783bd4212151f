"""The axis, blas, copy, index and lapack families under hostile operands, in a child
interpreter (a crash is a negative return code naming the case, not a dead test runner)."""

from __future__ import annotations

from pathlib import Path

from child import run_cases

HERE = Path(__file__).resolve().parent


def test_hostile_operands_for_the_other_families(aot_lib, tmp_path):
    report = run_cases(HERE / "hostile_families.py", tmp_path,
                       AOT_LIBRARY_DIR=str(aot_lib.directory), AOT_DISABLE_JIT="1")
    assert report["total"] >= 2000 and report["counts"]["correct"] > 500
