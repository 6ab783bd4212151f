"""Compile one signature into an object for *this* machine: the JIT fallback's compiler.

Run as ``python -m aotkernels.generator.host KEY OUT [MODULE=FILE]`` by ``aotkernels.jit``
(``MODULE=FILE``: the user catalog declaring the kernel): a separate process, so numba and
LLVM's global options never enter the user's process, and the pipeline is the build's own
(numba at ``NUMBA_OPT=0``, then ``generator.link`` at O3 for the host CPU).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from aotkernels.process import atomic_write


def host_object(key: str, catalogs: list[str] = ()) -> bytes:
    """``catalogs``: ``module=file`` of the user catalog declaring the kernel, if any."""
    from aotkernels.generator.compile import compile_kernel
    from aotkernels.generator.link import host_machine, kernel_module, optimise
    from aotkernels.kernels import import_catalog
    from aotkernels.signature import Signature

    for spec in catalogs:
        import_catalog(*spec.split("=", 1))

    k = compile_kernel(Signature.from_key(key))
    mod = kernel_module(k.ir, k.inner, k.symbol)
    tm = host_machine()
    optimise(mod, tm)
    return tm.emit_object(mod)


def main(argv: list[str]) -> int:
    key, out, *catalogs = argv
    atomic_write(Path(out), host_object(key, catalogs))
    return 0


if __name__ == "__main__":
    os.environ["NUMBA_OPT"] = "0"  # before numba is imported, as in the build's workers
    sys.exit(main(sys.argv[1:]))
