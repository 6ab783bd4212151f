"""Which thunk runs a node: one registration per Op class, like PyTensor's ``numba_funcify``.

``serve(op, node, thunk)`` is a ``singledispatch`` on the Op's class (subclasses included):
it returns a thunk running the node on aotkernels, or PyTensor's own ``thunk`` (its
``perform``) when the node's types are outside what the kernels cover, which is also the
default for every Op class nobody registered. A reader finds each Op's server here.
"""

from __future__ import annotations

from functools import singledispatch

import numpy as np
import pytensor.scalar as ps
import pytensor.scalar.math as psm
from pytensor.compile.builders import OpFromGraph
from pytensor.tensor.basic import Alloc, Join
from pytensor.tensor.blas import Dot22, Gemm, Gemv
from pytensor.tensor.elemwise import CAReduce, Elemwise
from pytensor.tensor.extra_ops import CumOp
from pytensor.tensor.math import Argmax, Dot
from pytensor.tensor.special import LogSoftmax, Softmax
from pytensor.tensor.subtensor import (
    AdvancedIncSubtensor,
    AdvancedIncSubtensor1,
    AdvancedSubtensor,
    AdvancedSubtensor1,
    Subtensor,
)

try:  # PyTensor 3.x
    from pytensor.tensor.subtensor import unflatten_index_variables

    def _subtensor_indices(op, values) -> tuple:
        return tuple(unflatten_index_variables(values[1:], op.idx_list))
except ImportError:  # PyTensor 2.x
    from pytensor.tensor.subtensor import get_idx_list

    def _subtensor_indices(op, values) -> tuple:
        return tuple(get_idx_list(values, op.idx_list))

try:  # PyTensor 2.x; 3.x spells the gradient out as elementwise ops and a sum
    from pytensor.tensor.special import SoftmaxGrad
except ImportError:
    SoftmaxGrad = None

import aotkernels as ak
from aotkernels import record
from aotkernels.families.axis import along
from aotkernels.kernels.axis_ops import AXIS_OPS
from aotkernels.kernels.blas_ops import BLAS_DTYPES
from aotkernels.kernels.index_ops import INDEX_DTYPES, INDEX_OPS
from aotkernels.kernels.reductions import REDUCTIONS
from aotkernels.kernels.scalar_ops import SCALAR_OPS
from aotkernels.pytensor.thunks import (
    ElementViewThunk,
    ElemwiseThunk,
    InnerGraphThunk,
    KernelThunk,
)
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
NARY = {"add", "mul", "maximum", "minimum", "and", "or", "xor"}


@singledispatch
def serve(op, node, thunk):
    """The thunk that runs ``node`` (whose Op is ``op``): PyTensor's own unless registered."""
    return thunk


def _dtypes(node) -> list[str]:
    return [v.type.dtype for v in (*node.inputs, *node.outputs)]


def _kernel(node, thunk, run, shape_inputs: tuple[int, ...] = ()) -> KernelThunk:
    return KernelThunk(node, run, thunk.inputs, thunk.outputs, shape_inputs)


@serve.register(Elemwise)
def _elemwise(op, node, thunk):
    name = PYTENSOR_SCALAR_OPS.get(type(op.scalar_op))
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


@serve.register(CAReduce)
def _careduce(op, node, thunk):
    name = PYTENSOR_REDUCTIONS.get(type(op.scalar_op))
    ins, out = node.inputs[0].type.dtype, node.outputs[0].type.dtype
    if len(node.outputs) != 1 or name is None or ins not in CODES:
        return thunk
    acc, res = REDUCTIONS[name].dtypes(ins)
    if out != res or getattr(op, "acc_dtype", None) not in (None, acc):
        return thunk
    axis = op.axis
    return _kernel(node, thunk, lambda x: ak.reduce(name, x, axis=axis))


@serve.register(Subtensor)
def _subtensor(op, node, thunk):
    """Integer indices only: a 0-d view of the element, not ``perform``'s copy."""
    if node.outputs[0].ndim != 0 or node.inputs[0].ndim != len(op.idx_list) or any(
            isinstance(i, slice) for i in op.idx_list):
        return thunk
    return ElementViewThunk(node, lambda values: _subtensor_indices(op, values), thunk.inputs,
                            thunk.outputs)


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


@serve.register(Softmax)
def _softmax(op, node, thunk):
    return _axis_op("softmax", node, thunk, op.axis)


@serve.register(LogSoftmax)
def _log_softmax(op, node, thunk):
    return _axis_op("log_softmax", node, thunk, op.axis)


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


def _floats(node) -> bool:
    dtypes = _dtypes(node)
    return len(set(dtypes)) == 1 and dtypes[0] in BLAS_DTYPES


@serve.register(Dot)
@serve.register(Dot22)
def _dot(op, node, thunk):
    if not _floats(node) or any(v.type.ndim not in (1, 2) for v in node.inputs):
        return thunk
    return _kernel(node, thunk, ak.dot)


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
    if (x.type.dtype not in INDEX_OPS["take"].dtypes or i.type.dtype not in INDEX_DTYPES
            or i.type.ndim != 1):
        return thunk
    return _kernel(node, thunk, ak.take)


@serve.register(AdvancedIncSubtensor1)
def _inc(op, node, thunk):
    x, y, i = node.inputs
    name = "put" if op.set_instead_of_inc else "inc"
    if (x.type.dtype not in INDEX_OPS[name].dtypes or i.type.dtype not in INDEX_DTYPES
            or not np.can_cast(y.type.dtype, x.type.dtype, "same_kind") or i.type.ndim != 1):
        return thunk
    update = ak.put if name == "put" else ak.inc
    inplace, check = op.inplace, getattr(op, "_check_runtime_broadcasting", None)

    def run(x, y, i):
        if check is not None:  # PyTensor refuses to broadcast y where its type does not
            check(node, x, y, i)
        return update(x, i, y, inplace=inplace)
    return _kernel(node, thunk, run)


def _point_vectors(op, x, indices) -> bool:
    """One integer vector per dimension of ``x`` and nothing else (no slices, no scalars)."""
    idx_list = getattr(op, "idx_list", None)  # PyTensor 3 keeps slices there
    return (len(indices) == x.type.ndim >= 2
            and (idx_list is None or all(isinstance(e, int) for e in idx_list))
            and all(getattr(i.type, "ndim", None) == 1 and i.type.dtype in INDEX_DTYPES
                    for i in indices))


@serve.register(AdvancedSubtensor)
def _take_points(op, node, thunk):
    x, *indices = node.inputs
    if (x.type.dtype not in INDEX_OPS["take_points"].dtypes
            or not _point_vectors(op, x, indices)):
        return thunk
    return _kernel(node, thunk, lambda x, *i: ak.take_points(x, i))


@serve.register(AdvancedIncSubtensor)
def _inc_points(op, node, thunk):
    x, y, *indices = node.inputs
    name = "put_points" if op.set_instead_of_inc else "inc_points"
    if (x.type.dtype not in INDEX_OPS[name].dtypes or getattr(op, "ignore_duplicates", False)
            or not np.can_cast(y.type.dtype, x.type.dtype, "same_kind")
            or not _point_vectors(op, x, indices)):
        return thunk
    update, inplace = getattr(ak, name), op.inplace
    return _kernel(node, thunk, lambda x, y, *i: update(x, i, y, inplace=inplace))
