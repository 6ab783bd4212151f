"""Compile one signature into an object for *this* machine: the JIT fallback's compiler.

Run as ``python -m aotkernels.generator.host KEY OUT [--target=NAME] [MODULE=FILE]`` by
``aotkernels.jit`` (``MODULE=FILE``: the user catalog declaring the kernel; ``NAME``: the
target whose choice of libm or vector bodies to make, that of the library the caller
loaded, else the best this CPU runs): a separate process, so numba and
LLVM's global options never enter the user's process, and the pipeline is the build's own
(numba at ``NUMBA_OPT=0``, then ``generator.link`` at O3 for the host CPU).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from aotkernels.process import atomic_write


def host_object(key: str, catalogs: list[str] = (), target: str | None = None) -> bytes:
    """``catalogs``: ``module=file`` of the user catalog declaring the kernel, if any."""
    from aotkernels.generator.compile import compile_kernel
    from aotkernels.generator.link import define_libm_ops, host_machine, kernel_module, optimise
    from aotkernels.kernels import import_catalog
    from aotkernels.signature import Signature
    from aotkernels.targets import TARGETS, jit_target

    for spec in catalogs:
        import_catalog(*spec.split("=", 1))

    k = compile_kernel(Signature.from_key(key))
    mod = kernel_module(k.ir, k.inner, k.symbol)
    target = target or jit_target(None)
    define_libm_ops(mod, TARGETS[target].libm_ops if target in TARGETS else ())
    tm = host_machine()
    optimise(mod, tm)
    return tm.emit_object(mod)


def main(argv: list[str]) -> int:
    key, out, *rest = argv
    target = next((a.removeprefix("--target=") for a in rest if a.startswith("--target=")),
                  None)
    catalogs = [a for a in rest if not a.startswith("--target=")]
    atomic_write(Path(out), host_object(key, catalogs, target))
    return 0


if __name__ == "__main__":
    os.environ["NUMBA_OPT"] = "0"  # before numba is imported, as in the build's workers
    sys.exit(main(sys.argv[1:]))
