"""Fused elementwise kernels (``kernels/fused.py``): the library's, or compiled later.

A fused kernel is named by its program, which a plan makes at run time
(``aotkernels/pytensor/fusion.py``), so it is asked for without waiting: ``request`` takes
the kernels the library ships (``build-kernels --from-usage`` bakes the programs a
workload used) at once, and hands the others to the JIT's background compiler, which loads
them from the cache or compiles them all in one child process (``jit.functions_later``).
"""

from __future__ import annotations

import ctypes

from aotkernels import jit
from aotkernels.kernels.fused import Program, register
from aotkernels.library import library_for


def request(programs: list[Program]):
    """``(ready, future)``: per program the address of the kernel the library ships, or
    None; and a future of ctypes functions for the programs that are None (None if every
    one is shipped)."""
    lib = library_for("fused")
    ready, missing = [], []
    for program in programs:
        sig = register(program)
        fn = None
        if lib is not None:
            fn = lib.find("fused", sig.op, sig.in_dtypes, sig.out_dtype, sig.ndim,
                          pads=False)[1]
        ready.append(None if fn is None else ctypes.cast(fn, ctypes.c_void_p).value)
        if fn is None:
            missing.append(sig)
    return ready, (jit.functions_later(missing) if missing else None)


def cached(programs: list[Program]) -> bool:
    """Whether the kernels of ``programs`` (ones the library lacks: ``request``'s None) are
    all in the JIT cache, so that ``request``'s future is a load, not a compile."""
    return jit.in_cache([register(program) for program in programs])
