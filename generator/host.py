"""Compile signatures into objects for *this* machine: the JIT fallback's compiler.

Run as ``python -m aotkernels.generator.host KEY OUT [KEY OUT ...] [MODULE=FILE ...]`` by
``aotkernels.jit`` (``MODULE=FILE``: a user catalog declaring kernels; the programs of fused
kernels and scalar loops come as data, ``family<TAB>JSON`` a line, in ``AOT_PROGRAMS``;
``AOT_JIT_TARGET``: the
target whose choice of libm or vector bodies to make, that of the library the caller
loaded, else the best this CPU runs): a separate process, so numba and LLVM's global
options never enter the user's process, and the pipeline is the build's own (numba at
``NUMBA_OPT=0``, then ``generator.link`` at O3 for the host CPU). Several kernels in one
child pay numba's import once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from aotkernels.process import atomic_write


def host_object(key: str, target: str | None = None) -> bytes:
    """The object of one signature whose family (and fused program) this process knows."""
    from aotkernels.generator.compile import compile_kernel
    from aotkernels.generator.link import define_libm_ops, host_machine, kernel_module, optimise
    from aotkernels.signature import Signature
    from aotkernels.targets import TARGETS, jit_target

    k = compile_kernel(Signature.from_key(key))
    mod = kernel_module(k.ir, k.inner, k.symbol)
    target = target or jit_target(None)
    define_libm_ops(mod, TARGETS[target].libm_ops if target in TARGETS else ())
    tm = host_machine()
    optimise(mod, tm)
    return tm.emit_object(mod)


def main(argv: list[str]) -> int:
    from aotkernels.kernels import import_catalog, register_program

    for spec in (a for a in argv if "=" in a):  # keys never hold "="
        import_catalog(*spec.split("=", 1))
    for line in os.environ.get("AOT_PROGRAMS", "").splitlines():
        register_program(*line.split("\t", 1))
    target = os.environ.get("AOT_JIT_TARGET") or None
    pairs = [a for a in argv if "=" not in a]
    for key, out in zip(pairs[::2], pairs[1::2]):
        atomic_write(Path(out), host_object(key, target))
    return 0


if __name__ == "__main__":
    os.environ["NUMBA_OPT"] = "0"  # before numba is imported, as in the build's workers
    sys.exit(main(sys.argv[1:]))
