"""Compile one signature into an object for *this* machine: the JIT fallback's compiler.

Run as ``python -m aotkernels.generator.host KEY OUT`` by ``aotkernels.jit``: a separate
process, so numba and LLVM's global options never enter the user's process, and the
pipeline is the build's own (numba at ``NUMBA_OPT=0``, then ``generator.link`` at O3 for
the host CPU).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from aotkernels.process import atomic_write


def host_object(key: str) -> bytes:
    from aotkernels.generator.compile import compile_kernel
    from aotkernels.generator.link import host_machine, kernel_module, optimise
    from aotkernels.signature import Signature

    k = compile_kernel(Signature.from_key(key))
    mod = kernel_module(k.ir, k.inner, k.symbol)
    tm = host_machine()
    optimise(mod, tm)
    return tm.emit_object(mod)


def main(argv: list[str]) -> int:
    key, out = argv
    atomic_write(Path(out), host_object(key))
    return 0


if __name__ == "__main__":
    os.environ["NUMBA_OPT"] = "0"  # before numba is imported, as in the build's workers
    sys.exit(main(sys.argv[1:]))
