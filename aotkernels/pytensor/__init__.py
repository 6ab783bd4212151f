"""PyTensor mode ``"AOT"``: graphs run on prebuilt kernels, with per-node fallback.

    import aotkernels.pytensor as am  # registers linker "aot" and mode "AOT"
    f = pytensor.function([x], y, mode="AOT")
    am.coverage(f)                    # per node: "aot", "jit", "view", "pytensor", ...
    am.use_as_default()               # mode AOT for every pytensor.function

Where each job lives: ``linker`` (the linker and the mode), ``graph_cache`` (rewritten
graphs kept across processes: a second process skips PyTensor's rewriting), ``servers``
(which thunk runs each Op class), ``thunks`` (the thunks), ``loop`` (the VM loop: record a
call, keep a plan per input geometry), ``planner`` (a plan from a recorded call),
``executor`` (run a plan), ``function`` (a ``Function`` whose calls go straight to the
plan), ``fusion`` (runs of elementwise steps as fused kernels, compiled in the background
and swapped into plans), ``coverage`` (reports). Served on kernels:
``Elemwise`` (every op of the table, ``Cast``, ``Identity``, n-ary add/mul, inplace
variants), ``CAReduce`` (Sum, Prod, Max, Min, All, Any over any axes), Argmax, CumOp,
Softmax, LogSoftmax, SoftmaxGrad, Join, Alloc, Eye, Dot, Dot22, Dot22Scalar, Gemv, Gemm,
AdvancedSubtensor1, AdvancedIncSubtensor1, and AdvancedSubtensor / AdvancedIncSubtensor with
one index vector per dimension; ``OpFromGraph`` inner graphs run in mode AOT. Views
(DimShuffle, Reshape, Subtensor, ...) run PyTensor's ``perform``, a NumPy view; every other
Op runs its ``perform``, so no op is ever refused.
"""

from __future__ import annotations

import pytensor
from pytensor.compile.mode import predefined_linkers, predefined_modes

from aotkernels.pytensor import linker
from aotkernels.pytensor.coverage import (
    VIEW_OPS,
    coverage,
    coverage_summary,
    jit_signatures,
    plan_summary,
)
from aotkernels.pytensor.function import AOTFunction
from aotkernels.pytensor.linker import AOT, AOTLinker

__all__ = ["AOT", "AOTFunction", "AOTLinker", "VIEW_OPS", "coverage", "coverage_summary",
           "jit_signatures", "plan_summary", "record_linkers", "use_as_default",
           "wait_for_fusion"]


def use_as_default() -> None:
    """Make mode AOT the default of every ``pytensor.function`` in this process.

    ``PYTENSOR_FLAGS=mode=AOT`` cannot do it: PyTensor checks the flag against its fixed
    list of mode names when it is imported, before any package can register one.
    """
    pytensor.config.mode = AOT


def wait_for_fusion(fn, timeout: float | None = None) -> int:
    """Wait (up to ``timeout`` seconds) for the fused kernels of ``fn``'s plans and swap them
    in; returns how many runs are fused. Calls do this by themselves, without waiting, once
    the kernels are ready: this is for benchmarks and tests."""
    vm = getattr(fn, "vm", None)
    plans = getattr(vm, "plans", {})
    return sum(plan.fuse(timeout) for plan in plans.values())


def record_linkers(on: bool) -> list | None:
    """Start (``on``) or stop collecting every AOT linker that builds a VM; returns what
    was collected (``python -m aotkernels coverage`` reports on all of a script's
    functions)."""
    collected, linker.RECORDED = linker.RECORDED, ([] if on else None)
    return collected


if "aot" not in predefined_linkers:
    predefined_linkers["aot"] = AOTLinker()
if "AOT" not in predefined_modes:
    predefined_modes["AOT"] = AOT
