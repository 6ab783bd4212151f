"""Rewrites only mode AOT applies (tag ``"aotkernels"`` in PyTensor's ``optdb``), so that
what real models leave in a graph runs as kernel steps of a plan.

- ``aot_inline_ofg``: a plain ``OpFromGraph`` (PyTensor leaves some, e.g. the gradient of
  ``AllocDiag``) is replaced by its inner graph before ``specialize``: its nodes then run
  on kernels inside the plan instead of as one Python call into an inner function.
  Subclasses (softmax wrappers and the like) keep their own handling.
- ``aot_tensor_checks``: ``CheckAndRaise`` reads its conditions as scalars, made by
  ``ScalarFromTensor`` nodes whose values are NumPy scalars, which a plan cannot hold;
  ``TensorCheck`` reads the 0-d bool tensors themselves (same exception, same message).
"""

from __future__ import annotations

from pytensor.compile import optdb
from pytensor.compile.builders import OpFromGraph
from pytensor.graph import Apply, node_rewriter
from pytensor.graph.rewriting.basic import dfs_rewriter
from pytensor.raise_op import CheckAndRaise
from pytensor.tensor.basic import ScalarFromTensor, as_tensor_variable
from pytensor.tensor.rewriting.ofg import inline_ofg_node

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
    if type(node.op) is not OpFromGraph:
        return False
    return inline_ofg_node(node)


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


optdb.register("aot_inline_ofg", dfs_rewriter(aot_inline_ofg), TAG, position=1.9)
optdb.register("aot_tensor_checks", dfs_rewriter(aot_tensor_checks), TAG, position=48.9)
