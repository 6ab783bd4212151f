"""Scan's loop as one step of a plan: the inner graph's kernel steps, run n times from C.

PyTensor runs a ``Scan`` node with its Python (or Cython) ``perform``: per iteration it
points the inner function's input cells at rows of the outer buffers, calls the inner
function, and copies its outputs into their rows. In a plan such a node is a Python item.
``build`` replaces it with a *loop step* (``aotk_loop`` in the shim, run by
``aotk_run_steps``): the inner function's own plan (recorded here, once per outer plan)
is the loop body, its roots a table of the loop's own; per iteration the roots of the inner
inputs are set to rows of the caller's buffers (sequences, taps of the recurrent outputs,
non-sequences), the body runs, and each inner output is copied into its row. Rows advance
by the buffer's byte stride, modulo its length for PyTensor's circular (save-memory)
buffers; before the loop, outputs not computed in place of their initial state receive a
copy of it, and after it circular buffers are rotated into time order, as ``perform``
does. The loop's table and its body's scratch are allocated per run, so a plan exported
to C (``cplan``) stays safe to call from several threads.

Served: sequences (any taps PyTensor lowered to rows), mit-mot (in-place preallocated
taps too), mit-sot, sit-sot and nit-sot outputs, non-sequences, ``n_steps`` of a static
value (from shapes or constants), reversed sequences (views with negative strides).
Anything else (while loops, untraced/shared outputs, an inner graph with a node its plan
leaves to Python, non-array inputs, zero steps) keeps the node on ``perform``.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

import numpy as np
from pytensor.scan.op import Scan

from aotkernels.pytensor.executor import Segment, Step, raise_in_node

try:
    from numpy.lib.array_utils import byte_bounds
except ImportError:  # NumPy 1.x
    byte_bounds = np.byte_bounds

ALIGN = 64
#: a failing inner step is reported as (its 1-based index << 16) | status
MAX_BODY_STEPS = 0x7FFF

_i64 = ctypes.c_int64


class Rows(ctypes.Structure):
    """``aotk_rows``: row of iteration t = (start + t) % period + shift (period 0: no
    modulo), at root + offset + row * stride."""

    _fields_ = [(name, _i64) for name in ("root", "offset", "stride", "start", "period",
                                          "shift")]


class Bind(ctypes.Structure):
    _fields_ = [("local", _i64), ("at", Rows)]


class Store(ctypes.Structure):
    _fields_ = [("local", _i64), ("offset", _i64), ("nbytes", _i64), ("at", Rows)]


class Copy(ctypes.Structure):
    _fields_ = [("dst", Rows), ("src", Rows), ("rows", _i64), ("nbytes", _i64)]


class Reorder(ctypes.Structure):
    _fields_ = [("buf", Rows), ("rows", _i64), ("nbytes", _i64), ("shift", _i64),
                ("zero_from", _i64)]


class LoopStruct(ctypes.Structure):
    """``aotk_loop`` in the shim."""

    _fields_ = [("n_iter", _i64), ("n_local", _i64), ("fixed", ctypes.c_void_p),
                ("arena_bytes", _i64), ("n_scratch", _i64), ("scratch", ctypes.c_void_p),
                ("n_binds", _i64), ("binds", ctypes.c_void_p),
                ("n_steps", _i64), ("steps", ctypes.c_void_p),
                ("n_stores", _i64), ("stores", ctypes.c_void_p),
                ("n_copies", _i64), ("copies", ctypes.c_void_p),
                ("n_reorders", _i64), ("reorders", ctypes.c_void_p)]


class RowSpec:
    """Rows of an outer value: its (root, offset) as the planner places it (the root's
    ``index`` is read when the step is sealed), the byte stride and the row formula."""

    __slots__ = ("ref", "stride", "start", "period", "shift")

    def __init__(self, ref, stride: int, start: int = 0, period: int = 0, shift: int = 0):
        self.ref, self.stride = ref, stride
        self.start, self.period, self.shift = start, period, shift

    def struct(self) -> Rows:
        root, offset = self.ref
        return Rows(root.index, offset, self.stride, self.start, self.period, self.shift)


def is_scan(node) -> bool:
    return isinstance(node.op, Scan)


class LoopCall:
    """What the planner's steps call ``prepared``, for a loop step: no kernel (``fn`` 0),
    the ``aotk_loop`` as ``shapes`` (made when the plan is sealed, once every root has its
    index), and ``fail`` raising what the failing inner kernel raises."""

    fn = None
    update = True  # every operand counts as read (the loop reads the buffers it writes)

    def __init__(self, n_iter: int, body, binds, stores, copies, reorders, refs):
        self.n_iter, self.body = n_iter, body
        self.binds, self.stores, self.copies, self.reorders = binds, stores, copies, reorders
        self.refs = refs
        self.strides = (_i64 * 1)()
        self._struct = None

    @property
    def shapes(self) -> LoopStruct:
        if self._struct is None:
            self._struct = self._seal()
        return self._struct

    def _seal(self) -> LoopStruct:
        b = self.body
        binds = (Bind * max(1, len(self.binds)))(
            *[Bind(local, rows.struct()) for local, rows in self.binds])
        stores = (Store * max(1, len(self.stores)))(
            *[Store(local, off, nbytes, rows.struct())
              for local, off, nbytes, rows in self.stores])
        copies = (Copy * max(1, len(self.copies)))(
            *[Copy(dst.struct(), src.struct(), rows, nbytes)
              for dst, src, rows, nbytes in self.copies])
        reorders = (Reorder * max(1, len(self.reorders)))(
            *[Reorder(buf.struct(), rows, nbytes, shift, zero_from)
              for buf, rows, nbytes, shift, zero_from in self.reorders])
        self._keep = [binds, stores, copies, reorders]
        return LoopStruct(self.n_iter, b.n_local, ctypes.addressof(b.fixed), b.arena_bytes,
                          b.n_scratch, ctypes.addressof(b.scratch),
                          len(self.binds), ctypes.addressof(binds),
                          len(b.steps), ctypes.addressof(b.table),
                          len(self.stores), ctypes.addressof(stores),
                          len(self.copies), ctypes.addressof(copies),
                          len(self.reorders), ctypes.addressof(reorders))

    def fail(self, status: int):
        """Raise what the inner kernel's status means, as the inner function raises it."""
        inner, s = (status >> 16) & 0x7FFF, status & 0xFFFF
        if s >= 0x8000:
            s -= 0x10000
        if inner == 0:
            raise MemoryError("no memory for a Scan loop's scratch")
        node, thunk, prepared = self.body.owners[inner - 1]
        try:
            prepared.fail(s)
        except Exception:
            raise_in_node(self.body.vm, node, thunk)


class Body:
    """The inner function's plan as a loop body: its step table over the loop's roots, the
    constants' pointers, the scratch layout, and per inner input/output its root."""

    def __init__(self, vm, plan):
        self.vm, self.plan = vm, plan
        kinds = plan.layout.kinds
        self.n_local = len(kinds)
        self.fixed = (ctypes.c_void_p * max(1, self.n_local))()
        for i, kind in enumerate(kinds):
            self.fixed[i] = plan.roots[i] if kind == "fixed" else None
        self.steps = [s for item in plan.items for s in item.table]
        self.owners = [o for item in plan.items for o in item.owners]
        self.table = (Step * max(1, len(self.steps)))()
        for dst, src in zip(self.table, self.steps):
            dst.fn, dst.n, dst.operands = src.fn, src.n, src.operands
            dst.shapes, dst.strides = src.shapes, src.strides
        sizes = [(index, int(np.prod(shape)) * np.dtype(dtype).itemsize)
                 for index, _, (shape, dtype, _) in plan.fresh]
        pairs, end = arena(plan.layout.pinned, sizes)
        self.n_scratch, self.arena_bytes = len(pairs) // 2, end
        self.scratch = (_i64 * max(1, len(pairs)))(*pairs)
        self.inputs = [index for index, _ in plan.inputs]
        self.outputs = plan.layout.outputs


def arena(pinned, sizes) -> tuple[list, int]:
    """Scratch offsets (flat pairs: root index, byte offset) for pinned roots (index,
    array) at their recorded alignment (overlapping ones, buffers the planner shared, stay
    one region) and for fresh roots (index, bytes); and the arena's size, a multiple of
    ``ALIGN``."""
    up = lambda n: -(-n // ALIGN) * ALIGN  # noqa: E731
    out: list = []
    end = 0
    regions = sorted((*byte_bounds(v), index, v.ctypes.data) for index, v in pinned if v.size)
    k = 0
    while k < len(regions):
        lo, hi = regions[k][0], regions[k][1]
        j = k
        while j + 1 < len(regions) and regions[j + 1][0] < hi:
            j += 1
            hi = max(hi, regions[j][1])
        base = up(end) + lo % ALIGN
        for _, _, index, ptr in regions[k:j + 1]:
            out += [index, base + ptr - lo]
        end, k = base + hi - lo, j + 1
    for index, v in pinned:
        if not v.size:
            out += [index, up(end)]
    for index, nbytes in sizes:
        out += [index, up(end)]
        end = up(end) + nbytes
    return out, up(max(end, 8))


def _like(a: np.ndarray) -> np.ndarray:
    """A copy of ``a`` with its strides and its address modulo ``ALIGN``: the geometry a
    plan is keyed by, in memory of its own (an inner graph may update an input in place)."""
    lo, hi = byte_bounds(a) if a.size else (a.ctypes.data, a.ctypes.data)
    raw = np.empty(hi - lo + 2 * ALIGN, np.uint8)
    pad = (lo - raw.ctypes.data) % ALIGN
    out = np.ndarray(a.shape, a.dtype, raw, pad + a.ctypes.data - lo, a.strides)
    out[...] = a
    return out


def _row(a: np.ndarray, k: int) -> np.ndarray:
    """Row ``k`` of ``a`` as an array (a 0-d view for a vector, as Scan passes it)."""
    return a[k:k + 1].reshape(()) if a.ndim == 1 else a[k]


def _dense(shape, strides, itemsize: int) -> bool:
    step = itemsize
    for n, s in zip(reversed(shape), reversed(strides)):
        if n != 1 and s != step:
            return False
        step *= n
    return True


def inner_body(op, values: list, executor, build_plan: Callable, kernel_thunk: type):
    """The loop body of ``op``'s inner function for inner inputs of the geometry of
    ``values``: a plan recorded here on copies of them (the function's own plans are made
    with Scan's preallocated output cells, and stay as they are), or None."""
    from aotkernels.pytensor.loop import PlannedLoop, record_call, static_vars

    vm = op.fn.vm
    if not isinstance(vm, PlannedLoop) or vm.time_thunks or len(values) != len(
            vm.input_storage):
        return None
    fgraph = vm.fgraph
    destroyed = {node.inputs[i] for node in vm.nodes
                 for ins in (getattr(node.op, "destroy_map", None) or {}).values() for i in ins}
    writable = frozenset(v for v in fgraph.inputs if v in destroyed)
    static = static_vars(vm.nodes)
    cells = [c for th in vm.thunks for c in th.outputs] + list(vm.output_storage)
    try:
        for cell in cells:
            cell[0] = None
        for cell, value in zip(vm.input_storage, values):
            cell[0] = _like(value)
        records = record_call(vm, static)
        plan = build_plan(vm, records, static, executor, kernel_thunk, writable=writable,
                          body=True)
    except Exception:  # a value the inner graph refuses (these are the recorded buffers)
        return None
    finally:
        for cell in cells + list(vm.input_storage):
            cell[0] = None
    if plan is None or "python" in plan.layout.kinds or any(
            item.__class__ is not Segment for item in plan.items):
        return None
    body = Body(vm, plan)
    if len(body.steps) > MAX_BODY_STEPS or any(not s.fn for s in body.steps):
        return None  # too many steps to report a failure, or a nested loop
    if any(o is None for o in body.outputs):
        return None
    return body, writable


def build(node, ins: list, outs: list, in_refs: list, out_refs: list, inplace: set,
          executor, build_plan: Callable, kernel_thunk: type) -> LoopCall | None:
    """The loop step of a Scan ``node`` recorded with input values ``ins`` and output
    values ``outs``; ``in_refs``/``out_refs``: each value's (root, offset) in the outer plan;
    ``inplace``: the outputs computed in place of their initial state (their ref is its
    ref; the others get a copy of it first). None: the node stays on ``perform``."""
    op = node.op
    info = op.info
    if info.as_while or getattr(info, "n_untraced_sit_sot", 0) or getattr(
            info, "n_shared_outs", 0):
        return None
    n_mm, n_ms, n_ss, n_ns = info.n_mit_mot, info.n_mit_sot, info.n_sit_sot, info.n_nit_sot
    n_tap = n_mm + n_ms + n_ss
    if len(outs) != n_tap + n_ns or not all(isinstance(o, np.ndarray) for o in outs):
        return None
    if not isinstance(ins[0], np.ndarray) or ins[0].ndim != 0:
        return None
    n = int(ins[0])
    if n <= 0:
        return None
    seq_at = range(1, 1 + info.n_seqs)
    init_at = range(1 + info.n_seqs, 1 + info.n_seqs + n_tap)
    nit_at = range(init_at.stop, init_at.stop + n_ns)
    non_seq_at = range(nit_at.stop, len(ins))
    for k in (*seq_at, *init_at, *non_seq_at):
        if not isinstance(ins[k], np.ndarray) or in_refs[k] is None:
            return None
    mintaps = list(op.mintaps)
    store = [ins[k].shape[0] for k in init_at] + [int(ins[k]) for k in nit_at]
    if [o.shape[0] if o.ndim else -1 for o in outs] != store:
        return None

    values, rows = [], []  # per inner input: a value of its geometry, its rows
    for k in seq_at:
        seq = ins[k]
        if seq.shape[0] < n:
            return None
        values.append(_row(seq, 0))
        rows.append(RowSpec(in_refs[k], seq.strides[0]))
    pos0 = [(-mintaps[j]) % store[j] for j in range(n_tap + n_ns)]
    tap_inputs = []  # (output index, tap) per inner tap input
    for j, taps in enumerate((*info.mit_mot_in_slices, *info.mit_sot_in_slices,
                              *info.sit_sot_in_slices)):
        buf = outs[j]
        for tap in taps:
            start = (pos0[j] + tap) % store[j]
            values.append(_row(buf, start))
            rows.append(RowSpec(out_refs[j], buf.strides[0], start, store[j]))
            tap_inputs.append((j, tap))
    for k in non_seq_at:
        values.append(ins[k])
        rows.append(RowSpec(in_refs[k], 0))

    made = inner_body(op, values, executor, build_plan, kernel_thunk)
    if made is None:
        return None
    body, writable = made
    fgraph_inputs = body.vm.fgraph.inputs
    # an input the body updates in place must be a mit-mot tap that is also an output tap
    # (PyTensor's preallocated mit-mot): its row is where that output goes
    n_seq = info.n_seqs
    for i, var in enumerate(fgraph_inputs):
        if var in writable:
            if not n_seq <= i < n_seq + len(tap_inputs):
                return None
            j, tap = tap_inputs[i - n_seq]
            if j >= n_mm or tap not in info.mit_mot_out_slices[j]:
                return None
    binds = list(zip(body.inputs, rows))

    # the destination of each inner output, in the order perform copies them
    dests = []  # (output index, RowSpec)
    for j, out_taps in enumerate(info.mit_mot_out_slices):
        for tap in out_taps:
            dests.append((j, RowSpec(out_refs[j], outs[j].strides[0], pos0[j], store[j],
                                     tap)))
    for j in range(n_mm, n_tap + n_ns):
        dests.append((j, RowSpec(out_refs[j], outs[j].strides[0], pos0[j], store[j])))
    if len(dests) != len(body.outputs):
        return None
    stores = []
    for (j, spec), (root, offset, (shape, strides, dtype)) in zip(dests, body.outputs):
        buf = outs[j]
        if (tuple(shape) != buf.shape[1:] or dtype != buf.dtype
                or not _dense(shape, strides, dtype.itemsize)
                or not _dense(buf.shape[1:], buf.strides[1:], buf.dtype.itemsize)):
            return None
        rows_hit = {(spec.start + t) % store[j] + spec.shift for t in range(min(n, store[j]))}
        if min(rows_hit) < 0 or max(rows_hit) >= store[j]:
            return None  # PyTensor would index from the end: not a row formula
        stores.append((root, offset, buf[0].nbytes if buf.ndim > 1 else buf.itemsize, spec))

    copies = []
    for j, k in enumerate(init_at):
        if j in inplace:
            continue  # computed in place of its initial state
        init, buf = ins[k], outs[j]
        if init.shape != buf.shape or init.dtype != buf.dtype or not all(
                _dense(a.shape[1:], a.strides[1:], a.itemsize) for a in (init, buf)):
            return None
        nbytes = buf.itemsize * int(np.prod(buf.shape[1:]))
        copies.append((RowSpec(out_refs[j], buf.strides[0]), RowSpec(in_refs[k], init.strides[0]),
                       buf.shape[0], nbytes))

    reorders = []
    for j in range(n_mm, n_tap + n_ns):
        st, buf = store[j], outs[j]
        nbytes = buf.itemsize * int(np.prod(buf.shape[1:]))
        if st < n - mintaps[j]:
            shift = (pos0[j] + n) % st
            if shift:
                reorders.append((RowSpec(out_refs[j], buf.strides[0]), st, nbytes, shift, st))
        elif st > n - mintaps[j]:
            reorders.append((RowSpec(out_refs[j], buf.strides[0]), st, nbytes, 0,
                             n - mintaps[j]))

    refs = [in_refs[k] for k in (*seq_at, *init_at, *non_seq_at)] + list(out_refs)
    return LoopCall(n, body, binds, stores, copies, reorders, refs)
