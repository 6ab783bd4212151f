"""Fusion: runs of a plan's elementwise steps become one kernel each, without waiting.

A plan starts on the catalog's kernels, one step (one loop, one memory pass) per
elementwise node. ``find_runs`` picks consecutive elementwise steps of one segment that
iterate over the same shape and touch memory element by element in step (so computing
them element by element is the same as computing them node by node), and describes each
as a fused ``Program`` (``kernels/fused.py``): its memory inputs, the results read after
the run (the others are never written), and one collapsed geometry. The plan asks for the
kernels (``families.fused.request``): the library's if it ships them (``build-kernels
--from-usage``), else the JIT cache's or a compile in one background child process
(``jit.functions_later``); a call finding them ready swaps the fused steps in
(``Plan.fuse``). A fused kernel computes the same bits as the steps it replaces.

``AOT_FUSION=0`` turns fusion off.
"""

from __future__ import annotations

import ctypes
import math
import os
from typing import NamedTuple

import numpy as np

from aotkernels.kernels.fused import Program
from aotkernels.kernels.scalar_ops import SCALAR_OPS
from aotkernels.layout import broadcast_strides, collapse

#: fewest steps worth a fused kernel
MIN_STEPS = 2
#: most operands of a fused kernel over ``LARGE`` elements or more: LLVM vectorises a loop
#: over arrays that may alias only while its runtime overlap checks stay few, and on large
#: arrays a scalar loop loses more than fusion saves (measured: marginal_gp's 40x40
#: matrices, benchmarks/RESULTS.md); small runs take as many as the executor allows
MAX_LARGE_OPERANDS, LARGE = 8, 1024
#: a fused loop whose rows are shorter than this never reaches its vector body; a run over
#: at least this many elements keeps its loop vectorisable (``_Builder.add``)
SHORT_ROW = 16
#: ops whose scalar body LLVM does not widen (float64, measured on x86-64-v4: libm or
#: numba helper calls, loops): in a fused loop they keep every other step scalar too;
#: besides these, SciPy's functions (``ScalarOp.scipy``)
SCALAR_ONLY = frozenset({"arcsinh", "arctanh", "gamma", "gammaln", "log1mexp", "tri_gamma",
                         "xlogx", "xlogy0"})


class Step(NamedTuple):
    """A kernel step of a plan: operands as (root, byte offset), the resolved call, and each
    operand's (shape, strides) as the kernel was called with it (inputs, then output)."""

    refs: list
    prepared: object
    geometry: list


class Run(NamedTuple):
    """Steps ``first..last`` (plan-wide indices) as one fused kernel: its program, operands
    (root, offset) and the kernel's shapes and strides arrays."""

    first: int
    last: int
    program: Program
    refs: list
    shapes: object
    strides: object


class _Geometry(NamedTuple):  # what ``broadcast_strides`` reads of an array
    ndim: int
    shape: tuple
    strides: tuple


def enabled() -> bool:
    return os.environ.get("AOT_FUSION", "1") not in ("0", "")


def _fusable(step: Step) -> bool:
    """Elementwise, reads only its inputs, and cannot fail (no status to attribute). (An
    input the call converted, ``casts``, is a step of its own: the kernel reads the
    converted array.)"""
    p = step.prepared
    sig = getattr(p, "sig", None)
    if sig is None or sig.family != "elemwise" or p.update or step.geometry is None:
        return False
    if sig.op == "cast":  # to a float, or from bool: no value is out of range
        return sig.out_dtype.startswith("float") or sig.in_dtypes[0] == "bool"
    sop = SCALAR_OPS.get(sig.op)
    return sop is not None and not sop.raises


def _libm_ops() -> frozenset:
    """The vector-math ops whose kernels call libm on the loaded library's target: its
    ``libm_ops`` entries, an op or ``op:dtype``."""
    from aotkernels.jit import target
    from aotkernels.targets import TARGETS

    t = target()
    return frozenset(TARGETS[t].libm_ops) if t in TARGETS else frozenset()


def _loop_kind(op: str, libm: frozenset, dtype: str = "float64") -> str | None:
    """``"scalar"``: the op's body keeps a loop scalar; ``"vector"``: a vector-math body
    (``kernels/vecmath.py``), which a scalar loop makes several times slower; else None,
    as for the vector-math ops the target computes with libm (``libm``: the baseline's
    exp, log, sigmoid, ... are scalar in their own kernels too, and the target chose them
    because two SSE2 lanes of the vector bodies gain little)."""
    sop = SCALAR_OPS.get(op)
    if sop is None or op in libm or f"{op}:{dtype}" in libm:
        return None
    if op in SCALAR_ONLY or sop.scipy is not None:
        return "scalar"
    return "vector" if sop.vector_body is not None else None


def _row(shape: tuple, locs) -> int:
    """The innermost extent of a loop over ``shape`` touching ``locs`` (collapsed)."""
    return collapse(shape, [loc[2] for loc in locs])[0][-1]


class _Builder:
    """One run being grown: memory locations are (root, offset, strides over the run's
    shape, dtype); a root the run writes must be accessed through one location only.

    Two rules keep a fused loop as fast as the kernels it replaces, on runs of at least
    ``SHORT_ROW`` elements, where the vector loop matters (measured, benchmarks/RESULTS.md,
    session 9): a step whose own kernel has long rows does not join a run whose rows are
    short (a broadcast over a short inner axis: the fused loop then runs its exp or
    sigmoid scalar, row by row, where the step's own kernel ran one flat vector loop); and
    an op that keeps a loop scalar (``_loop_kind``) is not fused with a vector-math op."""

    def __init__(self, shape: tuple):
        self.shape = shape
        self.libm = _libm_ops()
        self.long = 0  # the longest row of its steps' own kernels
        self.kinds: set = set()  # the ``_loop_kind``s of its steps
        self.inputs: list = []  # memory input locations, in operand order
        self.reads: dict = {}  # root -> set of locations read from memory
        self.written: dict = {}  # root -> (location, step index within the run)
        self.steps: list = []  # (op, ins, out, args)
        self.indices: list = []  # plan-wide step indices

    def add(self, index: int, step: Step, max_operands: int) -> bool:
        """Append ``step`` if it keeps the run sound; False (unchanged) if not."""
        sig = step.prepared.sig
        oshape, ostrides = step.geometry[-1]
        if shape_of(step) != self.shape or any(s == 0 for s, n in zip(ostrides, oshape)
                                               if n > 1):
            return False
        keep = [d for d, n in enumerate(oshape) if n != 1]  # size-1 axes address nothing
        locs = []
        for (root, off), (shape, strides), dtype in zip(step.refs, step.geometry,
                                                        (*sig.in_dtypes, sig.out_dtype)):
            over = broadcast_strides(_Geometry(len(shape), shape, strides), oshape)
            locs.append((root, off, tuple(over[d] for d in keep), dtype))
        *reads, write = locs
        args, new_inputs = [], []
        for loc in reads:
            root = loc[0]
            done = self.written.get(root)
            if done is not None:
                if done[0] != loc:
                    return False  # another element order of memory this run writes
                args.append(("t", done[1]))
            else:
                args.append(("m", loc))
                if loc not in self.inputs and loc not in new_inputs:
                    new_inputs.append(loc)
        root = write[0]
        if any(loc != write for loc in self.reads.get(root, ())) or (
                root in self.written and self.written[root][0] != write):
            return False
        if root in (loc[0] for loc in new_inputs) and any(
                loc != write for loc in new_inputs if loc[0] == root):
            return False
        outs = {r for r in self.written} | {root}
        size = math.prod(self.shape)
        if size >= LARGE:
            max_operands = min(max_operands, MAX_LARGE_OPERANDS)
        if len(self.inputs) + len(new_inputs) + len(outs) > max_operands:
            return False
        own, kind = _row(self.shape, locs), _loop_kind(sig.op, self.libm, sig.out_dtype)
        kinds = self.kinds | {kind} - {None}
        if size >= SHORT_ROW:
            if len(kinds) > 1:
                return False
            written = [loc for loc, _ in self.written.values()]
            row = _row(self.shape, [*self.inputs, *new_inputs, *written, write])
            if row < SHORT_ROW <= max(self.long, own):
                return False
        self.long, self.kinds = max(self.long, own), kinds
        self.inputs += new_inputs
        for kind, loc in args:
            if kind == "m":
                self.reads.setdefault(loc[0], set()).add(loc)
        self.written[root] = (write, len(self.steps))
        self.steps.append((sig.op, sig.in_dtypes, sig.out_dtype, args))
        self.indices.append(index)
        return True

    def finish(self, kept) -> Run | None:
        """The run as a fused kernel; ``kept(root, first, last)``: whether the result in
        ``root`` is read after the run."""
        if len(self.steps) < MIN_STEPS:
            return None
        first, last = self.indices[0], self.indices[-1]
        outs = [(loc, step) for root, (loc, step) in self.written.items()
                if kept(root, first, last)]
        if not outs:
            return None
        nin = len(self.inputs)
        where = {loc: k for k, loc in enumerate(self.inputs)}
        steps = tuple((op, tuple(ins), out,
                       tuple(where[loc] if kind == "m" else nin + loc for kind, loc in args))
                      for op, ins, out, args in self.steps)
        locs = self.inputs + [loc for loc, _ in outs]
        shape, strides = collapse(self.shape, [loc[2] for loc in locs])
        if shape == (1,):  # any stride addresses one element: inputs read once (``s``),
            # outputs contiguous (``c``), not strided, which would take stack blocks
            strides = [(0,) if k < nin else (np.dtype(loc[3]).itemsize,)
                       for k, loc in enumerate(locs)]
        pattern = ""
        for k, (loc, st) in enumerate(zip(locs, strides)):
            size = np.dtype(loc[3]).itemsize
            if st[-1] == size:
                pattern += "c"
            elif st[-1] == 0 and k < nin:
                pattern += "s"
            else:
                pattern += "g"
        program = Program(tuple(loc[3] for loc in locs), nin, pattern, len(shape), steps,
                          tuple(step for _, step in outs),
                          tuple(-1 if where.get(loc, -1) < 0 or pattern[where[loc]] == "s"
                                else where[loc] for loc, _ in outs))
        shapes = [n for _ in locs for n in shape]
        flat = [s for st in strides for s in st]
        return Run(first, last, program, [(loc[0], loc[1]) for loc in locs],
                   (ctypes.c_int64 * len(shapes))(*shapes),
                   (ctypes.c_int64 * len(flat))(*flat))


def shape_of(step: Step) -> tuple | None:
    """The iteration shape a fused run of ``step`` shares: its result's shape without size-1
    axes (None: the step cannot be fused)."""
    return tuple(n for n in step.geometry[-1][0] if n != 1) if _fusable(step) else None


def schedule(steps: list) -> list:
    """``steps`` ((node position, Step) in plan order) reordered so that steps of one
    iteration shape come together (PyTensor's order interleaves independent scalar, vector
    and matrix work): a list schedule that prefers a ready step of the shape just run.
    Dependencies are by root: a step follows the last writer of what it reads or writes and
    every reader since of what it writes. Steps that cannot be fused (reductions, indexing,
    anything that may fail) keep their order among themselves, so the first failure is the
    one the unfused plan meets."""
    import heapq

    n = len(steps)
    shapes = [shape_of(st) for _, st in steps]
    deps: list[set] = [set() for _ in range(n)]
    writer: dict = {}
    readers: dict = {}
    fixed = None  # the last step that cannot be fused
    for i, (_, st) in enumerate(steps):
        if shapes[i] is None:
            reads = writes = [r for r, _ in st.refs]  # any operand may be either
            if fixed is not None:
                deps[i].add(fixed)
            fixed = i
        else:
            reads, writes = [r for r, _ in st.refs[:-1]], [st.refs[-1][0]]
        for r in {*reads, *writes}:
            if r in writer:
                deps[i].add(writer[r])
        for r in writes:
            deps[i].update(readers.get(r, ()))
        for r in reads:
            readers.setdefault(r, []).append(i)
        for r in writes:
            writer[r] = i
            readers[r] = [j for j in readers.get(r, ()) if j == i]
        deps[i].discard(i)
    users: list[list] = [[] for _ in range(n)]
    for i, ds in enumerate(deps):
        for j in ds:
            users[j].append(i)
    waiting = [len(ds) for ds in deps]
    ready_all: list = [i for i in range(n) if not waiting[i]]
    by_shape: dict = {}
    for i in ready_all:
        if shapes[i] is not None:
            by_shape.setdefault(shapes[i], []).append(i)
    heapq.heapify(ready_all)
    for h in by_shape.values():
        heapq.heapify(h)
    order, done, current = [], [False] * n, None
    while len(order) < n:
        pick = None
        same = by_shape.get(current)
        while same:
            i = heapq.heappop(same)
            if not done[i]:
                pick = i
                break
        while pick is None:
            i = heapq.heappop(ready_all)
            if not done[i]:
                pick = i
        done[pick] = True
        order.append(pick)
        current = shapes[pick]
        for u in users[pick]:
            waiting[u] -= 1
            if not waiting[u]:
                heapq.heappush(ready_all, u)
                if shapes[u] is not None:
                    heapq.heappush(by_shape.setdefault(shapes[u], []), u)
    return [steps[i] for i in order]


def find_runs(segments: list[list[tuple[int, Step]]], kept, max_operands: int) -> list[Run]:
    """The fused runs of a plan: ``segments`` lists per segment its (plan-wide index, step)
    in order; ``kept(root, first, last)`` as in ``_Builder.finish``."""
    runs = []
    for steps in segments:
        run = None
        for index, step in steps:
            if run is not None and _fusable(step) and run.add(index, step, max_operands):
                continue
            if run is not None and (made := run.finish(kept)) is not None:
                runs.append(made)
            run = None
            if _fusable(step):
                run = _Builder(shape_of(step))
                if not run.add(index, step, max_operands):
                    run = None
        if run is not None and (made := run.finish(kept)) is not None:
            runs.append(made)
    return runs
