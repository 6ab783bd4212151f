"""One server per PyTensor Op class, like PyTensor's ``numba_funcify`` registry.

A server looks at an Apply node once, when mode AOT builds its thunks, and returns a
``Served``: ``run(*input values) -> output value`` on aotkernels, ``where()`` the source of
the last run ("aot" or "jit", for coverage) and the inputs whose values (not just shapes)
decide the output's geometry, like a join's axis (a plan needs those fixed) — or None when
the node's types are outside what the kernels cover, and PyTensor's own ``perform`` runs it
instead. Elementwise and reduction nodes have their own thunks in ``pytensor_mode``; this
module serves the other kernel families.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from pytensor.tensor.basic import Alloc, Join
from pytensor.tensor.blas import Dot22, Gemm, Gemv
from pytensor.tensor.extra_ops import CumOp
from pytensor.tensor.math import Argmax, Dot
from pytensor.tensor.special import LogSoftmax, Softmax
from pytensor.tensor.subtensor import (
    AdvancedIncSubtensor,
    AdvancedIncSubtensor1,
    AdvancedSubtensor,
    AdvancedSubtensor1,
)

try:  # PyTensor 2.x; 3.x spells the gradient out as elementwise ops and a sum
    from pytensor.tensor.special import SoftmaxGrad
except ImportError:
    SoftmaxGrad = None

from aotkernels import along, assemble, index, linalg, record
from aotkernels.kernels.axis_ops import AXIS_OPS
from aotkernels.kernels.blas_ops import BLAS_DTYPES
from aotkernels.kernels.index_ops import INDEX_DTYPES, INDEX_OPS
from aotkernels.signature import CODES


class Served(NamedTuple):
    run: Callable
    where: Callable[[], str]
    shape_inputs: tuple[int, ...] = ()


Server = Callable[[object], Served | None]
SERVERS: dict[type, Server] = {}


def serves(*op_types: type):
    def register(fn: Server) -> Server:
        for t in op_types:
            SERVERS[t] = fn
        return fn
    return register


def server_for(node) -> Served | None:
    fn = SERVERS.get(type(node.op))
    return None if fn is None else fn(node)


def _dtypes(node) -> list[str]:
    return [v.type.dtype for v in (*node.inputs, *node.outputs)]


def _axis_op(op: str, node, axis):
    dtypes = _dtypes(node)
    spec = AXIS_OPS[op]
    if dtypes[0] not in spec.dtypes or dtypes[-1] != spec.out_dtype(dtypes[0]):
        return None
    return Served(lambda x: along.along(op, x, axis=axis), lambda: along.last_source[op])


@serves(Argmax)
def _argmax(node):
    return _axis_op("argmax", node, node.op.axis)


@serves(CumOp)
def _cumop(node):
    return _axis_op("cumsum" if node.op.mode == "add" else "cumprod", node, node.op.axis)


@serves(Softmax)
def _softmax(node):
    return _axis_op("softmax", node, node.op.axis)


@serves(LogSoftmax)
def _log_softmax(node):
    return _axis_op("log_softmax", node, node.op.axis)


if SoftmaxGrad is not None:
    @serves(SoftmaxGrad)
    def _softmax_grad(node):
        dtypes, axis = _dtypes(node), node.op.axis
        if len(set(dtypes)) != 1 or dtypes[0] not in AXIS_OPS["softmax_grad"].dtypes:
            return None
        return Served(lambda dy, sm: along.along("softmax_grad", dy, sm, axis=axis),
                      lambda: along.last_source["softmax_grad"])


def _abi_dtypes(node) -> bool:
    return all(d in CODES for d in _dtypes(node))


@serves(Join)
def _join(node):
    if not _abi_dtypes(node):
        return None
    dtype = node.outputs[0].type.dtype

    def run(axis, *pieces):
        return assemble.join(int(axis), *pieces, dtype=dtype)
    return Served(run, lambda: assemble.last_source.get("copy", "aot"), (0,))


@serves(Alloc)
def _alloc(node):
    if not _abi_dtypes(node):
        return None
    op, dtype = node.op, node.outputs[0].type.dtype

    def run(value, *shape):
        shape = tuple(int(n) for n in shape)
        op._check_runtime_broadcast(node, np.asarray(value), shape)
        return assemble.alloc(value, shape, dtype)
    shapes = tuple(range(1, len(node.inputs)))
    return Served(run, lambda: assemble.last_source.get("copy", "aot"), shapes)


def _floats(node) -> bool:
    return len(set(_dtypes(node))) == 1 and _dtypes(node)[0] in BLAS_DTYPES


@serves(Dot, Dot22)
def _dot(node):
    if not _floats(node) or any(v.type.ndim not in (1, 2) for v in node.inputs):
        return None
    return Served(linalg.dot, lambda: linalg.last_source["dot"])


@serves(Gemv)
def _gemv(node):
    if not _floats(node):
        return None
    inplace = node.op.inplace

    def run(y, alpha, a, x, beta):
        if not inplace or not y.flags.writeable:
            y = record.copy(y)
        return linalg.gemv(alpha, a, x, beta, y)
    return Served(run, lambda: linalg.last_source["gemv"])


@serves(Gemm)
def _gemm(node):
    if not _floats(node) or node.inputs[0].type.ndim != 2:
        return None
    inplace = node.op.inplace

    def run(z, alpha, x, y, beta):
        shape = (x.shape[0], y.shape[1])
        if z.shape != shape:  # Gemm broadcasts z
            z = record.copy(np.broadcast_to(z, shape))
        elif not inplace or not z.flags.writeable:
            z = record.copy(z)
        return linalg.gemm(alpha, x, y, beta, z)
    return Served(run, lambda: linalg.last_source["gemm"])


@serves(AdvancedSubtensor1)
def _take(node):
    x, i = node.inputs
    if (x.type.dtype not in INDEX_OPS["take"].dtypes or i.type.dtype not in INDEX_DTYPES
            or i.type.ndim != 1):
        return None
    return Served(index.take, lambda: index.last_source["take"])


@serves(AdvancedIncSubtensor1)
def _inc(node):
    x, y, i = node.inputs
    op = "put" if node.op.set_instead_of_inc else "inc"
    if (x.type.dtype not in INDEX_OPS[op].dtypes or i.type.dtype not in INDEX_DTYPES
            or not np.can_cast(y.type.dtype, x.type.dtype, "same_kind") or i.type.ndim != 1):
        return None
    update = index.put if op == "put" else index.inc
    inplace, check = node.op.inplace, getattr(node.op, "_check_runtime_broadcasting", None)

    def run(x, y, i):
        if check is not None:  # PyTensor refuses to broadcast y where its type does not
            check(node, x, y, i)
        return update(x, i, y, inplace=inplace)
    return Served(run, lambda: index.last_source[op])


def _point_vectors(node, x, indices) -> bool:
    """One integer vector per dimension of ``x`` and nothing else (no slices, no scalars)."""
    idx_list = getattr(node.op, "idx_list", None)  # PyTensor 3 keeps slices there
    return (len(indices) == x.type.ndim >= 2
            and (idx_list is None or all(isinstance(e, int) for e in idx_list))
            and all(getattr(i.type, "ndim", None) == 1 and i.type.dtype in INDEX_DTYPES
                    for i in indices))


@serves(AdvancedSubtensor)
def _take_points(node):
    x, *indices = node.inputs
    if x.type.dtype not in INDEX_OPS["take_points"].dtypes or not _point_vectors(
            node, x, indices):
        return None
    return Served(lambda x, *i: index.take_points(x, i),
                  lambda: index.last_source["take_points"])


@serves(AdvancedIncSubtensor)
def _inc_points(node):
    x, y, *indices = node.inputs
    op = "put_points" if node.op.set_instead_of_inc else "inc_points"
    if (x.type.dtype not in INDEX_OPS[op].dtypes or getattr(node.op, "ignore_duplicates", False)
            or not np.can_cast(y.type.dtype, x.type.dtype, "same_kind")
            or not _point_vectors(node, x, indices)):
        return None
    update, inplace = getattr(index, op), node.op.inplace
    return Served(lambda x, y, *i: update(x, i, y, inplace=inplace),
                  lambda: index.last_source[op])
