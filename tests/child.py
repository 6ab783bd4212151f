"""Run a case script in a child interpreter, so a crash fails one test with the case that
did it instead of killing the test runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def run_cases(script: Path, cwd: Path, **env: str) -> dict:
    """Run ``script LOG`` with ``env`` added; its report (last stdout line, JSON)."""
    log = cwd / "cases.log"
    res = subprocess.run([sys.executable, str(script), str(log)], env=dict(os.environ, **env),
                         capture_output=True, text=True, cwd=cwd)
    last = log.read_text().splitlines()[-1:] if log.exists() else ["(no case started)"]
    assert res.returncode >= 0, (f"the interpreter was killed by signal {-res.returncode} "
                                 f"during: {last[0]}\n{res.stderr[-3000:]}")
    assert res.returncode == 0, f"during {last[0]}:\n{res.stderr[-6000:]}"
    report = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"hostile cases tried: {report['total']} {report['counts']}")
    return report
