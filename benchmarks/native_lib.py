"""Build the kernel library the model benchmarks run on, for this CPU's best level.

    python benchmarks/native_lib.py [--out build/native-lib] [--usage DIR_OR_FILE ...]

The test library (``tests/conftest.py``) is built for the baseline target, which keeps
glibc's scalar ``exp``/``log`` and SSE2 loops; NUMBA compiles for the host CPU. A wheel
built with ``--targets x86_64,x86_64_v3,x86_64_v4`` (or ``--targets native``) runs the
host's level. This builds that library from the test library's signatures plus every
unfused signature a JIT cache recorded (``misses.txt``: run the corpus once, e.g.
``tests/corpus/check.py``, with ``AOT_CACHE_DIR`` set); fused kernels are left to each
benchmark's JIT cache, as a first process would have them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, default=ROOT / "build" / "native-lib")
    p.add_argument("--usage", type=Path, nargs="*",
                   default=[ROOT / "build" / "test-jit-cache"],
                   help="misses.txt files, or JIT cache directories to search for them")
    p.add_argument("--jobs", type=int, default=2)
    args = p.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    import conftest

    from aotkernels.build_tools.cli import build
    from aotkernels.generator.catalog import usage_signatures
    from aotkernels.targets import native_targets

    lines: set[str] = set()
    for path in args.usage:
        if not path.exists():  # a fresh checkout has no JIT cache yet
            print(f"no usage at {path}; skipped", flush=True)
            continue
        for f in (sorted(path.rglob("misses.txt")) if path.is_dir() else [path]):
            lines.update(line for line in f.read_text().splitlines()
                         if line.strip() and not line.startswith("fused/"))
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as usage:
        usage.write("\n".join(sorted(lines)) + "\n")
        usage.flush()
        sigs = set(conftest.session_signatures()) | set(usage_signatures(Path(usage.name)))
    targets = list(native_targets())
    print(f"{len(sigs)} kernels for {targets} -> {args.out}", flush=True)
    build(sorted(sigs), targets, args.out, wheel=False, jobs=args.jobs,
          cache_dir=ROOT / "build" / "ir-cache")


if __name__ == "__main__":
    main()
