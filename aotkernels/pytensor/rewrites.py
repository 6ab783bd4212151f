"""Rewrites only mode AOT applies (tag ``"aotkernels"`` in PyTensor's ``optdb``), so that
what real models leave in a graph runs as kernel steps of a plan.

- ``aot_inline_ofg``: a plain ``OpFromGraph`` (PyTensor leaves some, e.g. the gradient of
  ``AllocDiag``) is replaced by its inner graph before ``canonicalize`` and the merge
  passes (position 0.5): its nodes then run on kernels inside the plan instead of as one
  Python call into an inner function. Inlined later (1.9, after ``merge1.2``), marginal
  GP's graph kept two copies of its Cholesky factor and triangular solves that no later
  pass merged (236 nodes against 164). Subclasses (softmax wrappers and the like) keep
  their own handling, but for a softmax over axes of static length 1 (``unit_softmax``).
- ``aot_tensor_checks``: ``CheckAndRaise`` reads its conditions as scalars, made by
  ``ScalarFromTensor`` nodes whose values are NumPy scalars, which a plan cannot hold;
  ``TensorCheck`` reads the 0-d bool tensors themselves (same exception, same message).
- ``aot_scan_tensor_checks``: the same for a check inside a ``Scan`` (a ``CustomDist``
  whose ``dist`` is a scan of ``pm.Normal.dist`` checks ``sigma > 0`` in every step):
  PyTensor pushes the condition's ``ScalarFromTensor`` out of the loop, and the Scan then
  reads a NumPy scalar, which its C loop cannot bind; the Scan is remade reading the 0-d
  tensor itself, checked by ``TensorCheck`` inside.
- ``aot_constant_masks``: ``x[mask]`` (and its set/inc) for a constant boolean vector over
  ``x``'s first dimension is ``x[nonzero(mask)]``: integer indices the ``take``/``put``/
  ``inc`` kernels serve, where PyTensor keeps the mask for Python. Where ``x``'s length is
  not static, a ``TensorCheck`` raises NumPy's ``IndexError`` for a mask of another length
  (a static length that differs is left to ``perform``).
- ``aot_argsort_permutation``: the argsort of a permutation (PyTensor's LU solves sort
  ``PivotToPermutations``'s result) is its inverse, which ``PivotToPermutations`` makes
  itself: a kernel instead of a sort left to Python (a permutation has no ties, so every
  sort kind gives the same result).

- ``aot_drop_shape_feature``: PyTensor's ``ShapeFeature`` infers the shape of every node
  imported into the graph, and the inplace passes import one new node per replacement they
  try (each ``Elemwise`` made inplace, each validation that fails): shape graphs nobody
  reads, since no rewrite from ``add_destroy_handler`` (49.5) on asks for shapes (they
  read ``fgraph.shape_feature`` only in ``canonicalize``, ``specialize``, ``useless`` and the
  scan passes, all before 3). It is detached just before (49.4): the rewritten graph is
  the same, node for node (``test_inplace_passes_run_without_shape_inference`` in
  ``tests/test_pytensor_mode.py``), and a graph-cache hit never had the feature anyway.

``probing_rewrites`` names PyTensor rewrites mode AOT leaves out because merely trying
them costs a compiler run. How mode AOT's rewriting does the same work with less is
``lean_rewriting``'s.
"""

from __future__ import annotations

import numpy as np
from pytensor.compile import optdb
from pytensor.compile.builders import OpFromGraph
from pytensor.graph import Apply, node_rewriter
from pytensor.graph.basic import Constant, clone_get_equiv
from pytensor.graph.replace import clone_replace
from pytensor.graph.rewriting.basic import GraphRewriter, copy_stack_trace, dfs_rewriter
from pytensor.raise_op import CheckAndRaise
from pytensor.scalar import ScalarType
from pytensor.scan.op import Scan
from pytensor.tensor.basic import ScalarFromTensor, as_tensor_variable
from pytensor.tensor.math import eq
from pytensor.tensor.rewriting.shape import ShapeFeature
from pytensor.tensor.sort import ArgSortOp
from pytensor.tensor.special import LogSoftmax, Softmax
from pytensor.tensor.subtensor import (
    AdvancedIncSubtensor,
    AdvancedSubtensor,
    advanced_inc_subtensor1,
    advanced_set_subtensor1,
    advanced_subtensor1,
)
from pytensor.tensor.type import TensorType

try:  # PyTensor 3.x; 2.x has it in slinalg only
    from pytensor.tensor.linalg import PivotToPermutations
except ImportError:
    from pytensor.tensor.slinalg import PivotToPermutations

TAG = "aotkernels"


class TensorCheck(CheckAndRaise):
    """``CheckAndRaise`` whose conditions are 0-d bool tensors (its ``perform`` is the
    parent's: ``all`` of the conditions, else the Op's exception)."""

    def make_node(self, value, *conds):
        value = as_tensor_variable(value)
        conds = [as_tensor_variable(c) for c in conds]
        if any(c.type.ndim != 0 or c.type.dtype != "bool" for c in conds):
            raise TypeError("TensorCheck takes 0-d bool tensors as conditions")
        return Apply(self, [value, *conds], [value.type()])


@node_rewriter([OpFromGraph])
def aot_inline_ofg(fgraph, node):
    if type(node.op) is not OpFromGraph and not unit_softmax(node):
        return False
    return inline_inner_graph(node)


def unit_softmax(node: Apply) -> bool:
    """A softmax or log-softmax that is PyTensor's symbolic Op (3.x) over axes whose static
    length is 1. Every PyTensor backend runs its inner graph rewritten, where ``x -
    max(x)`` over such axes is 0 whatever ``x`` holds: ones and -0.0 even for NaN or
    infinite inputs, where a softmax kernel gives NaN. Inlined, PyTensor's rewrites make
    that same graph (PyTensor 2.x's softmax is an Op of its own, computed as written)."""
    op = node.op
    if not isinstance(op, (Softmax, LogSoftmax)) or len(node.inputs) != 1:
        return False
    shape = node.inputs[0].type.shape
    axes = range(len(shape)) if op.axis is None else op.axis
    axes = (axes,) if isinstance(axes, int) else axes
    return all(shape[a] == 1 for a in axes)


def inline_inner_graph(node: Apply) -> list:
    """``node``'s inner graph cloned onto its inputs: PyTensor's ``inline_ofg_node``
    (``clone_replace``) clones the inputs' whole graphs as well, which for a gradient's
    ``OpFromGraph`` is the model's logp graph again: marginal GP's 301 nodes grew to 524,
    for the merge passes to fold back (or not: PyTensor 2.38 may rewrite one copy before
    they meet, and compute it twice). Constants inside are copied, as there."""
    op = node.op
    equiv = clone_get_equiv(op.inner_inputs, op.inner_outputs, copy_inputs=False,
                            memo=dict(zip(op.inner_inputs, node.inputs, strict=True)))
    outs = [equiv[v] for v in op.inner_outputs]
    copy_stack_trace(op.inner_outputs, outs)
    return outs


@node_rewriter([CheckAndRaise])
def aot_tensor_checks(fgraph, node):
    if isinstance(node.op, TensorCheck):
        return False
    value, *conds = node.inputs
    tensors = [c.owner.inputs[0] if c.owner is not None
               and isinstance(c.owner.op, ScalarFromTensor) else None for c in conds]
    if not conds or any(t is None or t.type.dtype != "bool" for t in tensors):
        return False
    return [TensorCheck(node.op.exc_type, node.op.msg)(value, *tensors)]


@node_rewriter([Scan])
def aot_scan_tensor_checks(fgraph, node):
    op = node.op
    if op.destroy_map:  # an in-place Scan: made later than this runs, left alone
        return False
    inner = op.fgraph
    swaps = {}  # inner bool scalar -> the outer 0-d bool tensor it was made from
    for iv, ov in zip(op.inner_non_seqs(op.inner_inputs), op.outer_non_seqs(node.inputs)):
        made = ov.owner
        if (isinstance(iv.type, ScalarType) and iv.type.dtype == "bool" and made is not None
                and isinstance(made.op, ScalarFromTensor)
                and made.inputs[0].type.dtype == "bool" and inner.clients.get(iv)
                and all(isinstance(c.op, CheckAndRaise) and not isinstance(c.op, TensorCheck)
                        and k > 0 for c, k in inner.clients[iv])):
            swaps[iv] = made.inputs[0]
    checks = {c for iv in swaps for c, _ in inner.clients[iv]}
    if not checks or any(not all(v in swaps for v in c.inputs[1:]) for c in checks):
        return False
    tensors = {iv: TensorType("bool", shape=())(name=iv.name) for iv in swaps}
    remade = {c.outputs[0]: TensorCheck(c.op.exc_type, c.op.msg)(
        c.inputs[0], *[tensors[v] for v in c.inputs[1:]]) for c in checks}
    outputs = clone_replace(op.inner_outputs, replace=remade)
    inputs = [tensors.get(v, v) for v in op.inner_inputs]
    scan = Scan(inputs, outputs, op.info, mode=op.mode, profile=op.profile,
                truncate_gradient=op.truncate_gradient, name=op.name, allow_gc=op.allow_gc)
    n = op.info.n_non_seqs  # the last inputs, outside and inside
    outer = [*node.inputs[:len(node.inputs) - n],
             *[swaps.get(iv, ov) for iv, ov in zip(op.inner_inputs[len(op.inner_inputs) - n:],
                                                    node.inputs[len(node.inputs) - n:])]]
    new = scan(*outer, return_list=True)
    copy_stack_trace(node.outputs, new)
    return new


@node_rewriter([AdvancedSubtensor, AdvancedIncSubtensor])
def aot_constant_masks(fgraph, node):
    op = node.op
    inc = isinstance(op, AdvancedIncSubtensor)
    x, *rest = node.inputs
    if len(rest) != 1 + inc or getattr(op, "idx_list", None) not in (None, (0,)):
        return False
    mask = rest[-1]
    data = getattr(mask, "data", None)
    if (not isinstance(mask, Constant) or not isinstance(data, np.ndarray)
            or data.dtype != bool or data.ndim != 1 or x.type.ndim < 1
            or x.type.shape[0] not in (None, data.shape[0])):
        return False
    idx = np.flatnonzero(data).astype("int64")
    if x.type.shape[0] is None:  # NumPy's refusal of a mask of another length, kept
        x = TensorCheck(IndexError, f"boolean index did not match indexed array along axis "
                        f"0; size of corresponding boolean axis is {data.shape[0]}")(
            x, eq(x.shape[0], data.shape[0]))
    if not inc:
        out = advanced_subtensor1(x, idx)
    elif op.set_instead_of_inc:
        out = advanced_set_subtensor1(x, rest[0], idx)
    else:
        out = advanced_inc_subtensor1(x, rest[0], idx)
    if not node.outputs[0].type.is_super(out.type):
        return False
    copy_stack_trace(node.outputs, out)
    return [out]


@node_rewriter([ArgSortOp])
def aot_argsort_permutation(fgraph, node):
    x, axis = node.inputs
    made = x.owner
    if (made is None or not isinstance(made.op, PivotToPermutations) or x.type.ndim != 1
            or getattr(axis, "data", None) is None or int(axis.data) not in (0, -1)):
        return False
    return [PivotToPermutations(inverse=not made.op.inverse)(made.inputs[0])]


class DropShapeFeature(GraphRewriter):
    """Detach ``ShapeFeature`` once no later rewrite reads shapes (see the module's doc)."""

    def apply(self, fgraph) -> None:
        for feature in list(fgraph._features):
            if isinstance(feature, ShapeFeature):
                fgraph.remove_feature(feature)


optdb.register("aot_inline_ofg", dfs_rewriter(aot_inline_ofg), TAG, position=0.5)
optdb.register("aot_tensor_checks", dfs_rewriter(aot_tensor_checks), TAG, position=48.9)
optdb.register("aot_scan_tensor_checks", dfs_rewriter(aot_scan_tensor_checks), TAG,
               position=48.95)  # after the scan pushouts, before add_destroy_handler
optdb.register("aot_constant_masks", dfs_rewriter(aot_constant_masks), TAG,
               position=48.8)  # late: PyTensor's rewrites saw the graph as written
optdb.register("aot_argsort_permutation", dfs_rewriter(aot_argsort_permutation), TAG,
               position=60.5)  # after Blockwise wrappers are removed (60)
optdb.register("aot_drop_shape_feature", DropShapeFeature(), TAG,
               position=49.4)  # after the last shape rewrite, before add_destroy_handler


def probing_rewrites() -> tuple[str, ...]:
    """PyTensor 2.x's sparse ``local_usmm`` (in ``specialize``, registered when PyTensor is
    imported) unless PyTensor tags it ``cxx_only`` (3.x does, so the query drops it already):
    its pattern reads ``config.blas__ldflags``, a C compiler probe of 0.2-0.6 s, on any dense
    ``z - alpha * w`` with a broadcastable ``alpha``, before it looks for a sparse dot.
    Only a registered name may be excluded: excluding an unknown one makes it a tag of
    PyTensor's database, and a later import of ``pytensor.sparse`` (lazy in 3.x) then fails to
    register a rewrite of that name."""
    specialize = optdb.__db__.get("specialize", ())
    specialize = next(iter(specialize), None)
    names = getattr(specialize, "_names", ())
    if "local_usmm" not in names:
        return ()
    usmm, cxx_only = specialize.__db__.get("local_usmm", ()), specialize.__db__.get("cxx_only", ())
    return () if any(r in cxx_only for r in usmm) else ("local_usmm",)
