"""The axis, blas and copy families under hostile operands, in a child interpreter (a crash
is a negative return code naming the case, not a dead test runner)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_hostile_operands_for_the_other_families(aot_lib, tmp_path):
    log = tmp_path / "cases.log"
    env = dict(os.environ, AOT_LIBRARY_DIR=str(aot_lib.directory), AOT_DISABLE_JIT="1")
    res = subprocess.run([sys.executable, str(HERE / "hostile_families.py"), str(log)],
                         env=env, capture_output=True, text=True, cwd=tmp_path)
    last = log.read_text().splitlines()[-1:] if log.exists() else ["(no case started)"]
    assert res.returncode >= 0, (f"the interpreter was killed by signal {-res.returncode} "
                                 f"during: {last[0]}\n{res.stderr[-3000:]}")
    assert res.returncode == 0, f"during {last[0]}:\n{res.stderr[-6000:]}"
    report = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"hostile cases tried: {report['total']} {report['counts']}")
    assert report["total"] >= 2000 and report["counts"]["correct"] > 500
