"""Generated graphs, not only generated operands: mode AOT against PyTensor's Python linker.

Hypothesis draws the *structure* of a graph: 2-5 inputs with random static shapes (``None``,
``1`` or a size per dimension, ranks that broadcast together), random dtypes, a random tree
of n-ary add/mul, binary ops (maximum, minimum, sub, true_div, pow, arctan2, mod), unary ops
(exp, log1p, sigmoid, abs, sign, neg, sqrt, tanh, erf, softplus, floor, gammaln, expm1) and
comparisons with switch, then optionally a tail on its result: a reduction (keepdims or
not), basic or advanced indexing (an input index vector, one per dimension for points), a
join or a block diagonal with a second tree, an alloc, a slice set or incremented,
cumsum/cumprod/sort/argmax along an axis, softmax/log_softmax/logsumexp, a product with its
own transpose, a transposed, flattened or reversed view; and the gradients of scalar-valued
float graphs. Each graph is compiled in mode AOT and with the Python linker under the same
rewrites, and called as a user would: three calls of one input geometry (recorded, then
planned and replayed from C), bad inputs three times (an index out of range has the good
geometry, so a plan replays it; another size for an input is a geometry of its own, refused
unless it broadcasts), a good call again, a second geometry (other sizes where the types
allow; strided, reversed and Fortran-order inputs), and a copy made by pickling. Every call
must give what the Python linker gives: the same results (zeros with the same sign), or the
same exception class.
``AOT_GRAPH_EXAMPLES=N`` draws N graphs (and N/2 gradients) instead of CI's 80 and 40.

Only public entry points: mode "AOT" registered by importing ``aotkernels.pytensor_mode``.
``tests/test_pytensor2.py`` runs this file again on PyTensor 2.38.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

pytensor = pytest.importorskip("pytensor")
pt = pytest.importorskip("pytensor.tensor")
am = pytest.importorskip("aotkernels.pytensor")  # registers mode "AOT"

from pytensor.compile.mode import Mode  # noqa: E402
from pytensor.graph import ancestors  # noqa: E402
from pytensor.graph.rewriting.db import RewriteDatabaseQuery  # noqa: E402

#: the reference: PyTensor's Python linker (every node's ``perform``) after the rewrites
#: mode AOT applies (fast_run and its own, without fusion, which AOTLinker declares
#: incompatible): the same graph, so the same node fails first on bad input
REF = Mode(linker="py", optimizer=RewriteDatabaseQuery(include=["fast_run", "aotkernels"])
           ).excluding("fusion", "local_careduce_fusion")

SETTINGS = dict(deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=list(HealthCheck))

EXAMPLES = int(os.environ.get("AOT_GRAPH_EXAMPLES", "80"))
FLOATS = ("float64", "float32")
DTYPES = (*FLOATS, "int64", "int32", "bool")
SIZES = (1, 2, 3, 5, 1, 2, 3, 5, 0)  # an empty dimension now and then


# -- the cases --------------------------------------------------------------------------------

@dataclass
class Leaf:
    var: object
    dtype: str
    static: tuple  # per dimension: None, 1, or the size it must have


@dataclass
class Index:
    """An integer index-vector input ``var`` into ``axis`` of the tree's result."""
    var: object
    axis: int
    length: int


@dataclass
class Case:
    rank: int  # of the elementwise tree's result
    sizes: tuple  # the result's sizes where not broadcast (geometry 0)
    leaves: list
    indices: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    text: list = field(default_factory=list)

    @property
    def inputs(self) -> list:
        return [leaf.var for leaf in self.leaves] + [i.var for i in self.indices]

    def free(self) -> list[bool]:
        """Result dimensions whose size no input type fixes (another geometry may change it)."""
        free = [True] * self.rank
        for leaf in self.leaves:
            off = self.rank - len(leaf.static)
            for j, s in enumerate(leaf.static):
                if s is not None and s != 1:
                    free[off + j] = False
        return free

    def shape(self, leaf: Leaf, sizes) -> tuple:
        off = self.rank - len(leaf.static)
        return tuple(1 if s == 1 else sizes[off + j] for j, s in enumerate(leaf.static))

    def result_shape(self, sizes) -> tuple:
        return np.broadcast_shapes(*(self.shape(leaf, sizes) for leaf in self.leaves))

    def values(self, sizes, seed: int, strided: bool = False, shapes=None) -> list:
        """Input values for a geometry; ``shapes`` overrides some leaves' shapes."""
        rng = np.random.default_rng(seed)
        vals = []
        for k, leaf in enumerate(self.leaves):
            shape = (shapes or {}).get(k) or self.shape(leaf, sizes)
            layout = LAYOUTS[(seed + k) % len(LAYOUTS)] if strided else "contiguous"
            vals.append(_array(rng, shape, leaf.dtype, layout))
        res = self.result_shape(sizes)
        for ix in self.indices:
            n = res[ix.axis]  # an empty axis has no valid index: every mode refuses
            i = rng.integers(-n, n, ix.length) if n else np.zeros(ix.length)
            vals.append(i.astype(ix.var.type.dtype))
        return vals

    def describe(self) -> str:
        ins = [f"{leaf.var.name}: {leaf.dtype}{list(leaf.static)}" for leaf in self.leaves]
        ins += [f"{i.var.name}: {i.var.type.dtype} index into axis {i.axis}" for i in self.indices]
        return f"inputs {', '.join(ins)}; sizes {self.sizes}; " + "; ".join(self.text)


LAYOUTS = ("every other", "reversed", "fortran", "contiguous")


def _array(rng, shape, dtype: str, layout: str = "contiguous") -> np.ndarray:
    if layout == "every other" and shape:  # a view with twice the last axis' stride
        return _array(rng, (*shape[:-1], 2 * shape[-1]), dtype)[..., ::2]
    if layout == "reversed":  # negative strides
        return _array(rng, shape, dtype)[(slice(None, None, -1),) * len(shape)]
    if layout == "fortran":
        return np.asfortranarray(_array(rng, shape, dtype))
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype in FLOATS:
        return rng.uniform(-2, 2, shape).astype(dtype)
    return rng.integers(-3, 4, shape).astype(dtype)


def _arith(v):
    """Bools are not numbers for sub/true_div/abs (PyTensor refuses some): as int8."""
    return pt.cast(v, "int8") if v.dtype == "bool" else v


def _float(v):
    return v if v.dtype in FLOATS else pt.cast(v, "float64")


UNARY = {"exp": pt.exp, "log1p": pt.log1p, "sigmoid": pt.sigmoid,
         "abs": lambda v: pt.abs(_arith(v)), "sign": lambda v: pt.sign(_arith(v)),
         "neg": lambda v: -_arith(v), "sqrt": lambda v: pt.sqrt(_float(v)),  # nan below 0
         "tanh": lambda v: pt.tanh(_float(v)), "erf": lambda v: pt.erf(_float(v)),
         "softplus": lambda v: pt.softplus(_float(v)), "floor": lambda v: pt.floor(_arith(v)),
         # gammaln(-inf) is +inf in PyTensor's C and Numba backends (and here), -inf in its
         # Python perform (SciPy's): kept off -inf (README, "Semantics")
         "gammaln": lambda v: pt.gammaln(pt.abs(_float(v)) + 0.5),
         "expm1": lambda v: pt.expm1(_float(v)), "trunc": lambda v: pt.trunc(_arith(v)),
         "deg2rad": lambda v: pt.deg2rad(_arith(v)), "rad2deg": lambda v: pt.rad2deg(_arith(v)),
         "round_away": lambda v: pt.round(_float(v), mode="half_away_from_zero")}
BINARY = {"sub": lambda a, b: _arith(a) - _arith(b),
          "true_div": lambda a, b: pt.true_div(_arith(a), _arith(b)),
          "pow": lambda a, b: pt.abs(_arith(a)) ** _float(b),  # no int ** negative int
          "maximum": pt.maximum, "minimum": pt.minimum,
          "arctan2": lambda a, b: pt.arctan2(_float(a), _float(b)),
          "mod": lambda a, b: pt.mod(_float(a), _float(b))}  # integer x % 0 raises in C
NARY = {"add": pt.add, "mul": pt.mul}
COMPARE = {"gt": pt.gt, "le": pt.le, "eq": pt.eq, "neq": pt.neq}


@st.composite
def tree(draw, pool: list):
    """Combine ``(var, text)`` pairs until one is left: every input takes part, and the
    first n-ary nodes get inputs directly, with their broadcast patterns."""
    pool = list(pool)
    while len(pool) > 1 or draw(st.integers(0, 3)) == 0:
        kind = draw(st.sampled_from(["nary", "nary", "binary", "switch", "unary", "const"]))
        if len(pool) == 1:
            kind = draw(st.sampled_from(["unary", "const"]))
        k = {"nary": draw(st.integers(2, min(4, len(pool)))) if len(pool) > 1 else 1,
             "binary": 2, "switch": min(3, len(pool)), "unary": 1, "const": 1}[kind]
        picks = draw(st.permutations(range(len(pool))))[:k]
        args = [pool[i] for i in picks]
        pool = [p for i, p in enumerate(pool) if i not in picks]
        vs, ts = [a[0] for a in args], [a[1] for a in args]
        if kind == "nary":
            name = draw(st.sampled_from(sorted(NARY)))
            made = (NARY[name](*vs), f"{name}({', '.join(ts)})")
        elif kind == "binary":
            name = draw(st.sampled_from(sorted(BINARY)))
            made = (BINARY[name](*vs), f"{name}({ts[0]}, {ts[1]})")
        elif kind == "switch":
            name = draw(st.sampled_from(sorted(COMPARE)))
            a, b = vs[0], vs[1]
            c = vs[2] if len(vs) > 2 else vs[0]
            made = (pt.switch(COMPARE[name](a, b), b, c),
                    f"switch({name}({ts[0]}, {ts[1]}), {ts[1]}, {ts[-1]})")
        elif kind == "unary":
            name = draw(st.sampled_from(sorted(UNARY)))
            made = (UNARY[name](vs[0]), f"{name}({ts[0]})")
        else:
            c = draw(st.sampled_from([2, 0.5]))
            made = (vs[0] * c, f"{ts[0]} * {c}") if draw(st.booleans()) else (
                vs[0] + c, f"{ts[0]} + {c}")
        pool.append(made)
    return pool[0]


@st.composite
def leaves(draw, floats_only: bool = False):
    """2-5 inputs whose static shapes broadcast together, and the sizes of their result."""
    rank = draw(st.integers(1, 3))
    sizes = tuple(draw(st.sampled_from(SIZES)) for _ in range(rank))
    n = draw(st.integers(2, 5))
    out = []
    for k in range(n):
        r = rank if k == 0 else draw(st.integers(1, rank))  # one of full rank
        static = tuple(draw(st.sampled_from([None, 1, sizes[rank - r + j]]))
                       for j in range(r))
        dtype = draw(st.sampled_from(FLOATS if floats_only and k == 0 else DTYPES))
        out.append(Leaf(pt.tensor(f"x{k}", dtype=dtype, shape=static), dtype, static))
    return Case(rank, sizes, out)


@st.composite
def with_tail(draw, case: Case, y, text: str, tails=None):
    """``y`` (the tree's result) and a tail applied to it: (outputs, description)."""
    tail = draw(st.sampled_from(tails or ["none", "reduce", "slice", "take", "points", "join",
                                          "alloc", "set", "scan_axis", "rows", "product",
                                          "layout", "block"]))
    r = case.rank
    event(f"tail: {tail if tail not in ('points', 'block') or r >= 2 else 'none'}")
    if tail == "reduce":
        name = draw(st.sampled_from(["sum", "max", "prod"]))
        axes = draw(st.none() | st.lists(st.integers(0, r - 1), min_size=1, max_size=r,
                                         unique=True).map(tuple))
        keep = draw(st.booleans())
        return getattr(pt, name)(y, axis=axes, keepdims=keep), (
            f"{name}({text}, axis={axes}, keepdims={keep})")
    if tail == "slice":
        axis = draw(st.integers(0, r - 1))
        sl = draw(st.sampled_from([slice(1, None), slice(None, None, -1), slice(None, None, 2),
                                   0, -1]))
        key = (slice(None),) * axis + (sl,)
        return y[key], f"{text}[{key}]"
    if tail == "take":
        dtype = draw(st.sampled_from(["int64", "int32"]))
        ix = Index(pt.vector(f"i{len(case.indices)}", dtype=dtype), 0,
                   draw(st.integers(1, 4)))
        case.indices.append(ix)
        return y[ix.var], f"{text}[{ix.var.name}]"
    if tail == "points" and r >= 2:
        length = draw(st.integers(1, 4))
        dtype = draw(st.sampled_from(["int64", "int32"]))
        ixs = [Index(pt.vector(f"i{len(case.indices) + a}", dtype=dtype), a, length)
               for a in range(2)]
        case.indices += ixs
        return y[ixs[0].var, ixs[1].var], f"{text}[i0, i1]"
    if tail == "block" and r == 2:  # block_diag of y and another tree's transpose
        other, other_text = draw(tree([(leaf.var, leaf.var.name) for leaf in case.leaves]))
        return pt.linalg.block_diag(y, other.T), f"block_diag({text}, {other_text}.T)"
    if tail == "join":
        other, other_text = draw(tree([(leaf.var, leaf.var.name) for leaf in case.leaves]))
        axis = draw(st.integers(0, r - 1))
        return pt.concatenate([y, other], axis=axis), f"join({axis}, {text}, {other_text})"
    if tail == "set":  # a slice of y set or incremented: an in-place candidate
        axis = draw(st.integers(0, r - 1))
        key = (slice(None),) * axis + (slice(1, None),)
        how = draw(st.sampled_from(["set", "inc"]))
        fn = pt.set_subtensor if how == "set" else pt.inc_subtensor
        return fn(y[key], 2), f"{how}_subtensor({text}[{key}], 2)"
    if tail == "scan_axis":  # the axis family: cumulative sums and products, sorts, argmax
        axis = draw(st.integers(0, r - 1))
        name = draw(st.sampled_from(["cumsum", "cumprod", "sort", "argmax"]))  # no argsort:
        # its order of ties is NumPy's SIMD quicksort's there (README, "argsort")
        return getattr(pt, name)(y, axis=axis), f"{name}({text}, axis={axis})"
    if tail == "rows":  # row-wise float reductions through exp
        axis = draw(st.integers(0, r - 1))
        name = draw(st.sampled_from(["softmax", "log_softmax", "logsumexp"]))
        fn = getattr(pt.special, name, None) or getattr(pt, name)
        return fn(_float(y), axis=axis), f"{name}({text}, axis={axis})"
    if tail == "product":  # BLAS: y with its own transpose, maybe scaled (2-d: Dot22Scalar)
        v = _float(y)
        c = draw(st.sampled_from([1, 2, -0.5]))
        if r == 1:
            out, out_text = pt.dot(v, v), f"dot({text}, {text})"
        elif r == 2:
            out, out_text = pt.dot(v, v.T), f"dot({text}, {text}.T)"
        else:
            out, out_text = pt.matmul(v, v.transpose(0, 2, 1)), f"matmul({text}, {text}.mT)"
        return (out, out_text) if c == 1 else (c * out, f"{c} * {out_text}")
    if tail == "layout":  # views the kernels read through
        how = draw(st.sampled_from(["transpose", "flatten", "reverse_all"]))
        if how == "transpose":
            return y.T, f"{text}.T"
        if how == "flatten":
            return y.flatten(), f"flatten({text})"
        return y[(slice(None, None, -1),) * r], f"{text}[::-1, ...]"
    if tail == "alloc":
        how = draw(st.sampled_from(["alloc", "broadcast_to", "zeros"]))
        if how == "alloc":
            return pt.alloc(y, 2, *y.shape), f"alloc({text}, 2, *shape)"
        if how == "broadcast_to":  # size-1 dimensions of the result grow to 4
            shape = [4 if n == 1 else y.shape[d] for d, n in enumerate(y.type.shape)]
            return pt.broadcast_to(y, shape), f"broadcast_to({text}, {shape})"
        return pt.zeros((3, *y.shape), dtype=y.dtype) + y, f"zeros((3, *shape)) + {text}"
    return y, text


@st.composite
def graphs(draw):
    case = draw(leaves())
    y, text = draw(tree([(leaf.var, leaf.var.name) for leaf in case.leaves]))
    out, out_text = draw(with_tail(case, y, text))
    case.outputs = [out, y] if out is not y and draw(st.booleans()) else [out]
    case.text = [out_text] + ([f"and {text}"] if len(case.outputs) > 1 else [])
    return case


@st.composite
def gradients(draw):
    """A scalar cost of float inputs (and maybe others), and its gradient w.r.t. the float
    inputs: inc_subtensor, n-ary adds of broadcast gradients, reductions of broadcast axes."""
    case = draw(leaves(floats_only=True))
    y, text = draw(tree([(leaf.var, leaf.var.name) for leaf in case.leaves]))
    y = _float(y)
    out, out_text = draw(with_tail(case, y, text,
                                   ["none", "reduce", "slice", "take", "points", "join",
                                    "set", "rows", "product", "layout", "block"]))
    cost = pt.sum(out * out) if draw(st.booleans()) else pt.sum(out)
    wrt = [leaf.var for leaf in case.leaves if leaf.dtype in FLOATS]
    case.outputs = [cost, *pytensor.grad(cost, wrt)]
    case.text = [f"grad of sum({out_text}) w.r.t. {[v.name for v in wrt]}"]
    return case


# -- running them ---------------------------------------------------------------------------

def _close(got, want, single: bool = False, zeros: bool = True, half: bool = False) -> None:
    """Exact for integers and bools; floats within their precision, float32's wherever a
    float32 value took part (a float64 result of float32 sums carries their rounding),
    float16's where the Python linker computed one in float16 (``_half``), and (``zeros``)
    the sign of every zero both give."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    if want.dtype.kind != "f":
        np.testing.assert_array_equal(got, want)
        return
    finite = np.abs(want[np.isfinite(want)])
    scale = float(finite.max(initial=1.0))
    if half:
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-3 * scale)
    elif want.dtype == np.float32 or single:
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * scale)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-12 * scale)
    if zeros:
        both = (got == 0) & (want == 0)
        np.testing.assert_array_equal(np.signbit(got[both]), np.signbit(want[both]),
                                      err_msg="signs of zeros")


def _zeros_defined(outputs) -> bool:
    """Whether the Python linker fixes the sign of every zero the graph can give: not where
    a max or min reduction meets 0.0 and -0.0 (which one NumPy's SIMD loops keep depends on
    their order), nor a sort (NumPy's quicksort orders equal 0.0 and -0.0 as it likes), nor
    an ``Alloc`` (its ``perform`` fills a new array of -0.0 with 0.0, PyTensor's C code
    and a reused array with -0.0), nor an ``add`` of three or more inputs (its ``perform``
    is Python's ``sum``, which starts from the integer 0: -0.0 + -0.0 + -0.0 is 0.0 there,
    -0.0 in PyTensor's C and Numba code and here)."""
    from pytensor.scalar import Add, ScalarMaximum, ScalarMinimum
    from pytensor.tensor.basic import Alloc
    from pytensor.tensor.elemwise import CAReduce, Elemwise

    for v in ancestors(outputs):
        op = getattr(v.owner, "op", None)
        if isinstance(op, CAReduce) and isinstance(op.scalar_op, (ScalarMaximum,
                                                                  ScalarMinimum)):
            return False
        if isinstance(op, Alloc) or type(op).__name__ == "SortOp":
            return False
        if (isinstance(op, Elemwise) and isinstance(op.scalar_op, Add)
                and len(v.owner.inputs) > 2):
            return False
    return True


def _half(outputs) -> bool:
    """A float32 result computed from bool or 8-bit inputs only: PyTensor's ``perform``
    calls NumPy's ufunc on them, which picks its float16 loop (``softplus(True)`` is
    1.3135 there), where PyTensor's C and Numba code, and mode AOT, compute in float32
    (1.31326)."""
    from pytensor.tensor.elemwise import Elemwise

    for v in ancestors(outputs):
        node = v.owner
        if (node is not None and isinstance(node.op, Elemwise) and v.type.dtype == "float32"
                and all(getattr(i.type, "dtype", "") in ("bool", "int8", "uint8")
                        for i in node.inputs)):
            return True
    return False


def _outcome(fn, vals):
    """(exception class or None, copies of the results)."""
    try:
        out = fn(*vals)
    except Exception as exc:
        return type(exc), str(exc).splitlines()[0][:300]
    return None, [np.array(o, copy=True) for o in out]


def _show(outcome) -> str:
    exc, res = outcome
    if exc is not None:
        return f"raised {exc.__name__}: {res}"
    return "returned " + ", ".join(f"{r.dtype}{list(r.shape)}" for r in res)


def _single(outputs) -> bool:
    """A float32 value takes part in computing ``outputs``."""
    return any(getattr(v.type, "dtype", None) == "float32" for v in ancestors(outputs))


def _same(fn, ref, vals, what: str):
    """Both functions give the same results or raise the same exception class (or a
    subclass: CastError is a ValueError and an OverflowError); returns that class or None."""
    got, want = _outcome(fn, vals), _outcome(ref, vals)
    if want[0] is not None or got[0] is not None:
        assert got[0] is not None and want[0] is not None and issubclass(got[0], want[0]), (
            f"{what}: mode AOT {_show(got)}, Python linker {_show(want)}")
        return want[0]
    single = _single(fn.maker.fgraph.outputs)
    zeros = _zeros_defined(fn.maker.fgraph.outputs)
    half = _half(fn.maker.fgraph.outputs)
    for g, w, v in zip(got[1], want[1], fn.maker.fgraph.outputs):
        declared = v.type.dtype
        if w.dtype != declared and g.dtype == declared and w.dtype.kind == g.dtype.kind:
            # PyTensor's own result breaks its type: a cumsum of int32 is int64 in every
            # backend (np.cumsum's rule), the graph says int32, and mode AOT keeps the type
            w = w.astype(declared)
        _close(g, w, single, zeros, half)
    return None


def _bad_inputs(case: Case, seed: int) -> list[tuple[str, list]]:
    """Inputs every mode should refuse: an index out of range (the good geometry), and a
    leaf whose unfixed dimension has another size (a geometry of its own)."""
    bad = []
    res = case.result_shape(case.sizes)
    if case.indices:
        vals = case.values(case.sizes, seed)
        k = len(case.leaves) + seed % len(case.indices)
        ix = case.indices[k - len(case.leaves)]
        vals[k] = vals[k].copy()
        vals[k][-1] = res[ix.axis] if seed % 2 else -res[ix.axis] - 1
        bad.append(("index out of range", vals))
    for k, leaf in enumerate(case.leaves):
        off = case.rank - len(leaf.static)
        dims = [j for j, s in enumerate(leaf.static) if s is None]
        if dims:
            j = dims[seed % len(dims)]
            shape = list(case.shape(leaf, case.sizes))
            shape[j] = 1 if case.sizes[off + j] > 1 else 3
            bad.append((f"another shape of an input: x{k} {tuple(shape)}",
                        case.values(case.sizes, seed, shapes={k: tuple(shape)})))
            break
    return bad


def _by_design(node) -> bool:
    """Nodes mode AOT leaves on PyTensor's ``perform`` on purpose: indexing data of a dtype
    the index table does not ship (bool, int8, uint8: README, "Rows by index"), and a
    cumulative op of bools (typed bool, while NumPy's result, which perform returns, is
    int64: no kernel can give both)."""
    from aotkernels.kernels.index_ops import INDEX_OPS

    name, dtype = type(node.op).__name__, node.inputs[0].type.dtype
    return ((name.startswith("Advanced") and dtype not in INDEX_OPS["take"].dtypes)
            or (name == "CumOp" and dtype == "bool"))


def _on_perform(f) -> list[str]:
    """Nodes on PyTensor's ``perform`` that should run on kernels or be views: a rewrite of
    PyTensor's making an Op or a dtype no server takes (``Dot22Scalar``, ``Sum`` into a
    wider dtype, until session 17) fails the generated graphs here."""
    nodes = {str(n): n for n in f.maker.linker.nodes}  # rows of inner graphs name no node
    return [text for text, source in am.coverage(f)
            if source == "pytensor" and not (text in nodes and _by_design(nodes[text]))]


def check(case: Case, seed: int = 0) -> None:
    note(case.describe())
    f = pytensor.function(case.inputs, case.outputs, mode="AOT")
    ref = pytensor.function(case.inputs, case.outputs, mode=REF)
    raised = [_same(f, ref, case.values(case.sizes, seed + k), f"call {k}")
              for k in range(3)]  # recorded, planned, replayed
    if not any(raised):  # a node whose perform refuses good inputs (bool += int8) keeps it
        assert not _on_perform(f), _on_perform(f)
    for what, vals in _bad_inputs(case, seed):
        for k in range(3):  # a first call and replays must refuse alike
            exc = _same(f, ref, vals, f"{what}, call {k}")
        event(f"{what.split(':')[0]}: {exc.__name__ if exc else 'accepted'}")
    _same(f, ref, case.values(case.sizes, seed + 3), "a good call after bad ones")
    free = case.free()
    event(f"geometry 2 changes sizes: {any(free)}")
    other = tuple(n + 1 if fr else n for n, fr in zip(case.sizes, free))
    for k in range(3):  # another geometry: other sizes where the types allow, strided inputs
        _same(f, ref, case.values(other, seed + 10 + k, strided=True), f"geometry 2, call {k}")
    try:
        pickle.dumps(ref)
    except Exception:
        # PyTensor's own limit, in every mode: once an n-ary Elemwise without a NumPy ufunc
        # of its arity has run ``perform``, its node's tag holds an np.frompyfunc ufunc
        # (Elemwise.prepare_node), which does not pickle
        event("pickle: the Python linker's function does not pickle either")
        return
    copy = pickle.loads(pickle.dumps(f))
    for k in range(2):
        _same(copy, ref, case.values(case.sizes, seed + 20 + k), f"unpickled, call {k}")


@pytest.mark.usefixtures("aot_lib")
@settings(max_examples=EXAMPLES, **SETTINGS)
@given(graphs(), st.integers(0, 2**16))
def test_generated_graphs(case, seed):
    check(case, seed)


@pytest.mark.usefixtures("aot_lib")
@settings(max_examples=EXAMPLES // 2, **SETTINGS)
@given(gradients(), st.integers(0, 2**16))
def test_generated_gradients(case, seed):
    check(case, seed)


# -- the bugs these graphs found, as small fixed cases ----------------------------------------

def _modes(inputs, outputs):
    return (pytensor.function(inputs, outputs, mode="AOT"),
            pytensor.function(inputs, outputs, mode=REF))


def test_nary_elemwise_whose_first_operands_broadcast_to_less(aot_lib):
    """mul(a, b, c) with a, b of shape (1,) and c of (400,): the pairwise steps' first
    result is smaller than the output."""
    a, b = pt.vector("a", shape=(1,)), pt.vector("b", shape=(1,))
    c = pt.vector("c", shape=(400,))
    f, ref = _modes([a, b, c], [a * b * c, pt.add(a, b, c), pt.add(c, a, b)])
    for k in range(3):
        vals = [np.full(1, 2.0 + k), np.full(1, 3.0), np.linspace(0, 1, 400)]
        _same(f, ref, vals, f"call {k}")


def test_replayed_index_errors_stay_index_errors(aot_lib):
    """``n[idx]`` with an index out of range raises IndexError on every call, the plan's
    replays included."""
    from pytensor import shared

    idx = pt.lvector("idx")
    n = shared(np.arange(3.0).reshape(1, 3), shape=(1, None))
    f = pytensor.function([idx], n[idx], mode="AOT")
    for _ in range(2):
        np.testing.assert_array_equal(f(np.array([0, 0])), np.zeros((2, 3)) + np.arange(3.0))
    for _ in range(3):
        with pytest.raises(IndexError):
            f(np.array([0, 1]))
    np.testing.assert_array_equal(f(np.array([0, -1])), np.zeros((2, 3)) + np.arange(3.0))


def test_points_index_errors_stay_index_errors(aot_lib):
    x, i, j = pt.matrix("x"), pt.lvector("i"), pt.lvector("j")
    f = pytensor.function([x, i, j], [x[i, j] * 2, pt.inc_subtensor(x[i], 1.0)], mode="AOT")
    m = np.arange(6.0).reshape(2, 3)
    for _ in range(2):
        f(m, np.array([0, 1]), np.array([2, 0]))
    for bad in (([0, 2], [2, 0]), ([0, 1], [3, 0])):
        for _ in range(3):
            with pytest.raises(IndexError):
                f(m, np.array(bad[0]), np.array(bad[1]))


def test_compiled_functions_pickle(aot_lib):
    """A function compiled in mode AOT pickles, before and after it has plans, and its copy
    gives the same results (every other mode's functions pickle)."""
    x, i = pt.vector("x"), pt.lvector("i")
    outs = [pt.exp(x).sum(), pt.sigmoid(x)[i] * 2, pt.concatenate([x, pt.log1p(x * x)])]
    f, ref = _modes([x, i], outs)
    v, idx = np.linspace(-1, 1, 7), np.array([0, 6, -1])
    copies = [pickle.loads(pickle.dumps(f))]
    for _ in range(3):
        _same(f, ref, [v, idx], "original")
    copies.append(pickle.loads(pickle.dumps(f)))
    for g in copies:
        for k in range(3):
            _same(g, ref, [v * (k + 1), idx], "copy")


def test_checks_raise_the_ops_error_on_every_call(aot_lib):
    """``CheckAndRaise`` (PyMC's parameter checks) runs as a ``check`` kernel inside the
    plan, and a false condition raises the Op's own exception and message on the first
    call and on replays alike."""
    from pytensor.raise_op import CheckAndRaise

    x, s = pt.vector("x"), pt.dscalar("s")
    checked = CheckAndRaise(ValueError, "s must be positive")(pt.exp(x) * s, pt.gt(s, 0),
                                                              pt.all(pt.lt(abs(x), np.inf)))
    f, ref = _modes([x, s], [checked.sum(), checked * 2])
    v = np.linspace(-1, 1, 5)
    for k in range(3):
        _same(f, ref, [v, np.array(1.0 + k)], f"call {k}")
    assert am.plan_summary(f)["python"] == 0, am.plan_summary(f)
    for bad in ([v, np.array(-1.0)], [np.append(v[:4], np.inf), np.array(1.0)]):
        for _ in range(3):
            with pytest.raises(ValueError, match="s must be positive"):
                f(*bad)
    _same(f, ref, [v, np.array(2.0)], "after the errors")


def _slice_cases():
    """(name, build(x, y, v, s, i, j) -> output): advanced indices mixed with slices."""
    ci, cj = pt.constant(np.array([0, 1, 2])), pt.constant(np.array([0, 1, 2]))
    return [
        ("x[:, i, j] = y", lambda x, y, v, s, i, j: pt.set_subtensor(x[:, i, j], y)),
        ("x[:, i, j] += v, broadcast", lambda x, y, v, s, i, j: pt.inc_subtensor(x[:, i, j], v)),
        ("x[:, i] += s", lambda x, y, v, s, i, j: pt.inc_subtensor(x[:, i], s)),
        ("x[:, i, j] * 2", lambda x, y, v, s, i, j: x[:, i, j] * 2),
        ("x[i, :, j], arrays apart", lambda x, y, v, s, i, j: x[i, :, j] + y[0]),
        ("x[i, :, j] += y.T", lambda x, y, v, s, i, j: pt.inc_subtensor(x[i, :, j], y.T)),
        ("x[:, i[:, None], j] = s, arrays broadcast",
         lambda x, y, v, s, i, j: pt.set_subtensor(x[:, i[:, None], j], s)),
        ("x[1:, i, j] += v", lambda x, y, v, s, i, j: pt.inc_subtensor(x[1:, i, j], v)),
        ("x[:, c0, c1] = y, constant (LKJCholeskyCov's diagonal)",
         lambda x, y, v, s, i, j: pt.set_subtensor(x[:, ci, cj], y) + i.sum() + j.sum()),
    ]


@pytest.mark.parametrize("name", [c[0] for c in _slice_cases()])
def test_slices_among_advanced_indices(name, aot_lib):
    """``x[:, i, j] = y`` and its kin (PyMC's ``LKJCholeskyCov`` sets a diagonal so): the
    slices become ranges of points for the index kernels, and the plan replays the node
    with no Python item. Negative indices count from the end, repeated ones accumulate, and
    one out of range raises IndexError on the first call and on replays alike."""
    build = dict(_slice_cases())[name]
    x, y, v, s = pt.tensor3("x"), pt.matrix("y"), pt.vector("v"), pt.dscalar("s")
    i, j = pt.lvector("i"), pt.lvector("j")
    ins, outs = [x, y, v, s, i, j], [build(x, y, v, s, i, j)]
    f, ref = (pytensor.function(ins, outs, mode=m, on_unused_input="ignore")
              for m in ("AOT", REF))
    xs = np.arange(36.0).reshape(3, 3, 4) / 7
    ys, vs, ss = np.linspace(-1, 1, 9).reshape(3, 3), np.array([0.5, -2.0, 3.0]), np.array(1.5)

    def call(k, idx, what):
        return _same(f, ref, [xs * (k + 1), ys - k, vs, ss, *map(np.array, idx)], what)

    good, negative, repeated = ([2, 0, 1], [3, 0, 1]), ([-1, 0, -3], [-4, 3, -1]), \
        ([1, 1, 0], [2, 2, 2])
    for k in range(3):
        assert call(k, good, f"call {k}") is None
    kinds = am.plan_summary(f)
    assert kinds["python"] == kinds["view (run)"] == 0, kinds
    assert am.coverage_summary(f)["pytensor"] == 0, am.coverage(f)
    for k in range(2):
        assert call(k, negative, "negative indices") is None
        assert call(k, repeated, "repeated indices") is None
    raised = set()
    for bad in (([0, 3, 1], [0, 1, 2]), ([0, 1, 2], [0, 1, -5])):
        for k in range(3):  # the first raises while recording, the others in the plan
            raised.add(call(k, bad, f"out of range, call {k}"))
    assert raised == ({None} if "constant" in name else {IndexError} if "j" in name
                      else {IndexError, None}), raised  # x[:, i] += s ignores j
    assert call(0, good, "after the errors") is None


def test_views_python_reads_in_kernel_buffers_are_not_python_items(aot_lib):
    """A ``Split`` output that an in-place result aliases (dirichlet_categorical's gradient:
    the result lies in a buffer made fresh per call), or that a thunk-run node reads (a
    pinned buffer), is handed to its cell as a view at the start of a call: the plan runs no
    Python for the Split (the first function's plan has no Python item at all, so its calls
    take the generated fast path), and results never alias another call's."""
    x = pt.vector("x")
    a, b = pt.split(pt.exp(x) * 2, [3, 1], n_splits=2)
    c, d = pt.split(pt.log1p(x * x), [2, 2], n_splits=2)
    aliased = [pt.constant(np.array([4.0])) + a, -b]
    for outs, kinds in ((aliased, {"kernel": 4, "view": 1}),
                        ([*aliased, pt.extra_ops.searchsorted(c, c) * 3 + d.sum()],
                         {"kernel": 9, "view": 3, "python": 1})):
        f, ref = _modes([x], outs)
        assert any(n.op.destroy_map and "Split" in str(n.inputs[-1].owner.op)
                   for n in f.maker.fgraph.apply_nodes if n.inputs[-1].owner), "no alias"
        results = []
        for k in range(4):
            v = np.linspace(0, 1, 4)[::-1] + k
            _same(f, ref, [v], f"call {k}")
            results.append(f(v))
        assert am.plan_summary(f) == kinds, am.plan_summary(f)
        assert (f.vm._fast is not None) == ("python" not in kinds)  # the generated path ran
        for k, rs in enumerate(results):
            for later in results[k + 1:]:
                assert not any(np.shares_memory(p, q) for p in rs for q in later)


def test_results_keep_their_python_types(aot_lib):
    """Every result has the type the Python linker gives it on every call: a scalar-typed
    result a NumPy scalar (a folded constant's copy included: ``DeepCopyOp`` of a
    ``ScalarConstant`` once came back as a 0-d array), a 0-d tensor a 0-d array."""
    from pytensor.tensor.basic import scalar_from_tensor

    x, n = pt.dvector("x"), pt.lscalar("n")
    outs = [scalar_from_tensor(pt.constant(56, dtype="int8")), scalar_from_tensor(n),
            scalar_from_tensor(n) * 2, pt.exp(x).sum(), pt.constant(3.5) * 2, x[n]]
    f, ref = _modes([x, n], outs)
    for k in range(4):
        vals = [np.linspace(0, 1, 5) + k, np.asarray(k, dtype="int64")]
        got, want = f(*vals), ref(*vals)
        for g, w in zip(got, want):
            assert type(g) is type(w) and np.shape(g) == np.shape(w), (k, g, w)
            np.testing.assert_array_equal(g, w)


def test_maximum_and_minimum_of_signed_zeros_are_numpys(aot_lib):
    """``np.maximum``/``np.minimum`` of two equal values give the second: 0.0 and -0.0 then
    decide the sign of an infinity downstream (a generated graph found ``1 / maximum(0,
    -0.0)`` giving +inf where PyTensor gives -inf)."""
    x, y = pt.dvector("x"), pt.dvector("y")
    outs = [1 / pt.maximum(x, y), 1 / pt.minimum(x, y), 1 / pt.sign(x)]
    f, ref = _modes([x, y], outs)
    zeros = np.array([0.0, -0.0, 0.0, -0.0])
    for k in range(3):
        _same(f, ref, [zeros, zeros[::-1].copy()], f"call {k}")


def test_softmax_over_unit_axes_is_pytensors(aot_lib):
    """PyTensor 3's softmax and log-softmax are symbolic Ops whose inner graph every backend
    rewrites: over axes of static length 1, ``x - max(x)`` is 0, so the results are 1 and
    0 even for NaN and infinite inputs (mode AOT inlines them there; elsewhere its kernels
    give what the inner graph gives)."""
    x = pt.tensor("x", dtype="float64", shape=(1, None))
    y = pt.tensor("y", dtype="float64", shape=(None, 1, 1))
    outs = [pt.special.softmax(x, axis=0), pt.special.log_softmax(x, axis=0),
            pt.special.softmax(x, axis=1), pt.special.log_softmax(y, axis=2),
            pt.special.softmax(y, axis=None)]
    f, ref = _modes([x, y], outs)
    vals = [np.array([[np.nan, np.inf, -np.inf, 1.0]]), np.array([[[np.nan]], [[2.0]]])]
    for k in range(3):
        _same(f, ref, vals, f"call {k}")


def test_softmax_over_an_empty_axis_is_pytensors(aot_lib):
    """Softmax and log-softmax over an axis of length 0: PyTensor 2.38's ``perform`` (SciPy's)
    raises ``ValueError``, mode AOT's kernels returned an empty array (a generated graph on
    2.38 found it, ``softmax(x0 + x1)`` of size 0); an empty result along another axis is
    empty in both."""
    x = pt.dmatrix("x")
    outs = [pt.special.softmax(x, axis=0), pt.special.log_softmax(x, axis=-1),
            pt.special.softmax(x, axis=None)]
    for out in outs:
        f, ref = _modes([x], [out])
        for shape in ((0, 3), (3, 0), (0, 0), (2, 3)):
            for k in range(3):
                _same(f, ref, [np.ones(shape)], f"{out}: {shape}, call {k}")


def test_fill_left_in_a_gradient_is_served(aot_lib):
    """PyTensor 2.38 leaves ``Second`` (``fill``) in this gradient (a generated case of a
    1,500-graph run on 2.38): it ran ``perform`` as a Python item of the plan; now ``y``
    broadcast by the ``alloc`` kernels, after the runtime-broadcast check."""
    x0 = pt.tensor("x0", dtype="float64", shape=(1, None))
    x1 = pt.vector("x1")
    x2 = pt.tensor("x2", dtype="float64", shape=(None, 1))
    cost = pt.sum(pt.switch(pt.neq(x0, x1), x1, x2))
    f, ref = _modes([x0, x1, x2], [cost, *pytensor.grad(cost, [x0, x1, x2])])
    rng = np.random.default_rng(0)
    for shapes in [((1, 3), (3,), (2, 1))] * 3 + [((1, 1), (1,), (1, 1)),
                                                 ((1, 4), (4,), (3, 1)), ((1, 3), (2,), (2, 1))]:
        vals = [rng.integers(0, 2, size=s).astype("float64") for s in shapes]
        for k in range(2):
            _same(f, ref, vals, f"{shapes}, call {k}")
    assert not _on_perform(f), _on_perform(f)


def test_empty_advanced_index_results_still_check_their_indices(aot_lib):
    """``y[i, j]`` (and its set/inc) where a dimension beside the indices is 0: no element
    comes out, yet NumPy refuses an index out of range, on every call (a generated graph
    found mode AOT returning an empty array: its flattened points were none)."""
    y, i0, i1, v = pt.tensor3("y"), pt.lvector("i0"), pt.lvector("i1"), pt.dmatrix("v")
    for ins, out in (([y, i0, i1], y[i0, i1]), ([y, i0, i1], pt.inc_subtensor(y[i0, i1], 1.0)),
                     ([y, i0, v], pt.set_subtensor(y[:, i0], v[:, None, :]))):
        f, ref = _modes(ins, [out])
        for shape, i in (((1, 1, 0), -2), ((1, 1, 0), 0), ((2, 1, 0), 5)):
            vals = [np.zeros(shape), np.array([i]),
                    np.zeros((shape[0], 0)) if ins[-1] is v else np.array([0])]
            for k in range(3):
                _same(f, ref, vals, f"{out}: {shape}, index {i}, call {k}")


def test_prod_without_zeros_keeps_the_last_zeros_sign(aot_lib):
    """``ProdWithoutZeros`` (the gradient of ``prod``) folds ``mul_without_zeros``, which
    keeps the other operand of a zero: an all-zero row gives its last zero, -0.0 included
    (mode AOT gave 0.0, and ``prod``'s gradient then the wrong zero sign downstream)."""
    from pytensor.tensor.math import ProdWithoutZeros

    m = pt.dmatrix("m")
    outs = [ProdWithoutZeros(axis=(1,))(m), ProdWithoutZeros(axis=(0,))(m),
            ProdWithoutZeros(axis=None)(m)]
    f, ref = _modes([m], outs)
    grid = np.array([[0.0, -0.0, 2.0], [-0.0, 0.0, -0.0], [3.0, -0.0, 0.0]])
    for k, vals in enumerate([grid, grid[::-1, ::-1], -grid, np.zeros((0, 3)), grid] * 2):
        _same(f, ref, [vals], f"call {k}")
    assert am.plan_summary(f) and "python" not in am.plan_summary(f), am.plan_summary(f)


def test_reductions_into_a_wider_dtype_are_served(aot_lib):
    """``Sum``/``Prod`` with a ``dtype`` wider than the table's result for their input (the
    gradient of a float32 input times float64 ones sums it into float64) ran ``perform``
    until session 17: found by the generated gradients once they asked every node to be on
    kernels. The input converted to the accumulator dtype, then reduced, as perform does."""
    x32, x64 = pt.matrix("x32", dtype="float32"), pt.vector("x64")
    i8 = pt.matrix("i8", dtype="int8")
    outs = [*pytensor.grad(pt.sum(x32 * x64), [x32, x64]),
            pt.sum(i8, axis=1, dtype="float64"), pt.prod(x32, axis=0, dtype="float64"),
            pt.sum(x32, dtype="float64", acc_dtype="float64"),
            pt.sum(pt.cast(i8, "bool"), axis=0, dtype="float32", acc_dtype="float64")]
    f, ref = _modes([x32, x64, i8], outs)
    rng = np.random.default_rng(3)
    for _ in range(3):  # record, plan, replay
        vals = [rng.normal(size=(4, 3)).astype("float32"), rng.normal(size=3),
                rng.integers(-9, 9, (4, 3)).astype("int8")]
        for got, want in zip(f(*vals), ref(*vals)):
            assert got.dtype == want.dtype
            np.testing.assert_allclose(got, want, rtol=1e-13)
    assert not _on_perform(f), _on_perform(f)


def test_sets_that_convert_like_numpy_are_served(aot_lib):
    """``set_subtensor`` of a bool array with another dtype (a generated graph: ``(x0 +
    x1)[1:] = 2`` of bools), and of a float32 array with float64 values, ran ``perform``
    until session 17. NumPy's assignment converts (nonzero is True, NaN too; floats round)
    and the kernels' cast agrees: same values, signs of zero and infinities."""
    b0, b1 = pt.vector("b0", dtype="bool"), pt.vector("b1", dtype="bool")
    f32, f64 = pt.fvector("f32"), pt.dvector("f64")
    outs = [pt.set_subtensor((b0 + b1)[1:], 2), pt.set_subtensor(b0[1:], f64[:2]),
            pt.set_subtensor(f32[:2], f64[1:3]), pt.set_subtensor(f32[1:], 1e300)]
    f, ref = _modes([b0, b1, f32, f64], outs)
    vals = [np.array([True, False, False]), np.array([False, False, True]),
            np.array([1.5, -2, 3], "float32"), np.array([np.nan, -0.0, 1e-300])]
    for _ in range(3):  # record, plan, replay
        for got, want in zip(f(*vals), ref(*vals)):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
            assert np.array_equal(np.signbit(got), np.signbit(want))
    assert not _on_perform(f), _on_perform(f)
