"""Which thunk runs a node: one registration per Op class, like PyTensor's ``numba_funcify``.

``serve(op, node, thunk)`` is a ``singledispatch`` on the Op's class (subclasses included):
it returns a thunk running the node on aotkernels, or PyTensor's own ``thunk`` (its
``perform``) when the node's types are outside what the kernels cover, which is also the
default for every Op class nobody registered. A reader finds each Op's server here.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import singledispatch

import numpy as np
import pytensor.scalar as ps
import pytensor.scalar.math as psm
from pytensor.compile.builders import OpFromGraph
from pytensor.compile.ops import DeepCopyOp
from pytensor.graph.basic import Constant
from pytensor.raise_op import CheckAndRaise
from pytensor.scalar.loop import ScalarLoop
from pytensor.tensor.basic import Alloc, AllocDiag, ExtractDiag, Eye, Join, MakeVector
from pytensor.tensor.blas import BatchedDot, Dot22, Dot22Scalar, Gemm, Gemv, Ger
from pytensor.tensor.blockwise import Blockwise
from pytensor.tensor.elemwise import CAReduce, Elemwise
from pytensor.tensor.extra_ops import CumOp, FillDiagonal
from pytensor.tensor.math import Argmax, Dot, MulWithoutZeros
from pytensor.tensor.sort import ArgSortOp, SortOp
from pytensor.tensor.special import LogSoftmax, Softmax
from pytensor.tensor.subtensor import (
    AdvancedIncSubtensor,
    AdvancedIncSubtensor1,
    AdvancedSubtensor,
    AdvancedSubtensor1,
    IncSubtensor,
    Subtensor,
)
from pytensor.tensor.type import TensorType
from pytensor.tensor.utils import _parse_gufunc_signature

try:  # PyTensor 3.x; 2.x has them in slinalg only (3.x warns there)
    from pytensor.tensor.linalg import (
        BlockDiagonal,
        Cholesky,
        CholeskySolve,
        LUFactor,
        PivotToPermutations,
        Solve,
        SolveTriangular,
    )
except ImportError:
    from pytensor.tensor.slinalg import (
        BlockDiagonal,
        Cholesky,
        CholeskySolve,
        LUFactor,
        PivotToPermutations,
        Solve,
        SolveTriangular,
    )

try:  # PyTensor 3.x; 2.x has them in nlinalg only
    from pytensor.tensor.linalg import Det, MatrixInverse, SLogDet
except ImportError:
    from pytensor.tensor.nlinalg import Det, MatrixInverse, SLogDet

try:  # PyTensor 2.x; 3.x spells the gradient out as elementwise ops and a sum
    from pytensor.tensor.special import SoftmaxGrad
except ImportError:
    SoftmaxGrad = None

import aotkernels as ak
from aotkernels import record
from aotkernels.assemble import copy_into
from aotkernels.families.axis import along
from aotkernels.families.index import INDEX_INPUTS
from aotkernels.families.lapack import STRUCTURES
from aotkernels.families.loop import LoopCall, max_operands
from aotkernels.kernels.axis_ops import AXIS_OPS
from aotkernels.kernels.blas_ops import BLAS_DTYPES
from aotkernels.kernels.index_ops import INDEX_OPS
from aotkernels.kernels.lapack_ops import LAPACK_DTYPES
from aotkernels.kernels.loop import Loop
from aotkernels.kernels.reductions import REDUCTIONS
from aotkernels.kernels.scalar_ops import SCALAR_OPS, kind
from aotkernels.pytensor import points
from aotkernels.pytensor.thunks import (
    CheckThunk,
    CompositeThunk,
    ElemwiseThunk,
    InnerGraphThunk,
    KernelThunk,
)
from aotkernels.signature import CODES, MAX_NDIM

#: PyTensor scalar op class -> aotkernels op name (the op table is ``SCALAR_OPS``)
PYTENSOR_SCALAR_OPS: dict[type, str] = {
    ps.Add: "add", ps.Sub: "sub", ps.Mul: "mul", ps.TrueDiv: "true_div", ps.IntDiv: "int_div",
    ps.Mod: "mod", ps.Pow: "pow", ps.Neg: "neg", ps.Abs: "abs", ps.Sign: "sign",
    ps.Sqr: "sqr", ps.Reciprocal: "reciprocal", ps.Maximum: "maximum", ps.Minimum: "minimum",
    ps.Clip: "clip", ps.Exp: "exp", ps.Exp2: "exp2", ps.Expm1: "expm1", ps.Log: "log",
    ps.Log2: "log2", ps.Log10: "log10", ps.Log1p: "log1p", ps.Sqrt: "sqrt",
    psm.Sigmoid: "sigmoid", psm.Softplus: "softplus", ps.Sin: "sin", ps.Cos: "cos",
    ps.Tan: "tan", ps.Sinh: "sinh", ps.Cosh: "cosh", ps.Tanh: "tanh", ps.ArcSinh: "arcsinh",
    ps.ArcTanh: "arctanh", ps.ArcSin: "arcsin", ps.ArcCos: "arccos", ps.ArcTan: "arctan",
    ps.ArcCosh: "arccosh", ps.ArcTan2: "arctan2", psm.Erf: "erf", psm.Erfc: "erfc",
    psm.Gamma: "gamma", psm.GammaLn: "gammaln", ps.Floor: "floor", ps.Ceil: "ceil",
    ps.RoundHalfToEven: "round_half_to_even",
    ps.RoundHalfAwayFromZero: "round_half_away_from_zero", ps.Trunc: "trunc",
    ps.Deg2Rad: "deg2rad", ps.Rad2Deg: "rad2deg", ps.LT: "lt", ps.LE: "le", ps.GT: "gt",
    ps.GE: "ge", ps.EQ: "eq", ps.NEQ: "neq", ps.AND: "and", ps.OR: "or", ps.XOR: "xor",
    ps.Invert: "invert", ps.IsNan: "isnan", ps.IsInf: "isinf", ps.Switch: "switch",
    ps.Identity: "identity", ps.Cast: "cast", psm.TriGamma: "tri_gamma",
    psm.Log1mexp: "log1mexp",
}
# ops SciPy computes (kernels call ``scipy.special.cython_special``: ``aotkernels.special``)
PYTENSOR_SCALAR_OPS.update({getattr(psm, cls): name for cls, name in (
    ("Psi", "psi"), ("Erfcx", "erfcx"), ("Erfinv", "erfinv"), ("Erfcinv", "erfcinv"),
    ("GammaInc", "gammainc"), ("GammaIncC", "gammaincc"), ("GammaIncInv", "gammaincinv"),
    ("GammaIncCInv", "gammainccinv"), ("J0", "j0"), ("J1", "j1"), ("Jv", "jv"), ("I0", "i0"),
    ("I1", "i1"), ("Iv", "iv"), ("Ive", "ive"), ("Kve", "kve"), ("Owens_t", "owens_t"),
    ("BetaInc", "betainc"), ("BetaIncInv", "betaincinv"), ("Hyp2F1", "hyp2f1"))
    if hasattr(psm, cls)})
try:  # PyTensor 2.x; 3.x writes xlogy with switch, mul and log
    from pytensor.tensor.xlogx import XlogX, XlogY0

    PYTENSOR_SCALAR_OPS.update({XlogX: "xlogx", XlogY0: "xlogy0"})
except ImportError:
    pass

#: ``scipy.special`` functions the table computes as SciPy does (``SCIPY_FUNCTIONS``) -> op
SCIPY_OPS = {op.scipy: name for name, op in SCALAR_OPS.items() if op.scipy}


def scalar_op_name(op) -> str | None:
    """The op table's name for a scalar op: by its class (``PYTENSOR_SCALAR_OPS``), else by
    the SciPy function its ``nfunc_spec`` names, which is what ``Elemwise.perform`` calls
    for it: PyMC's ``I0e`` and ``I1e`` (the Rice distribution), or a user's op written the
    same way."""
    name = PYTENSOR_SCALAR_OPS.get(type(op))
    if name is not None:
        return name
    spec = getattr(op, "nfunc_spec", None)
    if not (isinstance(spec, tuple) and len(spec) == 3 and isinstance(spec[0], str)
            and spec[0].startswith("scipy.special.") and spec[2] == 1):
        return None
    name = SCIPY_OPS.get(spec[0].removeprefix("scipy.special."))
    return name if name is not None and SCALAR_OPS[name].nin == spec[1] == op.nin else None


#: CAReduce scalar op -> aotkernels reduction (``REDUCTIONS``)
PYTENSOR_REDUCTIONS: dict[type, str] = {
    ps.Add: "sum", ps.Mul: "prod", ps.Maximum: "max", ps.Minimum: "min", ps.AND: "all",
    ps.OR: "any",
}

#: ops PyTensor makes n-ary; aotkernels applies them pairwise into the output buffer
NARY = {"add", "mul", "maximum", "minimum", "and", "or", "xor"}


@singledispatch
def serve(op, node, thunk):
    """The thunk that runs ``node`` (whose Op is ``op``): PyTensor's own unless registered
    (here by class, or in ``BY_NAME`` for an Op class of a package PyTensor does not import)."""
    server = BY_NAME.get(f"{type(op).__module__}.{type(op).__qualname__}")
    return thunk if server is None else server(op, node, thunk)


def _dtypes(node) -> list[str]:
    return [v.type.dtype for v in (*node.inputs, *node.outputs)]


def _kernel(node, thunk, run, shape_inputs: tuple[int, ...] = ()) -> KernelThunk:
    return KernelThunk(node, run, thunk.inputs, thunk.outputs, shape_inputs)


@serve.register(Elemwise)
def _elemwise(op, node, thunk):
    if isinstance(op.scalar_op, ps.Composite):
        return _composite(op, node, thunk)
    if isinstance(op.scalar_op, ScalarLoop):
        return _scalar_loop(op, node, thunk)
    if isinstance(op.scalar_op, ps.Second):
        return _second(op, node, thunk)
    name = scalar_op_name(op.scalar_op)
    dtypes = _dtypes(node)
    if len(node.outputs) != 1 or name is None or any(d not in CODES for d in dtypes):
        return thunk
    ins, out = tuple(dtypes[:-1]), dtypes[-1]
    pairwise = name in NARY and len(ins) > 2
    try:
        SCALAR_OPS[name].types((out, out) if pairwise else ins, out)
    except TypeError:
        return thunk
    return ElemwiseThunk(node, name, pairwise, thunk.inputs, thunk.outputs)


def _second(op, node, thunk):
    """``fill(x, y)``: ``y`` broadcast to the shape both broadcast to (PyTensor 2.38 leaves
    some in gradients), after PyTensor's check of runtime broadcasting, as the ``alloc``
    kernels write it. An in-place one stays ``perform``'s."""
    dtypes = _dtypes(node)
    if len(node.inputs) != 2 or op.inplace_pattern or any(d not in CODES for d in dtypes):
        return thunk
    dtype, checked = dtypes[-1], [None]

    def run(x, y):
        shapes = [np.shape(x), np.shape(y)]
        if shapes != checked[0]:  # PyTensor refuses undeclared runtime broadcasting
            Elemwise._check_runtime_broadcast(node, [np.asarray(x), np.asarray(y)])
            checked[0] = shapes
        return ak.alloc(y, np.broadcast_shapes(*shapes), dtype)
    return _kernel(node, thunk, run)


def _composite(op, node, thunk):
    """The program of a ``Composite``'s inner graph for ``CompositeThunk``, or PyTensor's
    thunk if an inner node is not an op of the table with the types PyTensor gave it."""
    fgraph = op.scalar_op.fgraph
    where = {v: ("in", k) for k, v in enumerate(fgraph.inputs)}
    first_out = {}
    for k, v in enumerate(fgraph.outputs):
        first_out.setdefault(v, k)
    def operand(v):
        if isinstance(v, ps.ScalarConstant):
            return ("const", np.array(v.data, v.type.dtype))
        return where.get(v)

    program = []
    for inner in fgraph.toposort():
        name = scalar_op_name(inner.op)
        if name is None or len(inner.outputs) != 1:
            return thunk
        operands = [operand(v) for v in inner.inputs]
        if None in operands:
            return thunk
        ins, out = tuple(v.type.dtype for v in inner.inputs), inner.outputs[0].type.dtype
        pairwise = name in NARY and len(ins) > 2
        try:
            SCALAR_OPS[name].types((out, out) if pairwise else ins, out)
        except TypeError:
            return thunk
        if any(d not in CODES for d in (*ins, out)):
            return thunk
        where[inner.outputs[0]] = ("tmp", len(program))
        program.append((name, operands, out, first_out.get(inner.outputs[0])))
    outs = [operand(v) for v in fgraph.outputs]
    if None in outs:
        return thunk
    return CompositeThunk(node, program, outs, thunk.inputs, thunk.outputs)


def _scalar_steps(nodes, ref) -> list | None:
    """(op, in dtypes, out dtype, args) per inner scalar node, ``ref(var)`` giving a
    variable's arg; n-ary add, mul, ... become pairwise steps on inputs cast to the result
    dtype first (``CompositeThunk``'s exact upcast). None if a node is not an op of the
    table with the types PyTensor gave it. ``ref`` learns each step's result as
    ``ref.results[var] = step index``."""
    steps = []
    for inner in nodes:
        name = scalar_op_name(inner.op)
        if name is None or len(inner.outputs) != 1:
            return None
        ins, out = tuple(v.type.dtype for v in inner.inputs), inner.outputs[0].type.dtype
        if any(d not in CODES for d in (*ins, out)):
            return None
        args = [ref(v) for v in inner.inputs]
        if None in args:
            return None
        if name in NARY and len(ins) > 2:
            casts = []
            for a, d in zip(args, ins):
                if d != out:
                    steps.append(("cast", (d,), out, (a,)))
                    a = ref.step(len(steps) - 1)
                casts.append(a)
            acc = casts[0]
            for a in casts[1:]:
                steps.append((name, (out, out), out, (acc, a)))
                acc = ref.step(len(steps) - 1)
        else:
            try:
                SCALAR_OPS[name].types(ins, out)
            except TypeError:
                return None
            steps.append((name, ins, out, tuple(args)))
        ref.results[inner.outputs[0]] = len(steps) - 1
    return steps


class _Refs:
    """Args of a loop program: inner inputs, then constants, then step results."""

    def __init__(self, inputs, consts: dict, n_consts: int):
        self.inputs = {v: k for k, v in enumerate(inputs)}
        self.consts, self.results = consts, {}  # var -> index (of ``Loop.consts``, a step)
        self.n_consts = n_consts

    def step(self, i: int) -> int:
        return len(self.inputs) + self.n_consts + i

    def __call__(self, v):
        if v in self.inputs:
            return self.inputs[v]
        if v in self.consts:
            return len(self.inputs) + self.consts[v]
        i = self.results.get(v)
        return None if i is None else self.step(i)


def _scalar_loop(op, node, thunk):
    """A ``ScalarLoop`` (the gradients of ``gammainc(c)``, ``betainc``, ``hyp2f1``): one
    ``loop`` kernel from its scalar program (``kernels/loop.py``). Inputs that are
    constants of the graph become constants of the program (betainc's loop starts ten of
    its sixteen inputs at constants). PyTensor's thunk if an inner node is outside the
    table, or the inputs alone exceed a plan step's operands."""
    sl = op.scalar_op
    fg = sl.fgraph
    dtypes = _dtypes(node)
    if any(d not in CODES for d in dtypes) or len(fg.outputs) != len(node.outputs):
        return thunk
    n_update = len(fg.outputs) - (1 if sl.is_while else 0)
    mem, sources, consts, const_of = [dtypes[0]], [], [], {}
    for v in node.inputs[1:]:
        data = getattr(v, "data", None)
        if isinstance(v, Constant) and np.size(data) == 1 and v.type.dtype in CODES:
            sources.append((1, len(consts)))
            consts.append((v.type.dtype, np.asarray(data).item()))
        else:
            sources.append((0, len(mem)))
            mem.append(v.type.dtype)
    nodes = fg.toposort()
    inner_vars = [v for n in nodes for v in n.inputs] + list(fg.outputs)
    for var in inner_vars:  # the inner graph's own constants, in a stable order (the
        if var.owner is None and var not in fg.inputs and var not in const_of:  # name)
            if not isinstance(var, Constant) or var.type.dtype not in CODES:
                return thunk
            const_of[var] = len(consts)
            consts.append((var.type.dtype, np.asarray(var.data).item()))
    refs = _Refs(fg.inputs, const_of, len(consts))
    steps = _scalar_steps(nodes, refs)
    outs = [refs(v) for v in fg.outputs]
    if steps is None or None in outs:
        return thunk
    template = Loop((*mem,), len(mem), tuple(sources), tuple(consts), tuple(steps),
                    tuple(outs[:n_update]), outs[n_update] if sl.is_while else -1,
                    tuple(range(len(node.outputs))), 0)
    mem_inputs = [k for k, (kind, _) in enumerate(sources, start=1) if kind == 0]
    try:
        run = LoopCall(template, tuple(dtypes[len(node.inputs):]), max_operands())
    except ValueError:
        return thunk
    checked: list = [None]

    def compute(*values):
        shapes = [np.shape(x) for x in values]
        if shapes != checked[0]:  # PyTensor refuses undeclared runtime broadcasting
            Elemwise._check_runtime_broadcast(node, [np.asarray(x) for x in values])
            checked[0] = shapes
        outs = run(values[0], *[values[k] for k in mem_inputs])
        return outs if len(outs) > 1 else outs[0]
    return _kernel(node, thunk, compute)


@serve.register(CAReduce)
def _careduce(op, node, thunk):
    if isinstance(op.scalar_op, MulWithoutZeros):
        return _prod_without_zeros(op, node, thunk)
    name = PYTENSOR_REDUCTIONS.get(type(op.scalar_op))
    ins, out = node.inputs[0].type.dtype, node.outputs[0].type.dtype
    if len(node.outputs) != 1 or name is None or ins not in CODES:
        return thunk
    acc, res = REDUCTIONS[name].dtypes(ins)
    asked = getattr(op, "acc_dtype", None)
    axis = op.axis
    if out == res and asked in (None, acc):
        return _kernel(node, thunk, lambda x: ak.reduce(name, x, axis=axis))
    # ``Sum``/``Prod`` asked for another accumulator than the table gives this input (a
    # float32 gradient summed into float64, a bool mask in float64 into float32): perform
    # converts the input to its accumulator dtype, reduces in that and converts the result
    # (a float to a narrower float rounds alike everywhere); so do the kernels
    wide = asked or out
    if wide not in CODES or not np.can_cast(ins, wide, "safe"):
        return thunk
    acc, res = REDUCTIONS[name].dtypes(wide)
    if acc != wide or not (np.can_cast(res, out, "safe") or kind(res) == kind(out) == "f"):
        return thunk

    def run(x):
        r = ak.reduce(name, x if x.dtype == wide else ak.cast(x, wide), axis=axis)
        return r if res == out else ak.cast(r, out)
    return _kernel(node, thunk, run)


def _prod_without_zeros(op, node, thunk):
    """``ProdWithoutZeros`` (the gradient of ``prod``): the product of the nonzero elements,
    from kernels: zeros become ones (``switch``), ``prod``, then where ``all`` are zero,
    the last of them (PyTensor folds ``mul_without_zeros``, which keeps the other operand of
    a zero: 0.0 or -0.0, as the last element is), and 0 for none (its identity).
    ``perform`` multiplies in another order: the same up to rounding."""
    ins, out = node.inputs[0].type.dtype, node.outputs[0].type.dtype
    if ins not in CODES or np.dtype(ins).kind != "f" or REDUCTIONS["prod"].dtypes(ins)[1] != out:
        return thunk
    axis = op.axis

    def run(x):
        axes = range(x.ndim) if axis is None else [a % x.ndim for a in axis]
        zero, one = (record.literal(np.array(v, x.dtype)) for v in (0, 1))
        zeros = ak.elemwise("eq", x, zero, out=record.workspace(x.shape, "bool"))
        ones = ak.elemwise("switch", zeros, one, x, out=record.workspace(x.shape, x.dtype))
        if any(x.shape[a] == 0 for a in axes):
            last = record.literal(np.zeros((), out))
        else:  # a view (slices, not integers: x[-1, -1] would be a NumPy scalar, a copy)
            last = x[tuple(slice(-1, None) if d in axes else slice(None)
                           for d in range(x.ndim))].reshape([n for d, n in enumerate(x.shape)
                                                             if d not in axes])
        return ak.elemwise("switch", ak.reduce("all", zeros, axis=axis), last,
                           ak.reduce("prod", ones, axis=axis))
    return _kernel(node, thunk, run)


@serve.register(OpFromGraph)
def _op_from_graph(op, node, thunk):
    """Inner graphs that would compile in the default mode run in mode AOT instead."""
    if type(op).perform is OpFromGraph.perform and op.kwargs.get("mode") is None:
        return InnerGraphThunk(node, thunk.inputs, thunk.outputs)
    return thunk


def _axis_op(name: str, node, thunk, axis):
    dtypes, spec = _dtypes(node), AXIS_OPS[name]
    if spec.nin > 1 and len(set(dtypes)) != 1:
        return thunk
    if dtypes[0] not in spec.dtypes or dtypes[-1] != spec.out_dtype(dtypes[0]):
        return thunk
    return _kernel(node, thunk, lambda *xs: along(name, *xs, axis=axis))


@serve.register(Argmax)
def _argmax(op, node, thunk):
    return _axis_op("argmax", node, thunk, op.axis)


@serve.register(CumOp)
def _cumop(op, node, thunk):
    return _axis_op("cumsum" if op.mode == "add" else "cumprod", node, thunk, op.axis)


@serve.register(SortOp)
def _sort(op, node, thunk):
    """``np.sort`` along the axis input's value (``pt.sort(x, axis=None)`` flattens in the
    graph first). The kernel's order of equal values is a stable sort's: NumPy's for every
    kind, except that quicksort and heapsort leave zeros of either sign and NaN payloads in
    an order of their own."""
    dtype = node.inputs[0].type.dtype
    if dtype not in AXIS_OPS["sort"].dtypes or node.outputs[0].type.dtype != dtype:
        return thunk
    return _kernel(node, thunk, lambda x, axis: along("sort", x, axis=int(axis)), (1,))


@serve.register(ArgSortOp)
def _argsort(op, node, thunk):
    """``np.argsort`` along the axis input's value: the stable order (``kind="stable"`` and
    ``mergesort`` to the bit; NumPy's quicksort and heapsort may order equal values
    otherwise, by their algorithm's choice, as for ``sort``)."""
    dtype = node.inputs[0].type.dtype
    if dtype not in AXIS_OPS["argsort"].dtypes or node.outputs[0].type.dtype != "int64":
        return thunk
    return _kernel(node, thunk, lambda x, axis: along("argsort", x, axis=int(axis)), (1,))


@serve.register(Softmax)
def _softmax(op, node, thunk):
    return _softmax_like("softmax", op, node, thunk)


@serve.register(LogSoftmax)
def _log_softmax(op, node, thunk):
    return _softmax_like("log_softmax", op, node, thunk)


def _softmax_like(name: str, op, node, thunk):
    """Softmax and log-softmax along ``op.axis`` (None: all axes); over an axis of length
    0, ``perform``: PyTensor 2.x's (SciPy's, whose ``max`` has no identity) raises
    ``ValueError`` where the kernels would return the empty result."""
    if _axis_op(name, node, thunk, op.axis) is thunk:
        return thunk

    axes = op.axis if op.axis is None or isinstance(op.axis, tuple) else (op.axis,)  # 3.x: tuple

    def run(x):
        if 0 in (x.shape if axes is None else [x.shape[a] for a in axes]):
            return _by_perform(op, node, (x,), "a softmax over an empty axis")
        return along(name, x, axis=op.axis)
    return _kernel(node, thunk, run)


if SoftmaxGrad is not None:
    @serve.register(SoftmaxGrad)
    def _softmax_grad(op, node, thunk):
        return _axis_op("softmax_grad", node, thunk, op.axis)


@serve.register(Join)
def _join(op, node, thunk):
    if not all(d in CODES for d in _dtypes(node)):
        return thunk
    dtype = node.outputs[0].type.dtype

    def run(axis, *pieces):
        return ak.join(int(axis), *pieces, dtype=dtype)
    return _kernel(node, thunk, run, (0,))


@serve.register(Alloc)
def _alloc(op, node, thunk):
    if not all(d in CODES for d in _dtypes(node)):
        return thunk
    dtype = node.outputs[0].type.dtype

    def run(value, *shape):
        shape = tuple(int(n) for n in shape)
        op._check_runtime_broadcast(node, np.asarray(value), shape)
        return ak.alloc(value, shape, dtype)
    return _kernel(node, thunk, run, tuple(range(1, len(node.inputs))))


@serve.register(Eye)
def _eye(op, node, thunk):
    """``np.eye(n, m, k)`` of a size known only when called (``pt.eye(X.shape[0])`` beside a
    covariance of ``pm.Data``; constant sizes fold away): zeros, then ones written through
    the diagonal's view, as plan steps replayed while ``n``, ``m``, ``k`` stay the same."""
    dtype = node.outputs[0].type.dtype
    if dtype not in CODES:
        return thunk

    def run(n, m, k):
        n, m, k = int(n), int(m), int(k)
        if n < 0 or m < 0:
            return np.eye(n, m, k, dtype=dtype)  # NumPy's ValueError
        out = ak.alloc(record.literal(np.zeros((), dtype)), (n, m))
        count = min(n, m - k) if k >= 0 else min(n + k, m)
        if count > 0:
            start = k if k >= 0 else -k * m
            copy_into(record.literal(np.ones((), dtype)),
                      out.reshape(-1)[start:start + (count - 1) * (m + 1) + 1:m + 1])
        return out
    return _kernel(node, thunk, run, (0, 1, 2))


@serve.register(BlockDiagonal)
def _block_diagonal(op, node, thunk):
    """``pt.linalg.block_diag`` (state-space and multi-output GP covariances): zeros, then
    each block copied into its place, converting to the output dtype as ``perform``'s
    ``astype`` does (the output dtype is the blocks' upcast: no block narrows)."""
    dtype = node.outputs[0].type.dtype
    if any(d not in CODES for d in _dtypes(node)):
        return thunk

    def run(*blocks):
        rows, cols = sum(b.shape[0] for b in blocks), sum(b.shape[1] for b in blocks)
        out = ak.alloc(record.literal(np.zeros((), dtype)), (rows, cols))
        r = c = 0
        for b in blocks:
            if b.size:
                copy_into(b, out[r:r + b.shape[0], c:c + b.shape[1]])
            r, c = r + b.shape[0], c + b.shape[1]
        return out
    return _kernel(node, thunk, run)


@serve.register(DeepCopyOp)
def _deep_copy(op, node, thunk):
    """A function's result that would alias an input or another result: a copy kernel. A
    scalar-typed result stays PyTensor's (a NumPy scalar, not a 0-d array)."""
    if not isinstance(node.inputs[0].type, TensorType) or node.inputs[0].type.dtype not in CODES:
        return thunk
    return _kernel(node, thunk, lambda x: copy_into(x, np.empty(x.shape, x.dtype)))


@serve.register(CheckAndRaise)
def _check_and_raise(op, node, thunk):
    if any(c.type.dtype != "bool" for c in node.inputs[1:]):
        return thunk
    return CheckThunk(node, (op.exc_type, op.msg), thunk.inputs, thunk.outputs)


@serve.register(MakeVector)
def _make_vector(op, node, thunk):
    if not node.inputs or not all(d in CODES for d in _dtypes(node)):
        return thunk
    dtype = node.outputs[0].type.dtype

    def run(*scalars):  # each 0-d input is a length-1 view: one copy kernel a piece
        return ak.join(0, *[np.asarray(x).reshape(1) for x in scalars], dtype=dtype)
    return _kernel(node, thunk, run)


def _indices(idx_list, values) -> tuple:
    """The index tuple of a basic (Inc)Subtensor: ``idx_list`` (slices, and a type or a
    position per scalar index) filled with the index inputs' values, as its perform does."""
    it = iter(values)
    return tuple(slice(*[None if e is None else int(next(it)) for e in
                         (entry.start, entry.stop, entry.step)])
                 if isinstance(entry, slice) else int(next(it)) for entry in idx_list)


@serve.register(Subtensor)
def _subtensor(op, node, thunk):
    """Only the scalar result: PyTensor 2.x returns a 0-d copy of the element, which a plan
    cannot replay; ``x[i, j, ...]`` is the same element as a 0-d view."""
    if node.outputs[0].type.ndim != 0:
        return thunk
    idx_list = op.idx_list
    return _kernel(node, thunk, lambda x, *i: x[(*_indices(idx_list, i), Ellipsis)],
                   tuple(range(1, len(node.inputs))))


@serve.register(IncSubtensor)
def _inc_subtensor(op, node, thunk):
    """``x[idx] = y`` / ``x[idx] += y`` with basic indices: a copy of ``x`` (unless in
    place), then one kernel writing into the view ``x[idx]``."""
    x, y = node.inputs[:2]
    idx_list, inplace, set_ = op.idx_list, op.inplace, op.set_instead_of_inc
    xd, yd = x.type.dtype, y.type.dtype
    # a set converts y as NumPy's assignment does, where the kernels' cast agrees: into
    # bool (nonzero), between floats (rounding); an increment adds in x's own dtype
    converts = set_ and (xd == "bool" or kind(xd) == kind(yd) == "f")
    if (not all(d in CODES for d in _dtypes(node))
            or (np.result_type(xd, yd) != xd and not converts)):
        return thunk

    def run(x, y, *i):
        out = x if inplace and x.flags.writeable else record.copy(x)
        view = out[(*_indices(idx_list, i), Ellipsis)]
        if view.size:
            if set_:
                copy_into(y, view)
            else:
                ak.elemwise("add", view, np.broadcast_to(y, view.shape), out=view)
        return out
    return _kernel(node, thunk, run, tuple(range(2, len(node.inputs))))


def _floats(node) -> bool:
    dtypes = _dtypes(node)
    return len(set(dtypes)) == 1 and dtypes[0] in BLAS_DTYPES


def _products(node, ranks: tuple[int, ...]) -> bool:
    """A BLAS product's operands of these ranks and a result in the dtype NumPy gives them
    (inputs of mixed dtypes, as a float64 design matrix and float32 parameters under
    ``floatX=float32``, are converted by recorded kernel steps first, as NumPy converts)."""
    ins, out = [v.type.dtype for v in node.inputs], node.outputs[0].type.dtype
    return (out in BLAS_DTYPES and all(d in CODES for d in ins)
            and np.result_type(*ins).name == out
            and all(v.type.ndim in ranks for v in node.inputs))


@serve.register(BatchedDot)
def _batched_dot(op, node, thunk):
    """``np.matmul`` of two batches of matrices (``pt.matmul`` and ``einsum`` of 3-d
    tensors): one BLAS product per batch entry, written into its slice of the result; a
    batch size mismatch raises ``perform``'s ``TypeError``."""
    if not _products(node, (3,)):
        return thunk
    dtype = node.outputs[0].type.dtype

    def run(x, y):
        if x.shape[0] != y.shape[0]:
            raise TypeError(f"Inputs must have the same size in axis 0, but have sizes "
                            f"[{x.shape[0]}, {y.shape[0]}].")
        out = np.empty((x.shape[0], x.shape[1], y.shape[2]), dtype)
        for b in range(x.shape[0]):
            ak.dot(x[b], y[b], out=out[b])
        return out
    return _kernel(node, thunk, run)


@serve.register(Dot)
@serve.register(Dot22)
def _dot(op, node, thunk):
    """``np.dot`` of vectors and matrices (mixed dtypes: ``_products``)."""
    if not _products(node, (1, 2)):
        return thunk
    return _kernel(node, thunk, ak.dot)


@serve.register(Dot22Scalar)
def _dot22_scalar(op, node, thunk):
    """``a * np.dot(x, y)``, what PyTensor makes of a scalar times a matrix product
    (``2 * (x @ y)``): its ``perform``'s two roundings, the product then one multiply in
    place."""
    if not _floats(node):
        return thunk

    def run(x, y, a):
        out = ak.dot(x, y)
        return ak.elemwise("mul", a, out, out=out)
    return _kernel(node, thunk, run)


@serve.register(Gemv)
def _gemv(op, node, thunk):
    if not _floats(node):
        return thunk
    inplace = op.inplace

    def run(y, alpha, a, x, beta):
        if not inplace or not y.flags.writeable:
            y = record.copy(y)
        return ak.gemv(alpha, a, x, beta, y)
    return _kernel(node, thunk, run)


@serve.register(Gemm)
def _gemm(op, node, thunk):
    if not _floats(node) or node.inputs[0].type.ndim != 2:
        return thunk
    inplace = op.inplace

    def run(z, alpha, x, y, beta):
        shape = (x.shape[0], y.shape[1])
        if z.shape != shape:  # Gemm broadcasts z
            z = record.copy(np.broadcast_to(z, shape))
        elif not inplace or not z.flags.writeable:
            z = record.copy(z)
        return ak.gemm(alpha, x, y, beta, z)
    return _kernel(node, thunk, run)


@serve.register(AdvancedSubtensor1)
def _take(op, node, thunk):
    x, i = node.inputs
    if (x.type.dtype not in INDEX_OPS["take"].dtypes or i.type.dtype not in INDEX_INPUTS
            or i.type.ndim != 1):
        return thunk
    return _kernel(node, thunk, ak.take)


@serve.register(AdvancedIncSubtensor1)
def _inc(op, node, thunk):
    x, y, i = node.inputs
    name = "put" if op.set_instead_of_inc else "inc"
    if (x.type.dtype not in INDEX_OPS[name].dtypes or i.type.dtype not in INDEX_INPUTS
            or not np.can_cast(y.type.dtype, x.type.dtype, "same_kind") or i.type.ndim != 1):
        return thunk
    update = ak.put if name == "put" else ak.inc
    inplace, check = op.inplace, getattr(op, "_check_runtime_broadcasting", None)

    def run(x, y, i):
        if check is not None:  # PyTensor refuses to broadcast y where its type does not
            check(node, x, y, i)
        return update(x, i, y, inplace=inplace)
    return _kernel(node, thunk, run)


def _advanced(op, x, indices, name: str):
    """The ``points.entries`` of an advanced index the ``name`` kernels can serve, or None."""
    if x.type.dtype not in INDEX_OPS[name].dtypes or not 1 <= x.type.ndim <= MAX_NDIM:
        return None
    found = points.entries(op, indices)
    return found if found is not None and len(found) <= x.type.ndim else None


@serve.register(AdvancedSubtensor)
def _take_points(op, node, thunk):
    """``x[i, j]``, ``x[:, i, j]``, ...: integer arrays and constant slices as points."""
    x, *indices = node.inputs
    entries = _advanced(op, x, indices, "take_points")
    if entries is None:
        return thunk
    at = points.points_of(entries, indices)

    def run(x, *i):
        shape, flat = at(x.shape, i)
        if 0 in shape and any(np.size(v) for v in i):
            return _by_perform(op, node, (x, *i), "an empty advanced index's bounds checks")
        return ak.take_points(x, flat).reshape(shape)
    return _kernel(node, thunk, run)


def _by_perform(op, node, values, why: str):
    """``perform``, as a Python step of the plan, where the kernels would not do what it
    does on empty operands: an advanced index whose result has no elements (a dimension of
    0 beside the indices) while its index arrays have some (NumPy checks each index against
    its axis all the same, and the flattened points, none, would not: an index out of range
    must raise ``IndexError`` on every call); a softmax over an axis of length 0."""
    record.opaque(why)
    out = [[None] for _ in node.outputs]
    op.perform(node, list(values), out)
    return out[0][0]


@serve.register(AdvancedIncSubtensor)
def _inc_points(op, node, thunk):
    """``x[i, j] = y``, ``x[:, i, j] += y``, ...: repeated points accumulate, as in
    ``np.add.at`` (an Op that ignores duplicates runs ``perform``)."""
    x, y, *indices = node.inputs
    name = "put_points" if op.set_instead_of_inc else "inc_points"
    entries = _advanced(op, x, indices, name)
    if (entries is None or getattr(op, "ignore_duplicates", False)
            or not np.can_cast(y.type.dtype, x.type.dtype, "same_kind")):
        return thunk
    update, inplace, at = getattr(ak, name), op.inplace, points.points_of(entries, indices)

    def run(x, y, *i):
        shape, flat = at(x.shape, i)
        if 0 in shape and any(np.size(v) for v in i):
            return _by_perform(op, node, (x, y, *i), "an empty advanced index's bounds checks")
        return update(x, flat, points.flat(y, shape), inplace=inplace)
    return _kernel(node, thunk, run)


# -- dense linear algebra: LAPACK-backed solvers, the rank-1 update, diagonals -------------

def _lapack_floats(node) -> bool:
    """Every result in the dtype the ``lapack`` functions compute these inputs in (SciPy's:
    float32 stays, anything else upcasts to float64; mixed inputs, as a float64 matrix with
    a float32 vector under ``floatX=float32``, are converted by recorded kernel steps)."""
    ins = [v.type.dtype for v in node.inputs]
    if any(d not in CODES for d in (*ins, *_dtypes(node))):
        return False
    res = ins[0] if len(set(ins)) == 1 else np.result_type(*ins).name
    res = res if res in LAPACK_DTYPES else "float64"
    return all(v.type.dtype == res for v in node.outputs)


def _cholesky_core(op):
    """PyTensor's Cholesky gives NaN, not an error, for a matrix that is not positive
    definite (``on_error="raise"`` is a CheckAndRaise node after it); ``overwrite_a`` only
    allows writing into the input, and a fresh result is as good."""
    lower = op.lower
    return lambda x, out=None: ak.cholesky(x, lower=lower, on_error="nan", check_finite=False,
                                           out=out)


def _solve_triangular_core(op):
    """NaN for a zero on the diagonal, like ``perform``; ``overwrite_b`` as ``overwrite_a``
    above; ``b`` a vector or a matrix (``b_ndim``)."""
    lower, unit = op.lower, op.unit_diagonal

    def run(a, b, out=None):
        return ak.solve_triangular(a, b, lower=lower, unit_diagonal=unit, on_error="nan",
                                   check_finite=False, out=out)
    return run


def _solve_core(op):
    """General, symmetric and positive definite solves (``assume_a``; other structures run
    ``perform``): NaN for a singular matrix, like ``perform`` (whose NaN result has ``a``'s
    shape, not the declared one of the solution, ours); ``overwrite_a/b`` as above."""
    if op.assume_a not in STRUCTURES:
        return None
    assume_a, lower = op.assume_a, op.lower

    def run(a, b, out=None):
        return ak.solve(a, b, assume_a=assume_a, lower=lower, on_error="nan",
                        check_finite=False, out=out)
    return run


def _cho_solve_core(op):
    """A solve with a Cholesky factor (``potrs``, whose failures ``perform`` makes NaN)."""
    lower = op.lower
    return lambda c, b, out=None: ak.cho_solve((c, lower), b, on_error="nan",
                                               check_finite=False, out=out)


def _inverse_core(op):
    """``np.linalg.inv`` (``gesv`` of the identity: LU factors and their solve), a
    singular matrix raising ``LinAlgError`` as there."""
    return lambda a, out=None: ak.inv(a, out=out)


def _det_core(op):
    """``np.linalg.det``: ``sign * exp(logabsdet)`` from the LU factors, as NumPy does."""
    return lambda a, out=None: ak.det(a, out=out)


#: solver Op class -> its core runner ``run(*matrices, out=None)`` (None: ``perform``),
#: whose result is the Op's core output (a matrix, or a scalar for ``Det``)
SOLVERS: dict[type, Callable] = {Cholesky: _cholesky_core,
                                 SolveTriangular: _solve_triangular_core,
                                 Solve: _solve_core, CholeskySolve: _cho_solve_core,
                                 MatrixInverse: _inverse_core, Det: _det_core}


@serve.register(Cholesky)
@serve.register(SolveTriangular)
@serve.register(Solve)
@serve.register(CholeskySolve)
@serve.register(MatrixInverse)
@serve.register(Det)
def _solver(op, node, thunk):
    run = SOLVERS[type(op)](op) if _lapack_floats(node) else None
    return thunk if run is None else _kernel(node, thunk, run)


@serve.register(LUFactor)
def _lu_factor(op, node, thunk):
    """``(LU, pivots)`` by ``getrf``, LU NaN for a singular matrix as ``perform`` makes it;
    ``overwrite_a`` only allows writing into the input, and a fresh result is as good."""
    dtype = node.inputs[0].type.dtype
    if dtype not in LAPACK_DTYPES or node.outputs[0].type.dtype != dtype:
        return thunk
    return _kernel(node, thunk, lambda a: ak.lu_factor(a, on_error="nan", check_finite=False))


@serve.register(PivotToPermutations)
def _pivot_to_permutation(op, node, thunk):
    if node.inputs[0].type.dtype != "int32":
        return thunk
    inverse = op.inverse
    return _kernel(node, thunk, lambda p: ak.pivot_to_permutation(p, inverse=inverse))


@serve.register(Blockwise)
def _blockwise(op, node, thunk):
    """A solver over batch dimensions (``pt.linalg`` wraps them all in Blockwise; PyTensor
    removes the wrapper when there are none): one kernel call per matrix, each writing its
    slice of the result, whose slices are column-major as SciPy's results are."""
    make = SOLVERS.get(type(op.core_op))
    core = make(op.core_op) if make is not None and _lapack_floats(node) else None
    if core is None:
        return thunk
    in_dims, (out_dims,) = _parse_gufunc_signature(op.signature)
    core_ndims = [len(dims) for dims in in_dims]
    dtype, check = node.outputs[0].type.dtype, getattr(op, "_check_runtime_broadcast", None)

    def run(*xs):
        if check is not None:  # batch dimensions of length 1 broadcast only where typed so
            check(node, xs)
        batch = np.broadcast_shapes(*(x.shape[:x.ndim - k] for x, k in zip(xs, core_ndims)))
        xs = [np.broadcast_to(x, batch + x.shape[x.ndim - k:]) for x, k in zip(xs, core_ndims)]
        sizes = {d: n for x, dims in zip(xs, in_dims) for d, n in zip(dims, x.shape[len(batch):])}
        shape = tuple(sizes[d] for d in out_dims)
        out = np.empty(batch + shape[::-1], dtype)
        out = out.swapaxes(-1, -2) if len(shape) == 2 else out
        for idx in np.ndindex(*batch):
            core(*[x[idx] for x in xs], out=out[(*idx, ...)])
        return out
    return _kernel(node, thunk, run)


@serve.register(SLogDet)
def _slogdet(op, node, thunk):
    """``np.linalg.slogdet``: the pivots' parity and the LU diagonal accumulated in NumPy's
    order, ``(0, -inf)`` for a singular matrix."""
    if not _lapack_floats(node):
        return thunk
    dtype = node.outputs[1].type.dtype

    def run(a):  # a node's further results are workspaces its kernels write
        return ak.slogdet(a, out=(np.empty((), dtype), record.workspace((), dtype)))
    return _kernel(node, thunk, run)


def _pos_def_matrix(op, node, thunk):
    """PyMC's ``PosDefMatrix`` (MvStudentT's and Wishart's check): whether
    ``scipy.linalg.cholesky`` succeeds on the upper triangle, ``ValueError`` for a
    non-finite element as SciPy's ``check_finite`` raises it."""
    (x,) = node.inputs
    if x.type.dtype not in LAPACK_DTYPES or node.outputs[0].type.dtype != "bool":
        return thunk
    return _kernel(node, thunk, ak.is_positive_definite)


@serve.register(FillDiagonal)
def _fill_diagonal(op, node, thunk):
    """A copy of the matrix (identity kernel), then the value broadcast into its main
    diagonal's strided view: ``perform``'s ``a.flat[:end:step] = val``, which for a
    rectangular matrix also stops after ``min(rows, columns)`` elements."""
    a_t, val_t = node.inputs
    dtype = node.outputs[0].type.dtype
    if a_t.type.ndim != 2 or val_t.type.dtype != dtype or dtype not in CODES:
        return thunk

    def run(a, val):
        out = ak.elemwise("identity", a, out=np.empty(a.shape, dtype))  # C order
        s0, s1 = out.strides
        diag = np.ndarray((min(out.shape),), dtype, out, 0, (s0 + s1,))
        if diag.size:
            ak.elemwise("identity", np.broadcast_to(val, diag.shape), out=diag)
        return out
    return _kernel(node, thunk, run)


#: servers of Op classes PyTensor does not import, by ``module.qualname``
BY_NAME: dict[str, Callable] = {
    "pymc.distributions.multivariate.PosDefMatrix": _pos_def_matrix,
}


@serve.register(Ger)
def _ger(op, node, thunk):
    """``A + alpha * outer(x, y)``: a rank-1 ``gemm`` into ``A`` or a copy of it."""
    if not _floats(node):
        return thunk
    destructive = op.destructive

    def run(a, alpha, x, y):
        if a.size == 0:
            return a if destructive else a.copy()
        if not destructive or not a.flags.writeable:
            a = record.copy(a)
        return ak.gemm(alpha, x[:, None], y[None, :], 1.0, a)
    return _kernel(node, thunk, run)


@serve.register(ExtractDiag)
def _extract_diag(op, node, thunk):
    """A copied diagonal (``view=False``) is an identity kernel from the diagonal's view; a
    viewed one stays a view (``coverage.VIEW_OPS``; the planner makes it an offset)."""
    dtype = node.outputs[0].type.dtype
    if op.view or dtype not in CODES:
        return thunk
    offset, axis1, axis2 = op.offset, op.axis1, op.axis2

    def run(x):
        return ak.elemwise("identity", np.diagonal(x, offset, axis1, axis2))
    return _kernel(node, thunk, run)


@serve.register(AllocDiag)
def _alloc_diag(op, node, thunk):
    """A vector's diagonal matrix: zeros (``alloc``), then an identity kernel into the
    diagonal's strided view (offset ``k`` shifts it right, or down if negative). Its inner
    graph would run as a Python item of a plan: a scatter PyTensor builds from two aranges."""
    (v,) = node.inputs
    dtype = node.outputs[0].type.dtype
    if v.type.ndim != 1 or v.type.dtype != dtype or dtype not in CODES:
        return thunk
    k = op.offset

    def run(v):
        n = v.shape[0] + abs(k)
        out = ak.alloc(record.literal(np.zeros((), dtype)), (n, n))
        s0, s1 = out.strides
        diag = np.ndarray(v.shape, dtype, out, max(0, -k) * s0 + max(0, k) * s1, (s0 + s1,))
        if v.size:
            ak.elemwise("identity", v, out=diag)
        return out
    return _kernel(node, thunk, run)
