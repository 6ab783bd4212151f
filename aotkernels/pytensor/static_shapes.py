"""Shape inference from static types, while mode AOT rewrites a graph.

PyTensor's rewriting spends much of a cold compile inferring shapes it could read off the
types (a third of the rewriting of a PyMC model's logp and gradient, measured in RESULTS,
"Session 11"):

- ``ShapeFeature.on_import`` asks every imported node's ``infer_shape`` for symbolic
  output shapes (building shape graphs), and then ``set_shape`` throws them away on every
  dimension the output's type already knows, using ``constant(type.shape[i])`` instead.
  For a node whose outputs all have fully static shapes the answer is those constants,
  whatever ``infer_shape`` says: ``on_import`` here writes them directly.
- ``infer_static_shape`` (called by ``Alloc``, ``AllocEmpty``, ``Eye``, ``Reshape`` and
  random variables as they are built) clones the whole ancestry of a symbolic shape into a
  new graph with a ``ShapeFeature`` and rewrites it to constants, 20 ms a call on a GP's
  graph, even when the shape is ``x.shape[0] + 0`` of an ``x`` whose type says 40.
  ``static_value`` folds such expressions from the types alone (``Shape``, ``Shape_i``
  of static dimensions, constants, and the ``Elemwise``/``Subtensor``/scalar conversions
  PyTensor's own constant folding evaluates, by their ``perform``); only when every
  element folds is PyTensor's pass skipped, so the answer is the one it would give.

Both take effect only inside ``rewriting()`` (mode AOT's rewriter enters it, per thread):
other modes in the process keep PyTensor's code. The rewritten graphs are the same node
for node (``tests/test_static_shapes.py`` on generated shape expressions and on PyMC
models).
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager

import numpy as np
import pytensor.tensor.basic as ptb
from pytensor.graph.basic import Constant, Variable
from pytensor.tensor.elemwise import Elemwise
from pytensor.tensor.rewriting.shape import ShapeFeature
from pytensor.tensor.shape import Shape, Shape_i
from pytensor.tensor.subtensor import Subtensor
from pytensor.tensor.type import TensorType

_ACTIVE = threading.local()
_PYTENSOR_ON_IMPORT = ShapeFeature.on_import
_PYTENSOR_INFER_STATIC_SHAPE = ptb.infer_static_shape
#: modules that call ``infer_static_shape`` through their own global of that name
_CALLERS = ("pytensor.tensor.basic", "pytensor.tensor.random.op", "pytensor.tensor.reshape")
#: ops whose value ``static_value`` computes, as PyTensor's constant folding would
_FOLDED = (Elemwise, Subtensor, ptb.ScalarFromTensor, ptb.TensorFromScalar)
_DEPTH = 12


#: how often each shortcut was taken in this process (tests read it)
stats = {"static_imports": 0, "folded_shapes": 0}


def enabled() -> bool:
    """``AOT_STATIC_SHAPES=0`` turns the shortcuts off (PyTensor's own code throughout)."""
    return os.environ.get("AOT_STATIC_SHAPES", "1").strip().lower() not in (
        "0", "false", "no", "off")


@contextmanager
def rewriting():
    """Use the shortcuts in this thread for the duration (re-entrant)."""
    depth = getattr(_ACTIVE, "depth", 0)
    _ACTIVE.depth = depth + enabled()
    try:
        yield
    finally:
        _ACTIVE.depth = depth


def _active() -> bool:
    return getattr(_ACTIVE, "depth", 0) > 0


def on_import(self: ShapeFeature, fgraph, node, reason) -> None:
    """``ShapeFeature.on_import``, without ``infer_shape`` for fully static outputs."""
    outputs = node.outputs
    if (not _active() or outputs[0] in self.shape_of
            or not all(isinstance(o.type, TensorType) and None not in o.type.shape
                       for o in outputs)):
        return _PYTENSOR_ON_IMPORT(self, fgraph, node, reason)
    stats["static_imports"] += 1
    for r in node.inputs:
        self.init_r(r)
    for r in outputs:  # what set_shape stores for static dimensions (its check aside)
        self.shape_of[r] = shape = tuple(ptb.constant(d, dtype="int64") for d in r.type.shape)
        for c in shape:
            self.shape_of_reverse_index.setdefault(c, set()).add(r)


def static_value(var: Variable, depth: int = 0) -> np.ndarray | None:
    """The value of an integer shape expression known from static types alone, else None."""
    if isinstance(var, Constant):
        return np.asarray(var.data)
    node = var.owner
    if node is None or depth > _DEPTH:
        return None
    op = node.op
    if isinstance(op, Shape_i):
        dim = node.inputs[0].type.shape[op.i]
        return None if dim is None else np.asarray(dim, dtype="int64")
    if isinstance(op, Shape):
        shape = node.inputs[0].type.shape
        return None if None in shape else np.asarray(shape, dtype="int64")
    if not isinstance(op, _FOLDED) or len(node.outputs) != 1:
        return None
    values = []
    for inp in node.inputs:
        value = static_value(inp, depth + 1)
        if value is None:
            return None
        values.append(value)
    out = [[None]]
    try:
        op.perform(node, values, out)
    except Exception:
        return None
    return None if out[0][0] is None else np.asarray(out[0][0])


def infer_static_shape(shape):
    """``infer_static_shape``, skipping PyTensor's rewrite when every element folds."""
    if _active() and not isinstance(shape, Variable):
        try:
            sh = [ptb.as_tensor_variable(s, ndim=0) for s in shape]
        except Exception:
            sh = None
        if sh is not None and all(s.type.dtype in ptb.integer_dtypes for s in sh):
            values = [static_value(s) for s in sh]
            if all(v is not None and v.ndim == 0 and v.dtype.kind in "iu" for v in values):
                stats["folded_shapes"] += 1
                return sh, tuple(v.item() for v in values)
    return _PYTENSOR_INFER_STATIC_SHAPE(shape)


def install() -> None:
    """Put the shortcuts in PyTensor's place (once); they act only inside ``rewriting()``."""
    import importlib

    if ShapeFeature.on_import is _PYTENSOR_ON_IMPORT:
        ShapeFeature.on_import = on_import
    for name in _CALLERS:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if getattr(module, "infer_static_shape", None) is _PYTENSOR_INFER_STATIC_SHAPE:
            module.infer_static_shape = infer_static_shape
