"""Build "today" for issue 17: the kernels as they were before ``kernels/vecmath.py``.

    python benchmarks/today_lib.py [--out build/today-lib] [--ops exp,log,...]

The same kernel set as ``bench_levels.py`` (its ops, float64/float32, ranks 1-2, x86_64, v3,
v4) with every target's ``Target.libm_ops`` set to every vector-math op in both dtypes, so
each kernel's body is the libm one (``vecmath.LIBM``: glibc's scalar functions in the loop,
the differences from before being sigmoid's stable form and log1p and softplus, now over
glibc's ``log``, so for those two numba's column, a loop over glibc's ``log1p``, or this
script run at an earlier commit is today): the same templates, the same
loop, entry point and ctypes call, the target's own instructions. The choice is made at
link time, so this is a relink of the IR cache (its objects are keyed apart, as the
targets' definitions enter the key). ``bench_paired.py --today build/today-lib`` times
these kernels beside the library's in the same rounds, which is what "no op slower than
today" compares; numba ``@njit`` (compiled for the build host, with its own loop and call)
stays the peer.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from bench_elemwise import ROOT, TRANSCENDENTAL
from bench_levels import DTYPES, ELEMWISE_OPS, LEVELS, REDUCE_OPS


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, default=ROOT / "build" / "today-lib")
    p.add_argument("--ops", default=",".join(ELEMWISE_OPS + REDUCE_OPS))
    p.add_argument("--jobs", default="2")
    args = p.parse_args()
    from aotkernels.targets import TARGETS
    from build_tools import cli

    every = tuple(TRANSCENDENTAL)
    for name in LEVELS:  # the table itself: the linker and the object-cache key read it
        TARGETS[name] = dataclasses.replace(TARGETS[name], libm_ops=every)
    sys.exit(cli.main(["--no-wheel", "--quiet", "--targets", ",".join(LEVELS), "--ops",
                       args.ops, "--dtypes", ",".join(DTYPES), "--max-ndim", "2",
                       "--jobs", args.jobs, "--out", str(args.out.resolve())]))


if __name__ == "__main__":
    main()
