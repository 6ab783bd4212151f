"""PyTensor mode ``"AOT"``: graphs run on prebuilt kernels, with per-node fallback.

    import aotkernels.pytensor_mode  # registers linker "aot" and mode "AOT"
    f = pytensor.function([x], y, mode="AOT")

``AOTLinker`` is PyTensor's Python VM with ``perform`` thunks (so nothing is compiled, not
even C), in which every node aotkernels can serve gets an aotkernels thunk instead. Fusion
is switched off: a fused ``Composite`` is a new scalar program per graph, the very thing
that would need compiling, while unfused ``Elemwise`` nodes map one to one onto catalog
kernels. Nodes without a kernel run PyTensor's own ``perform``, so no op is ever refused.

``coverage(fn)`` tells, per node, whether it ran on a prebuilt kernel ("aot"), a JIT kernel
("jit"), or PyTensor's implementation ("pytensor"); ``OpFromGraph`` nodes (softmax and
friends) run their inner graph in mode AOT as well and are reported node by node.

Served on kernels: ``Elemwise`` (every op of the table, ``Cast``, ``Identity``, n-ary
add/mul, inplace variants), ``CAReduce`` (Sum, Prod, Max, Min, All, Any over any axes),
and through ``pytensor_ops``: Argmax, CumOp, Softmax, LogSoftmax, SoftmaxGrad, Join, Alloc,
Dot, Dot22, Gemv, Gemm, AdvancedSubtensor1 and AdvancedIncSubtensor1. Views (DimShuffle,
Reshape, Subtensor, ...) run PyTensor's ``perform``, which is a NumPy view. That is the
first call with an input geometry, one Python call per node; it is recorded, and later
calls with that geometry replay its kernels from C (``aotkernels.plan``), with views as
pointer offsets and only uncovered nodes in Python.
"""

from __future__ import annotations

import ctypes
import sys
import types
from collections import Counter
from contextlib import contextmanager

import numpy as np
import pytensor
import pytensor.scalar as ps
import pytensor.scalar.math as psm
from pytensor.compile.builders import OpFromGraph
from pytensor.compile.mode import Mode, predefined_linkers, predefined_modes
from pytensor.graph.rewriting.db import RewriteDatabaseQuery
from pytensor.link.vm import Loop, VMLinker
from pytensor.raise_op import CheckAndRaise
from pytensor.tensor.basic import AllocEmpty, ScalarFromTensor, TensorFromScalar
from pytensor.tensor.elemwise import CAReduce, DimShuffle, Elemwise
from pytensor.tensor.shape import Reshape, Shape, Shape_i, SpecifyShape
from pytensor.tensor.subtensor import Subtensor

from aotkernels import record
from aotkernels.kernels.reductions import REDUCTIONS
from aotkernels.kernels.scalar_ops import SCALAR_OPS
from aotkernels.library import default_library, log
from aotkernels.plan import build_plan, input_key, record_call, static_vars
from aotkernels.pytensor_ops import server_for
from aotkernels.resolver import prepare, reduce, resolve_reduce
from aotkernels.signature import CODES

#: PyTensor scalar op class -> aotkernels op name (the op table is ``SCALAR_OPS``)
PYTENSOR_SCALAR_OPS: dict[type, str] = {
    ps.Add: "add", ps.Sub: "sub", ps.Mul: "mul", ps.TrueDiv: "true_div", ps.IntDiv: "int_div",
    ps.Mod: "mod", ps.Pow: "pow", ps.Neg: "neg", ps.Abs: "abs", ps.Sign: "sign",
    ps.Sqr: "sqr", ps.Reciprocal: "reciprocal", ps.Maximum: "maximum", ps.Minimum: "minimum",
    ps.Clip: "clip", ps.Exp: "exp", ps.Exp2: "exp2", ps.Expm1: "expm1", ps.Log: "log",
    ps.Log2: "log2", ps.Log10: "log10", ps.Log1p: "log1p", ps.Sqrt: "sqrt",
    psm.Sigmoid: "sigmoid", psm.Softplus: "softplus", ps.Sin: "sin", ps.Cos: "cos",
    ps.Tan: "tan", ps.Sinh: "sinh", ps.Cosh: "cosh", ps.Tanh: "tanh", ps.ArcSinh: "arcsinh",
    ps.ArcTanh: "arctanh", psm.Erf: "erf", psm.Erfc: "erfc", psm.Gamma: "gamma",
    psm.GammaLn: "gammaln", ps.Floor: "floor", ps.Ceil: "ceil",
    ps.RoundHalfToEven: "round_half_to_even", ps.LT: "lt", ps.LE: "le", ps.GT: "gt",
    ps.GE: "ge", ps.EQ: "eq", ps.NEQ: "neq", ps.AND: "and", ps.OR: "or", ps.XOR: "xor",
    ps.Invert: "invert", ps.IsNan: "isnan", ps.IsInf: "isinf", ps.Switch: "switch",
    ps.Identity: "identity", ps.Cast: "cast",
}

#: CAReduce scalar op -> aotkernels reduction (``REDUCTIONS``)
PYTENSOR_REDUCTIONS: dict[type, str] = {
    ps.Add: "sum", ps.Mul: "prod", ps.Maximum: "max", ps.Minimum: "min", ps.AND: "all",
    ps.OR: "any",
}

#: ops PyTensor makes n-ary; aotkernels applies them pairwise into the output buffer
_NARY = {"add", "mul", "maximum", "minimum", "and", "or", "xor"}


class _CallSite:
    """One elementwise call in a node: resolved again only when the operands' layout changes.

    The resolved call (``Prepared``) is kept while shapes, strides and dtypes stay the same,
    and only if the kernel read the caller's arrays as they are: an input that had to be
    copied (partial overlap with ``out``, byte order, alignment) has another geometry.
    """

    __slots__ = ("key", "prepared")

    def __init__(self):
        self.key = self.prepared = None

    def __call__(self, op: str, args: list, out: np.ndarray, dtype=None):
        overlap = [np.may_share_memory(a, out) and not _same_view(a, out) for a in args]
        key = (out.shape, out.strides, *[(a.shape, a.strides, a.dtype) for a in args])
        if key != self.key or any(overlap):
            prepared, used, out = prepare(op, *args, out=out, dtype=dtype)
            same = all(u is a for u, a in zip(used, args))
            self.key, self.prepared, args = (key if same else None), prepared, used
        if self.prepared is not None:
            self.prepared.run(args, out)
        return self.prepared


class ElemwiseThunk:
    """Runs one ``Elemwise`` node on kernels, reusing its output buffer and resolved calls.

    n-ary add/mul/... are applied pairwise into the output buffer, one call site a step.
    """

    lazy = False

    def __init__(self, node, op: str, inputs, outputs):
        self.node, self.op, self.inputs, self.outputs = node, op, inputs, outputs
        self.out_dtype = node.outputs[0].type.dtype
        self.cast_to = self.out_dtype if op == "cast" else None
        self.inplace = node.op.inplace_pattern.get(0)
        self.pairwise = len(node.inputs) > 2 and op in _NARY
        self.sites = [_CallSite() for _ in range(len(node.inputs) - 1 if self.pairwise else 1)]
        self.source = None  # "aot" / "jit" once run
        self.checked = None  # input shapes last found free of runtime broadcasting

    def _output(self, args) -> np.ndarray:
        if self.inplace is not None:
            return args[self.inplace]
        shape = np.broadcast_shapes(*(a.shape for a in args))
        prev = self.outputs[0][0]
        if isinstance(prev, np.ndarray) and prev.shape == shape and prev.dtype == self.out_dtype:
            return prev
        return np.empty(shape, self.out_dtype)

    def __call__(self) -> None:
        args = [np.asarray(c[0]) for c in self.inputs]
        shapes = [a.shape for a in args]
        if shapes != self.checked:
            # PyTensor refuses to broadcast a length-1 dimension its type does not mark
            # broadcastable (every mode raises); NumPy broadcasting would silently do it
            Elemwise._check_runtime_broadcast(self.node, args)
            self.checked = shapes
        out = self._output(args)
        if self.pairwise:
            args = [a if a.dtype == self.out_dtype else record.astype(a, self.out_dtype)
                    for a in args]  # exact n-ary upcast
            if self.inplace is not None and self.inplace >= 2:
                # the first pairwise step writes ``out`` before this input is read
                args[self.inplace] = record.copy(args[self.inplace])
            prepared = self.sites[0](self.op, args[:2], out)
            for site, a in zip(self.sites[1:], args[2:]):
                site(self.op, [out, a], out)
        else:
            prepared = self.sites[0](self.op, args, out, self.cast_to)
        if self.source is None and prepared is not None:
            self.source = prepared.source
        self.outputs[0][0] = out


class ReduceThunk:
    """Runs one ``CAReduce`` node (Sum, Prod, Max, Min, All, Any) on a reduction kernel."""

    lazy = False

    def __init__(self, node, op: str, inputs, outputs):
        self.node, self.op, self.inputs, self.outputs = node, op, inputs, outputs
        self.axis = node.op.axis
        self.source = None

    def __call__(self) -> None:
        x = self.inputs[0][0]
        self.outputs[0][0] = reduce(self.op, x, axis=self.axis)
        if self.source is None:
            with record.paused():  # resolving again fills an accumulator of its own
                self.source = resolve_reduce(self.op, x, axis=self.axis)[1]


def reduce_op(node) -> str | None:
    """The aotkernels reduction serving this CAReduce node, or None to fall back."""
    if not isinstance(node.op, CAReduce) or len(node.outputs) != 1:
        return None
    name = PYTENSOR_REDUCTIONS.get(type(node.op.scalar_op))
    ins, out = node.inputs[0].type.dtype, node.outputs[0].type.dtype
    if name is None or ins not in CODES:
        return None
    acc, res = REDUCTIONS[name].dtypes(ins)
    if out != res or getattr(node.op, "acc_dtype", None) not in (None, acc):
        return None
    return name


class OpThunk:
    """Runs a node through its server in ``pytensor_ops`` (BLAS, join, alloc, softmax, ...)."""

    lazy = False

    def __init__(self, node, served, inputs, outputs):
        self.node, self.inputs, self.outputs = node, inputs, outputs
        self.run, self.where, self.shape_inputs = served
        self.source = None

    def __call__(self) -> None:
        self.outputs[0][0] = self.run(*[c[0] for c in self.inputs])
        if self.source is None:
            self.source = self.where()


class InnerGraphThunk:
    """An ``OpFromGraph`` node (softmax, log-softmax, ... wrappers) whose inner graph runs in
    mode AOT too. PyTensor's ``perform`` would compile it in the default mode (NUMBA):
    10-20 s of numba compilation inside the first call of a softmax classifier.
    """

    lazy = False

    def __init__(self, node, inputs, outputs):
        self.node, self.inputs, self.outputs = node, inputs, outputs
        self.fn = None

    def __call__(self) -> None:
        if self.fn is None:
            op = self.node.op
            kwargs = {k: v for k, v in op.kwargs.items() if k != "mode"}
            self.fn = pytensor.function(op.inner_inputs, op.inner_outputs,
                               mode=AOT.excluding("symbolic_op_recognition"), **kwargs)
            self.fn.trust_input = True
        for cell, value in zip(self.outputs, self.fn(*[c[0] for c in self.inputs])):
            cell[0] = value


def _runs_inner_graph(node) -> bool:
    """An OpFromGraph that would compile its inner graph in the default mode."""
    return (isinstance(node.op, OpFromGraph) and type(node.op).perform is OpFromGraph.perform
            and node.op.kwargs.get("mode") is None)


def _same_view(a: np.ndarray, out: np.ndarray) -> bool:
    """``a`` is exactly ``out`` (in place, safe for elementwise kernels)."""
    return (a.ctypes.data == out.ctypes.data and a.shape == out.shape
            and a.strides == out.strides and a.dtype == out.dtype)


def elemwise_op(node) -> str | None:
    """The aotkernels op serving this node, or None if it must fall back."""
    if not isinstance(node.op, Elemwise) or len(node.outputs) != 1:
        return None
    name = PYTENSOR_SCALAR_OPS.get(type(node.op.scalar_op))
    dtypes = [v.type.dtype for v in (*node.inputs, *node.outputs)]
    if name is None or any(d not in CODES for d in dtypes):
        return None
    ins, out = tuple(dtypes[:-1]), dtypes[-1]
    if name in _NARY and len(ins) > 2:
        ins = (out, out)
    try:
        SCALAR_OPS[name].types(ins, out)
    except TypeError:
        return None
    return name


@contextmanager
def _without_c_backend():
    """``VMLinker.make_vm`` imports the C VM even when it will not use it (use_cloop=False):
    in a fresh compiledir that import compiles PyTensor's lazylinker (~1.3 s of a cold
    start), and the ``MissingGXX`` it imports first loads setuptools (~0.4 s). Stand-ins
    for both modules make it take its own "no CVM" path; modules already loaded (another
    mode used the C backend) are left alone, and the stand-ins are removed afterwards."""
    cvm, exceptions = "pytensor.link.c.cvm", "pytensor.link.c.exceptions"
    stand_ins = {}
    if cvm not in sys.modules:
        stand_ins[cvm] = None  # importing it raises ImportError, which make_vm expects
    if exceptions not in sys.modules:
        stub = types.ModuleType(exceptions)
        stub.MissingGXX = type("MissingGXX", (Exception,), {})
        stand_ins[exceptions] = stub
    sys.modules.update(stand_ins)
    try:
        yield
    finally:
        for name, module in stand_ins.items():
            if sys.modules.get(name, 0) is module:
                del sys.modules[name]


class AOTLinker(VMLinker):
    """The VM linker with aotkernels thunks for every node the library can serve."""

    def __init__(self, allow_gc=None, use_cloop=False, callback=None, callback_input=None,
                 lazy=None, schedule=None, c_thunks=False, allow_partial_eval=None):
        super().__init__(allow_gc=allow_gc, use_cloop=False, callback=callback,
                         callback_input=callback_input, lazy=lazy, schedule=schedule,
                         c_thunks=False, allow_partial_eval=allow_partial_eval)
        self.incompatible_rewrites = ("cxx_only", "fusion", "local_careduce_fusion")
        self.nodes: list = []
        self.thunks: list = []
        self.vm = None

    def make_vm(self, nodes, thunks, *args, **kwargs):
        mine = []
        for node, thunk in zip(nodes, thunks):
            op = elemwise_op(node)
            if op is not None:
                thunk = ElemwiseThunk(node, op, thunk.inputs, thunk.outputs)
            elif (red := reduce_op(node)) is not None:
                thunk = ReduceThunk(node, red, thunk.inputs, thunk.outputs)
            elif (served := server_for(node)) is not None:
                thunk = OpThunk(node, served, thunk.inputs, thunk.outputs)
            elif _runs_inner_graph(node):
                thunk = InnerGraphThunk(node, thunk.inputs, thunk.outputs)
            mine.append(thunk)
        self.nodes, self.thunks = list(nodes), mine
        if RECORDED is not None:
            RECORDED.append(self)
        with _without_c_backend():
            vm = super().make_vm(nodes, mine, *args, **kwargs)
        if type(vm) is Loop and _run_steps() is not None:
            vm.__class__ = PlannedLoop
            vm.init_plans()
        self.vm = vm
        return vm


def _run_steps():
    """The library's ``aotk_run_steps``, or None (no library, or one built before it)."""
    lib = default_library()
    fn = getattr(lib.dll, "aotk_run_steps", None) if lib is not None else None
    if fn is not None and fn.argtypes is None:
        fn.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        fn.restype = ctypes.c_int32
    return fn


class PlannedLoop(Loop):
    """PyTensor's Python loop, plus a plan per input geometry (``aotkernels.plan``): the
    first call with a geometry runs thunk by thunk and is recorded, later ones run the plan.
    A geometry whose plan fails (a value inside changes geometry) is planned at most
    ``MAX_TRIES`` times, then runs thunk by thunk."""

    MAX_PLANS = 8  # per function; each holds its intermediates' buffers
    MAX_TRIES = 3

    def init_plans(self) -> None:
        self._plans: dict = {}  # input geometry -> Plan
        self._tries: dict = {}  # input geometry -> recorded calls
        self._static = static_vars(self.nodes)
        self._cells = [cell for thunk in self.thunks for cell in thunk.outputs]

    def __call__(self):
        key = None if self.time_thunks else input_key(self.input_storage)
        plan = self._plans.get(key)
        if plan is not None:
            for cell in self.pre_call_clear:
                cell[0] = None
            if not plan.run(self):
                del self._plans[key]  # a value left the plan's geometry
            return self.perform_updates()
        return self._record(key)

    def _record(self, key):
        """Run thunk by thunk; record the call and plan its geometry unless tried enough."""
        plans, tries = self._plans, self._tries
        for cell in self._cells:  # a plan leaves values in cells: thunks must not reuse them
            cell[0] = None
        if key is None or tries.get(key, 0) >= self.MAX_TRIES:
            return super().__call__()
        for cell in self.pre_call_clear:
            cell[0] = None
        records = record_call(self, self._static)
        outputs = self.perform_updates()
        if len(plans) >= self.MAX_PLANS:
            plans.clear()
        tries[key] = tries.get(key, 0) + 1
        try:
            plan = build_plan(self, records, self._static, _run_steps(), _KERNEL_THUNKS)
        except Exception as exc:  # a plan is an optimisation: never fail a call over one
            log.warning("aotkernels: no plan for this function (%s: %s); it runs node by "
                        "node", type(exc).__name__, exc)
            plan = None
        if plan is not None:
            plans[key] = plan
        else:
            tries[key] = self.MAX_TRIES  # nothing to replay: never record this geometry again
        return outputs

    @property
    def plans(self) -> dict:
        """input geometry -> Plan"""
        return self._plans


_KERNEL_THUNKS = (ElemwiseThunk, ReduceThunk, OpThunk)

#: Ops whose ``perform`` only reshapes, views or reads shapes (NumPy metadata, no loop over
#: the data): reported as "view", neither a kernel nor a fallback that computes.
VIEW_OPS = (DimShuffle, Reshape, Shape, Shape_i, SpecifyShape, Subtensor, ScalarFromTensor,
            TensorFromScalar, CheckAndRaise, AllocEmpty)


#: when a list, every AOT linker that builds a VM is appended (``python -m aotkernels
#: coverage`` reports on all functions a script compiled)
RECORDED: list | None = None


def coverage(fn) -> list[tuple[str, str]]:
    """``(node, "aot" | "jit" | "view" | "pytensor")`` for each node of a compiled function
    (or of an ``AOTLinker``).

    A served node's source is known once it has run; before that it reads "pending".
    """
    linker = fn if isinstance(fn, AOTLinker) else fn.maker.linker
    if not isinstance(linker, AOTLinker):
        raise TypeError("not a function compiled with mode='AOT'")
    rows = []
    for node, thunk in zip(linker.nodes, linker.thunks):
        if isinstance(thunk, (ElemwiseThunk, ReduceThunk, OpThunk)):
            rows.append((str(node), thunk.source or "pending"))
        elif isinstance(thunk, InnerGraphThunk) and thunk.fn is not None:
            rows += [(f"{node} / {inner}", source) for inner, source in coverage(thunk.fn)]
        elif isinstance(node.op, VIEW_OPS):
            rows.append((str(node), "view"))
        else:
            rows.append((str(node), "pytensor"))
    return rows


def coverage_summary(fn) -> Counter:
    return Counter(source for _, source in coverage(fn))


def plan_summary(fn) -> Counter | None:
    """How the nodes of a function's first plan run (``Plan.kinds``): "kernel" (a step of a
    C segment), "view" (an offset), "static" (a value of shapes alone, computed once), or
    "python"/"view (run)" (a thunk between segments); None before any plan exists."""
    linker = fn if isinstance(fn, AOTLinker) else fn.maker.linker
    plans = getattr(getattr(linker, "vm", None), "plans", None)
    return next(iter(plans.values())).kinds() if plans else None


AOT = Mode(AOTLinker(), RewriteDatabaseQuery(include=["fast_run"]))


def use_as_default() -> None:
    """Make mode AOT the default of every ``pytensor.function`` in this process.

    ``PYTENSOR_FLAGS=mode=AOT`` cannot do it: PyTensor checks the flag against its fixed
    list of mode names when it is imported, before any package can register one.
    """
    pytensor.config.mode = AOT

if "aot" not in predefined_linkers:
    predefined_linkers["aot"] = AOTLinker()
if "AOT" not in predefined_modes:
    predefined_modes["AOT"] = AOT
