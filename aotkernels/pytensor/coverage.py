"""Where each node of a mode-AOT function runs, and how its plans run it."""

from __future__ import annotations

from collections import Counter

from pytensor.raise_op import CheckAndRaise
from pytensor.scan.op import Scan
from pytensor.tensor.basic import AllocEmpty, ExtractDiag, ScalarFromTensor, Split, TensorFromScalar
from pytensor.tensor.elemwise import DimShuffle
from pytensor.tensor.shape import Reshape, Shape, Shape_i, SpecifyShape
from pytensor.tensor.subtensor import Subtensor

from aotkernels.pytensor.executor import LOOP
from aotkernels.pytensor.linker import AOTLinker
from aotkernels.pytensor.thunks import InnerGraphThunk, KernelThunk

#: Ops whose ``perform`` only reshapes, views or reads shapes (NumPy metadata, no loop over
#: the data): reported as "view", neither a kernel nor a fallback that computes. An Op with
#: a ``view`` property (``ExtractDiag``) is one only when it is set.
VIEW_OPS = (DimShuffle, Reshape, Shape, Shape_i, SpecifyShape, Subtensor, ScalarFromTensor,
            TensorFromScalar, CheckAndRaise, AllocEmpty, Split, ExtractDiag)


def _linker(fn) -> AOTLinker:
    linker = fn if isinstance(fn, AOTLinker) else fn.maker.linker
    if not isinstance(linker, AOTLinker):
        raise TypeError("not a function compiled with mode='AOT'")
    return linker


def coverage(fn) -> list[tuple[str, str]]:
    """``(node, source)`` for each node of a compiled function (or of an ``AOTLinker``).

    Sources: "aot" (prebuilt kernels), "jit" (a JIT-compiled kernel ran), "numpy" (served,
    but NumPy computed it: no kernel for these operands), "view" (NumPy metadata only),
    "pytensor" (PyTensor's ``perform``), or "pending" for a served node that has not run a
    kernel yet. ``OpFromGraph`` nodes report their inner graph node by node, and so do
    ``Scan`` nodes in mode AOT, plus a "pytensor" row for the loop unless a plan of the
    function runs it as a loop step (``scan_loop``).
    """
    linker = _linker(fn)
    plans = getattr(linker.vm, "plans", None) or {}
    looped = {node for plan in plans.values() for kind, node, *_ in plan.finish
              if kind == LOOP}
    rows = []
    for node, thunk in zip(linker.nodes, linker.thunks):
        if isinstance(thunk, KernelThunk):  # a view op's thunk runs no kernel
            view = isinstance(node.op, VIEW_OPS)
            rows.append((str(node), thunk.source or ("view" if view else "pending")))
        elif isinstance(thunk, InnerGraphThunk) and thunk.fn is not None:
            rows += [(f"{node} / {inner}", source) for inner, source in coverage(thunk.fn)]
        elif isinstance(node.op, Scan) and _aot_inner(node.op) is not None:
            # the inner graph's nodes; the loop itself is Python unless a plan runs it
            rows += [(f"{node} / {inner}", source)
                     for inner, source in coverage(_aot_inner(node.op))]
            if node not in looped:
                rows.append((str(node), "pytensor"))
        elif isinstance(node.op, VIEW_OPS) and getattr(node.op, "view", True):
            rows.append((str(node), "view"))
        else:
            rows.append((str(node), "pytensor"))
    return rows


def _aot_inner(op: Scan):
    """A Scan's inner function if it is compiled and in mode AOT, else None."""
    fn = getattr(op, "_fn", None)  # compiled lazily by Scan: never compile it here
    linker = getattr(getattr(fn, "maker", None), "linker", None)
    return fn if isinstance(linker, AOTLinker) else None


def jit_signatures(fn) -> list[str]:
    """Signature keys of the JIT-compiled kernels a function's nodes ran (inner graphs of
    ``OpFromGraph`` and ``Scan`` nodes too), each once: what the library it loaded lacks."""
    keys = []
    for node, thunk in zip(_linker(fn).nodes, _linker(fn).thunks):
        if isinstance(thunk, KernelThunk):
            keys += thunk.jit_keys
        elif isinstance(thunk, InnerGraphThunk) and thunk.fn is not None:
            keys += jit_signatures(thunk.fn)
        elif isinstance(node.op, Scan) and _aot_inner(node.op) is not None:
            keys += jit_signatures(_aot_inner(node.op))
    return list(dict.fromkeys(keys))


def coverage_summary(fn) -> Counter:
    return Counter(source for _, source in coverage(fn))


def plan_summary(fn) -> Counter | None:
    """How the nodes of a function's first plan run (``Plan.kinds``): "kernel" (a step of a
    C segment), "view" (an offset), "static" (a value of shapes alone, computed once), or
    "python"/"view (run)" (a thunk between segments); None before any plan exists."""
    plans = getattr(_linker(fn).vm, "plans", None)
    return next(iter(plans.values())).kinds() if plans else None
