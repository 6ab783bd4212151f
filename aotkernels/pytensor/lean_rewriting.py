"""Mode AOT's rewriting with less work: PyTensor's rewrites, the same graphs.

Cold, a model's first result waits mostly on PyTensor rewriting its graph, and much of
that is bookkeeping whose outcome is known without doing it. Each shortcut here gives what
PyTensor's code gives (``tests/test_lean_rewriting.py`` compares them on generated shapes
and graphs, ``tests/test_corpus.py`` whole rewritten PyMC models, node for node; RESULTS,
"Session 11", measures them):

- **Shapes read off static types.** ``ShapeFeature.on_import`` asks every imported node's
  ``infer_shape`` for symbolic output shapes, then ``set_shape`` discards them on every
  dimension the output's type knows, storing ``constant(type.shape[i])``: for outputs
  whose shapes are fully static, ``on_import`` stores those constants directly (copied
  from one per value, ``shape_constant``). ``infer_static_shape`` (``Alloc``,
  ``AllocEmpty``, ``Eye``, ``Reshape`` and random variables call it as they are built)
  clones the whole ancestry of a symbolic shape into a graph with a ``ShapeFeature`` and
  rewrites it to constants, 20 ms a call on a GP's graph, even for ``x.shape[0] + 0`` of an
  ``x`` whose type says 40: ``static_value`` folds such shapes from the types (``Shape``,
  ``Shape_i`` of static dimensions, constants, and the ``Elemwise``/``Subtensor``/scalar
  conversions PyTensor's constant folding evaluates, by their ``perform``); PyTensor's pass
  is skipped only when every element folds.
- **A constant's signature made once.** ``TensorConstant.signature`` builds a new object on
  every call, and comparing or hashing one computes a masked copy of the data and its sum:
  the merge feature and shape checks do it thousands of times per compile. And a new
  signature's sum and equality skip the masked copy (``numpy.ma``, 50-100 us) when the
  data has no NaN: it masks nothing then, so its sum is the data's and equality is
  PyTensor's NaN-free branch; data with NaN, a sum that is not finite, or data that is not
  a plain numeric ``ndarray`` go through PyTensor's code (as does empty data).
- **Each Op class's MRO against a rewriter's tracked types computed once per process**,
  not once per rewriter object (PyTensor queries new rewriters for every compile).
- **Patterns that cannot match skipped before unifying.** A ``PatternNodeRewriter`` (the
  sigmoid/softplus/log1mexp stabilisations, ``-(-x)``) unifies its pattern with each node
  it is offered, 100-300 us a try through ``unification``'s dispatch: where the pattern
  names an Op the node (or an input it nests into) is not, of another class or another
  scalar Op, or where it nests into an input no node computes, unification fails, and
  ``cannot_match`` says so first.
- **In-place replacements validated locally** (``destroy_check``): after
  ``add_destroy_handler`` each try of the in-place passes was a whole-graph orderings
  rebuild and cycle walk; one node made in place on the same inputs is checked where it
  changed, and anything else goes to PyTensor's validation.

They act only inside ``rewriting()``, per thread, which mode AOT's rewriter enters, and
``aotkernels.nutpie.compile_pymc_model`` for the graphs PyMC and nutpie build before they
compile (the gradient's ``Alloc``s and ``broadcast_to``s call ``infer_static_shape``): other
modes in the process keep PyTensor's code; ``AOT_LEAN_REWRITING=0`` turns them off.

Two older ones are not switched: ``quick_validation`` (``rewriting`` applies it) changes how
a failed validation names its caller, not what it does, and ``c_code_read_once`` makes
building a ``DimShuffle`` (rewrites build thousands) stop reading its C file from disk.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
import weakref
from contextlib import contextmanager
from functools import partial

import numpy as np
import pytensor.tensor.basic as ptb
from pytensor.graph.basic import Constant, Variable
from pytensor.graph.features import Validator
from pytensor.graph.op import Op
from pytensor.graph.rewriting.basic import OpToRewriterTracker, PatternNodeRewriter
from pytensor.link.c.op import ExternalCOp
from pytensor.tensor.elemwise import Elemwise
from pytensor.tensor.rewriting.shape import ShapeFeature
from pytensor.tensor.shape import Shape, Shape_i
from pytensor.tensor.subtensor import Subtensor
from pytensor.tensor.type import TensorType
from pytensor.tensor.variable import TensorConstant, TensorConstantSignature

_ACTIVE = threading.local()
_PYTENSOR_ON_IMPORT = ShapeFeature.on_import
_PYTENSOR_INFER_STATIC_SHAPE = ptb.infer_static_shape
_PYTENSOR_SIGNATURE = TensorConstant.signature
_PYTENSOR_SIGNATURE_SUM = TensorConstantSignature.sum
_PYTENSOR_SIGNATURE_EQ = TensorConstantSignature.__eq__
_PYTENSOR_GET_TRACKERS = OpToRewriterTracker._get_trackers
_PYTENSOR_PATTERN_TRANSFORM = PatternNodeRewriter.transform
_PYTENSOR_LOAD_C_CODE = ExternalCOp.load_c_code
#: modules that call ``infer_static_shape`` through their own global of that name
_CALLERS = ("pytensor.tensor.basic", "pytensor.tensor.random.op", "pytensor.tensor.reshape")
#: ops whose value ``static_value`` computes, as PyTensor's constant folding would
_FOLDED = (Elemwise, Subtensor, ptb.ScalarFromTensor, ptb.TensorFromScalar)
_DEPTH = 12
#: one int64 scalar constant per value, copied by ``shape_constant``
_SHAPE_CONSTANTS: dict[int, TensorConstant] = {}
#: constant -> its signature, made while rewriting (an entry goes with its constant)
_SIGNATURES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


#: how often each shortcut was taken in this process (tests read it)
stats = {"static_imports": 0, "folded_shapes": 0}


def enabled() -> bool:
    """``AOT_LEAN_REWRITING=0`` turns the shortcuts off (PyTensor's own code throughout)."""
    return os.environ.get("AOT_LEAN_REWRITING", "1").strip().lower() not in (
        "0", "false", "no", "off")


@contextmanager
def rewriting(fgraph=None):
    """Use the shortcuts in this thread for the duration (re-entrant), and validate
    ``fgraph`` quickly (``quick_validation``)."""
    if fgraph is not None:
        quick_validation(fgraph)
    depth = getattr(_ACTIVE, "depth", 0)
    _ACTIVE.depth = depth + enabled()
    try:
        yield
    finally:
        _ACTIVE.depth = depth


def active() -> bool:
    """Whether the shortcuts act in this thread now (inside ``rewriting()``, not turned off)."""
    return getattr(_ACTIVE, "depth", 0) > 0


def on_import(self: ShapeFeature, fgraph, node, reason) -> None:
    """``ShapeFeature.on_import``, without ``infer_shape`` for fully static outputs."""
    outputs = node.outputs
    if (not active() or outputs[0] in self.shape_of
            or not all(isinstance(o.type, TensorType) and None not in o.type.shape
                       for o in outputs)):
        return _PYTENSOR_ON_IMPORT(self, fgraph, node, reason)
    stats["static_imports"] += 1
    for r in node.inputs:
        self.init_r(r)
    for r in outputs:  # what set_shape stores for static dimensions (its check aside)
        self.shape_of[r] = shape = tuple(shape_constant(d) for d in r.type.shape)
        for c in shape:
            self.shape_of_reverse_index.setdefault(c, set()).add(r)


def shape_constant(dim: int) -> TensorConstant:
    """``constant(dim, dtype="int64")``: a new variable on every call, as ``set_shape`` makes
    it, but copied from one built once per value (building one filters the data, makes its
    type and walks the stack for its trace: 30 us, thousands of times per compile)."""
    template = _SHAPE_CONSTANTS.get(dim)
    if template is None:
        template = _SHAPE_CONSTANTS[dim] = ptb.constant(dim, dtype="int64")
    c = object.__new__(TensorConstant)
    c.__dict__.update(template.__dict__)
    tag = object.__new__(type(template.tag))
    tag.__dict__.update(template.tag.__dict__)
    if "trace" in tag.__dict__:  # its own list: nothing appends to the template's
        tag.__dict__["trace"] = list(tag.__dict__["trace"])
    c.tag, c.auto_name = tag, f"auto_{next(Variable.__count__)}"
    return c


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
    if active() and not isinstance(shape, Variable):
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


def signature(self: TensorConstant):
    """``TensorConstant.signature``, kept for the constant while rewriting (remade if its
    type or data object is replaced), so that its masked copy and sum are computed once.
    Kept beside the constant, not on it, so that it is neither pickled with the graph nor
    copied with the variable."""
    if not active():
        return _PYTENSOR_SIGNATURE(self)
    known = _SIGNATURES.get(self)
    if known is None or known[0] is not self.type or known[1] is not self.data:
        known = _SIGNATURES[self] = _PYTENSOR_SIGNATURE(self)
    return known


def _plain_numbers(data) -> bool:
    """Non-empty numbers in a plain array (PyTensor's sum of an empty one is the int 0)."""
    return type(data) is np.ndarray and data.dtype.kind in "biuf" and data.size > 0


def _has_nan(sig: TensorConstantSignature) -> bool:
    """``sig.has_nan`` as PyTensor's ``no_nan`` sets it, without the masked array."""
    known = sig.__dict__.get("has_nan")
    if known is None:
        known = sig.has_nan = bool(np.isnan(sig[1]).any())
    return known


def signature_sum(self: TensorConstantSignature):
    """``TensorConstantSignature.sum``: for NaN-free numbers, the data's sum, which is what
    PyTensor's sum of its masked copy gives when nothing is masked (``filled`` returns the
    data itself, so the reduction is the same); PyTensor's otherwise."""
    if not active() or "_sum" in self.__dict__ or not _plain_numbers(self[1]):
        return _PYTENSOR_SIGNATURE_SUM.fget(self)
    data = self[1]
    if data.dtype.kind == "f":
        with np.errstate(all="ignore"):
            total = data.sum()
        if not np.isfinite(total):  # a NaN, or infinities PyTensor's sum leaves out
            return _PYTENSOR_SIGNATURE_SUM.fget(self)
    else:
        total = data.sum()
    self._sum = total
    return total


def signature_eq(self: TensorConstantSignature, other) -> bool:
    """``TensorConstantSignature.__eq__``, its NaN-free branch taken without building the
    masked copy that only tells it there are no NaNs."""
    if (not active() or type(self) is not type(other) or not _plain_numbers(self[1])
            or _has_nan(self)):
        return _PYTENSOR_SIGNATURE_EQ(self, other)
    (t0, d0), (t1, d1) = self, other
    if t0 != t1 or d0.shape != d1.shape:
        return False
    return bool(self.sum == other.sum) and bool(np.all(d0 == d1))


@functools.cache
def _composed_mro(op_type: type, tracked: frozenset) -> list:
    return functools._compose_mro(op_type, tracked)


def _get_trackers(self: OpToRewriterTracker, op) -> list:
    """``OpToRewriterTracker._get_trackers`` with its MRO cache shared by every tracker of
    the same tracked types (PyTensor's lives and dies with one rewriter object)."""
    if active() and self._cached_composed_mro is None:
        tracked = frozenset(self.tracked_types.keys() | self.tracked_pattern_types.keys())
        self._cached_composed_mro = partial(_composed_mro, tracked=tracked)
    return _PYTENSOR_GET_TRACKERS(self, op)


def cannot_match(pattern, var) -> bool:
    """True if unifying ``pattern`` (a ``PatternNodeRewriter``'s, as converted) with
    ``var`` surely fails: the pattern is ``(op, *args)`` with ``op`` an Op, and ``var`` has
    no owner, or its owner's Op is not ``op`` and is of another class (or, for
    ``Elemwise``, has another class of scalar Op), or an argument cannot match the input
    at its position. Anything else (variables, constraints, constants, ``OpPattern``) may
    match: False."""
    items = getattr(pattern, "_tuple", None)
    if type(items) is not tuple or not items or not isinstance(items[0], Op):
        return False
    node = var.owner
    if node is None:
        return True
    head, op = items[0], node.op
    if op is not head and not op == head:
        if type(op) is not type(head):
            return True
        if isinstance(op, Elemwise):
            scalar, wanted = op.scalar_op, head.scalar_op
            if type(scalar) is not type(wanted) and not scalar == wanted:
                return True
    args = items[1:]
    return len(args) == len(node.inputs) and any(
        cannot_match(a, i) for a, i in zip(args, node.inputs))


def pattern_transform(self: PatternNodeRewriter, fgraph, node, enforce_tracks=False,
                      get_nodes=True):
    """``PatternNodeRewriter.transform``, each node it tries skipped where ``cannot_match``
    (the loop over ``get_nodes`` is PyTensor's, in its order)."""
    if not active():
        return _PYTENSOR_PATTERN_TRANSFORM(self, fgraph, node, enforce_tracks, get_nodes)
    if get_nodes and self.get_nodes is not None:
        for real_node in self.get_nodes(fgraph, node):
            ret = self.transform(fgraph, real_node, get_nodes=False)
            if ret is not False and ret is not None:
                return dict(zip(real_node.outputs, ret, strict=True))
    if len(node.outputs) == 1 and cannot_match(self.in_pattern, node.outputs[0]):
        return False
    return _PYTENSOR_PATTERN_TRANSFORM(self, fgraph, node, enforce_tracks, False)


#: PyTensor's validation method (2.38: ``validate_``, 3.0: ``validate``) and the callback it runs
if hasattr(Validator, "validate_"):
    _PYTENSOR_VALIDATE, _CALLBACK = Validator.validate_, "validate"
else:
    _PYTENSOR_VALIDATE, _CALLBACK = Validator.validate, "on_validate"


def _validate(fgraph):
    """PyTensor's ``Validator`` validation but for one call: where a failed validation asks
    ``inspect.getframeinfo`` for its caller's name, which reads the caller's source and, the
    first time, resolves the file of every module loaded (80 ms with PyMC loaded, then 6 ms
    per failure), this reads the name off the frame. Inplace rewrites fail validations
    routinely: about 0.1 s of a PyMC model's cold compile."""
    t0 = time.perf_counter()
    try:
        ret = fgraph.execute_callbacks(_CALLBACK)
    except Exception as e:
        caller = sys._getframe(1)
        if caller.f_code.co_name != "replace_all_validate" and caller.f_locals.get("verbose"):
            print(f"validate failed on node {caller.f_locals.get('r', '')}.\n"  # noqa: T201
                  f" Reason: {caller.f_code.co_name}, {e}")
        raise
    if fgraph.profile:
        fgraph.profile.validate_time += time.perf_counter() - t0
    return ret


def quick_validation(fgraph) -> None:
    """Make ``fgraph.validate`` ``_validate`` where it is PyTensor's ``Validator``'s."""
    validate = getattr(fgraph, "validate", None)
    if (isinstance(validate, partial) and validate.args == (fgraph,)
            and getattr(validate.func, "__func__", None) is _PYTENSOR_VALIDATE):
        fgraph.validate = partial(_validate, fgraph)


#: (ExternalCOp class, its C files) -> (the files' text, their sections), read once
_C_CODE: dict[tuple, tuple[list[str], dict[str, str]]] = {}


def _load_c_code_once(self, func_files) -> None:
    """``ExternalCOp.load_c_code`` read once per class and files: PyTensor reads and
    regex-splits the Op's C file in every constructor, and ``DimShuffle`` is one (a
    canonicalize pass builds hundreds: 0.3-0.5 ms each, 5% of a cold PyMC compile). Each
    Op gets its own copies, as before; a failing read is not remembered."""
    key = (type(self), tuple(func_files))
    known = _C_CODE.get(key)
    if known is None:
        _PYTENSOR_LOAD_C_CODE(self, func_files)
        _C_CODE[key] = (list(self.func_codes), dict(self.code_sections))
        return
    self.func_codes.extend(known[0])
    self.code_sections.update(known[1])


#: name -> (class, attribute, PyTensor's, the shortcut): what ``install`` swaps (benchmarks
#: swap single ones back to measure them)
SWAPS = {
    "c_code": (ExternalCOp, "load_c_code", _PYTENSOR_LOAD_C_CODE, _load_c_code_once),
    "shapes": (ShapeFeature, "on_import", _PYTENSOR_ON_IMPORT, on_import),
    "signature": (TensorConstant, "signature", _PYTENSOR_SIGNATURE, signature),
    "signature_sum": (TensorConstantSignature, "sum", _PYTENSOR_SIGNATURE_SUM,
                      property(signature_sum)),
    "signature_eq": (TensorConstantSignature, "__eq__", _PYTENSOR_SIGNATURE_EQ, signature_eq),
    "trackers": (OpToRewriterTracker, "_get_trackers", _PYTENSOR_GET_TRACKERS, _get_trackers),
    "patterns": (PatternNodeRewriter, "transform", _PYTENSOR_PATTERN_TRANSFORM,
                 pattern_transform),
}


def swap_in(swaps: dict) -> None:
    """Each ``(class, attribute, PyTensor's, ours)`` of ``swaps`` set to ours where the
    class still holds PyTensor's (so a second call, or a benchmark's swap, is left alone)."""
    for owner, attr, plain, ours in swaps.values():
        if owner.__dict__.get(attr) is plain:
            setattr(owner, attr, ours)


def install() -> None:
    """Put the shortcuts in PyTensor's place (once per process; the file contents
    ``_load_c_code_once`` keeps cannot change under a running process). All but that one
    act only inside ``rewriting()``."""
    import importlib

    swap_in(SWAPS)
    for name in _CALLERS:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if getattr(module, "infer_static_shape", None) is _PYTENSOR_INFER_STATIC_SHAPE:
            module.infer_static_shape = infer_static_shape
