"""The plan executor: replay a mode-AOT function's kernels from C, one call per segment.

The first call with an input geometry (shapes, strides, dtypes) runs node by node while
``aotkernels.record`` logs every kernel call and array conversion. ``build_plan`` turns that
log into a program over a table of *roots*, the base pointers of the buffers a call touches:

- ``input``: a graph input (pointer written per call; the geometry is the plan's key);
- ``buffer``: a kernel node's own result, allocated once (``pinned``, and shared with other
  intermediates whose lives do not overlap) or, when a result the caller receives shares
  its memory, fresh every call (results are never internal buffers);
- ``temp`` / ``fixed``: scratch a node writes before reading (a reduction's accumulator) and
  contents that never change (constants, literals, values computed from shapes only);
- ``python``: the value of a node the plan cannot replay, written per call after that node
  ran and its geometry was compared with the recorded one.

Every kernel operand is a root plus a byte offset, so views (DimShuffle, Reshape, Subtensor
with constant indices, ...) cost nothing: they are offsets. Runs of kernel steps execute in
one ``aotk_run_steps`` call; the nodes the plan cannot replay run their thunks in between.
A node is replayed only if its record explains every byte its kernels read (an input, a
root, or scratch written earlier in the node) and its kernels write its whole result; any
doubt leaves the node to its thunk, which is slower, never wrong. A value whose geometry
differs from the recorded one makes the rest of that call run thunk by thunk, and the plan
is dropped.
"""

from __future__ import annotations

import ctypes
from collections import Counter

import numpy as np
from pytensor.graph.basic import Constant
from pytensor.tensor.basic import AllocEmpty
from pytensor.tensor.shape import Shape, Shape_i

from aotkernels import record
from aotkernels.resolver import _raise_status, prepare

try:
    from numpy.lib.array_utils import byte_bounds
except ImportError:  # NumPy 1.x
    byte_bounds = np.byte_bounds

MAX_OPERANDS = 16  # AOTK_MAX_OPERANDS in the shim

# how a node runs in a plan
KERNEL, VIEW, VIEW_RUN, STATIC, PYTHON = "kernel", "view", "view (run)", "static", "python"


class _Step(ctypes.Structure):
    _fields_ = [("fn", ctypes.c_void_p), ("n", ctypes.c_int64), ("operands", ctypes.c_void_p),
                ("shapes", ctypes.c_void_p), ("strides", ctypes.c_void_p)]


_from_buffer, _addressof = ctypes.c_char.from_buffer, ctypes.addressof


def _pointer(a: np.ndarray) -> int:
    """``a.ctypes.data``, four times faster for writable C-contiguous arrays (the buffer
    protocol hands out the same pointer; a read-only, strided or empty one refuses)."""
    try:
        return _addressof(_from_buffer(a))
    except (TypeError, ValueError, BufferError):
        return a.ctypes.data


def _geometry(x):
    return (x.shape, x.strides, x.dtype) if isinstance(x, np.ndarray) else None


def input_key(cells) -> tuple | None:
    """The plan key of a call: every input's geometry (None: some input is no ndarray)."""
    key = []
    for cell in cells:
        v = cell[0]
        if not isinstance(v, np.ndarray):
            return None
        key.append((v.shape, v.strides, v.dtype))
    return tuple(key)


def static_vars(nodes) -> set:
    """Variables whose values follow from shapes and constants alone: the same on every call
    of one geometry (shapes, ``arange(x.shape[0])``, constant folding PyTensor left). A node
    that destroys one of them is static too: ``record_call`` snapshots each static value
    right after its node ran, before any destroyer does. A value that a node of another
    kind destroys (an inplace update of a zero-filled ``Alloc``) is not static: it must be
    made again every call."""
    blocked: set = set()
    while True:
        static: set = set()
        for node in nodes:
            if blocked.intersection(node.outputs):
                continue
            if isinstance(node.op, (Shape, Shape_i)) or (
                    node.inputs and not isinstance(node.op, AllocEmpty)
                    and all(isinstance(v, Constant) or v in static for v in node.inputs)):
                static.update(node.outputs)
        destroyed = {node.inputs[i] for node in nodes if not static.issuperset(node.outputs)
                     for ins in (getattr(node.op, "destroy_map", None) or {}).values()
                     for i in ins}
        if not destroyed & static:
            return static
        blocked |= destroyed & static


def thunk_cells(vm) -> dict:
    """var -> the storage cell its thunks read and write. Not ``vm.storage_map``: PyTensor
    remaps that after making the thunks when it shares storage between variables
    (``reduce_storage_allocations``), so for some variables it names another cell."""
    cells = dict(zip(vm.fgraph.inputs, vm.input_storage))
    for node, thunk in zip(vm.nodes, vm.thunks):
        cells.update(zip(node.inputs, thunk.inputs))
        cells.update(zip(node.outputs, thunk.outputs))
    return cells


def record_call(vm, static: set) -> list:
    """Run one call of ``vm`` thunk by thunk (as PyTensor's ``Loop`` does, with its garbage
    collection), recording the graph's input values, then per node: (log, input values,
    output values, static snapshots)."""
    storage = thunk_cells(vm)
    clears = vm.post_thunk_clear or [()] * len(vm.nodes)
    records = [[cell[0] for cell in vm.input_storage]]  # the VM's GC may clear them
    for node, thunk, old in zip(vm.nodes, vm.thunks, clears):
        prev = record.start()
        try:
            thunk()
        except Exception:
            record.stop(prev)
            _reraise(vm, node, thunk)
        calls = record.stop(prev)
        outs = [storage[v][0] for v in node.outputs]
        snaps = ([np.copy(o, order="K") if isinstance(o, np.ndarray) else o for o in outs]
                 if node.outputs[0] in static else None)
        records.append((calls, [storage[v][0] for v in node.inputs], outs, snaps))
        for cell in old:
            cell[0] = None
    return records


class _Root:
    __slots__ = ("kind", "value", "ptr", "lo", "hi", "index", "var")

    def __init__(self, kind: str, value: np.ndarray, var=None):
        self.kind, self.value, self.var = kind, value, var
        self.ptr = value.ctypes.data
        self.lo, self.hi = byte_bounds(value) if value.size else (self.ptr, self.ptr)
        self.index = -1


class _Segment:
    """Consecutive kernel steps, one ``aotk_run_steps`` call."""

    def __init__(self):
        self.steps: list = []  # (fn address, [(root, offset)], shapes, strides)
        self.owners: list = []  # per step: (node, thunk, scalar op, signature)
        self.fixups: list = []  # (cell, cell): inplace results, set after the steps

    def seal(self, keep: list) -> None:
        table = (_Step * len(self.steps))()
        for step, (fn, refs, shapes, strides) in zip(table, self.steps):
            ops = (ctypes.c_int64 * (2 * len(refs)))(
                *[x for r, off in refs for x in (r.index, off)])
            keep += [ops, shapes, strides]
            step.fn, step.n, step.operands = fn, len(refs), ctypes.addressof(ops)
            step.shapes, step.strides = ctypes.addressof(shapes), ctypes.addressof(strides)
        self.table, self.n, self.steps = table, len(table), None
        self.status = ctypes.c_int32(0)
        # the call's arguments, made once: converting them per call costs more than the call
        self.n = ctypes.c_int64(self.n)
        self.table_p = ctypes.c_void_p(ctypes.addressof(table))
        self.status_p = ctypes.c_void_p(ctypes.addressof(self.status))


class _PyItem:
    """A node run by its thunk; ``checks``: (cell, recorded geometry, root index or None)."""

    __slots__ = ("pos", "node", "thunk", "checks")

    def __init__(self, pos, node, thunk, checks):
        self.pos, self.node, self.thunk, self.checks = pos, node, thunk, checks


class Plan:
    """A program for one input geometry of one function (see the module docstring)."""

    def __init__(self, run_steps, roots, items, inputs, fresh, cells, finish, keep):
        self.run_steps, self.roots, self.items = run_steps, roots, items
        self.roots_p = ctypes.c_void_p(ctypes.addressof(roots))
        self.inputs = inputs  # [(root index, cell)]
        self.seen = [None] * len(inputs)  # the input arrays whose pointers are in ``roots``
        self.fresh = fresh  # [(root index, cell, (shape, dtype, axis order))]
        self.cells = cells  # [(cell, value, copy?)]: set at the start of every call
        self.finish = finish  # per node: (kind, node, thunk, materialise)
        self.keep = keep  # what the C tables point into

    def kinds(self) -> Counter:
        """How many nodes run as kernel steps, views, static values, or their thunks."""
        return Counter(kind for kind, *_ in self.finish)

    def run(self, vm) -> bool:
        """Run one call; False if a value left the recorded geometry (the call was completed
        thunk by thunk, and the plan must be dropped)."""
        roots, seen = self.roots, self.seen
        for k, (index, cell) in enumerate(self.inputs):
            v = cell[0]
            if v is not seen[k]:  # held until the next call, so its memory cannot move
                roots[index] = _pointer(v)
                seen[k] = v
        for index, cell, (shape, dtype, perm) in self.fresh:
            a = np.empty(shape, dtype) if perm is None else np.empty(shape, dtype).transpose(perm)
            cell[0] = a
            roots[index] = _pointer(a)
        for cell, value, copy in self.cells:
            cell[0] = value.copy() if copy else value
        for item in self.items:
            if item.__class__ is _Segment:
                failed = self.run_steps(item.n, item.table_p, self.roots_p, item.status_p)
                if failed:
                    node, thunk, sop, sig = item.owners[failed - 1]
                    try:
                        _raise_status(sop, sig, item.status.value)
                    except Exception:
                        _reraise(vm, node, thunk)
                for dst, src in item.fixups:
                    dst[0] = src[0]
                continue
            try:
                item.thunk()
            except Exception:
                _reraise(vm, item.node, item.thunk)
            for cell, geometry, index in item.checks:
                value = cell[0]
                if _geometry(value) != geometry:
                    self._finish(vm, item.pos)
                    return False
                if index is not None:
                    roots[index] = _pointer(value)
        return True

    def _finish(self, vm, pos: int) -> None:
        """Complete a call whose node ``pos`` (already run) left the plan: give the cells the
        plan skipped their values, then run every later node's thunk."""
        for i, (kind, node, thunk, materialise) in enumerate(self.finish):
            try:
                if i > pos or kind == VIEW:
                    thunk()
                elif kind == STATIC:
                    for cell, value in materialise:
                        cell[0] = value.copy() if isinstance(value, np.ndarray) else value
                elif kind == KERNEL and materialise is not None:
                    how, cell, source = materialise  # a pinned buffer, or an inplace source
                    cell[0] = source if how == "buffer" else source[0]
            except Exception:
                _reraise(vm, node, thunk)


def _reraise(vm, node, thunk):
    from pytensor.link.utils import raise_with_op

    raise_with_op(vm.fgraph, node, thunk)


class _Builder:
    """Classifies the nodes of one recorded call and assigns roots (``build_plan``)."""

    def __init__(self, vm, static: set, kernel_thunks: tuple):
        self.vm, self.static, self.kernel_thunks = vm, static, kernel_thunks
        self.roots: list[_Root] = []
        self.var_root: dict = {}  # var -> (root, byte offset of the value from root.ptr)

    def add(self, root: _Root) -> _Root:
        root.index = len(self.roots)
        self.roots.append(root)
        return root

    def root_of(self, var, value):
        ref = self.var_root.get(var)
        if ref is None and isinstance(var, Constant) and isinstance(value, np.ndarray):
            ref = self.var_root[var] = (self.add(_Root("fixed", value)), 0)
        return ref

    def is_static(self, var) -> bool:
        return isinstance(var, Constant) or var in self.static

    def view(self, node, ins, outs) -> bool:
        """A view of one input (``view_map``) whose other inputs are static: an offset."""
        view_map = getattr(node.op, "view_map", None) or {}
        if len(node.outputs) != 1 or list(view_map) != [0] or len(view_map[0]) != 1:
            return False
        src = view_map[0][0]
        out, value = outs[0], ins[src]
        if not (isinstance(out, np.ndarray) and isinstance(value, np.ndarray)):
            return False
        if not all(self.is_static(v) for k, v in enumerate(node.inputs) if k != src):
            return False
        ref = self.root_of(node.inputs[src], value)
        if ref is None:
            return False
        if out.size == 0:
            self.var_root[node.outputs[0]] = ref
            return True
        lo, hi = byte_bounds(out)
        vlo, vhi = byte_bounds(value)
        if not (vlo <= lo and hi <= vhi):
            return False  # a copy, not a view (Reshape of a non-contiguous input)
        self.var_root[node.outputs[0]] = (ref[0], ref[1] + out.ctypes.data - value.ctypes.data)
        return True

    def alloc_empty(self, node, outs):
        """``AllocEmpty`` of a static shape: a buffer no step needs to fill (its readers,
        e.g. an inplace gemv with beta 0, write it first)."""
        if (isinstance(node.op, AllocEmpty) and isinstance(outs[0], np.ndarray)
                and all(self.is_static(v) for v in node.inputs)):
            return [], [_Root("buffer", outs[0], node.outputs[0])], None
        return None

    def kernel(self, node, thunk, calls, ins, outs):
        """The node's steps, or None if its record does not explain everything it does.

        Returns (steps, new roots, inplace source var or None). Each operand must lie in
        exactly one place: an input's value, this node's result, or scratch of this node
        (recorded conversions and literals)."""
        if (not isinstance(thunk, self.kernel_thunks) or len(node.outputs) != 1
                or not all(self.is_static(node.inputs[k])
                           for k in getattr(thunk, "shape_inputs", ()))):
            return None
        out = outs[0]
        if not isinstance(out, np.ndarray):
            return None
        places = []  # (lo, hi, value pointer, root, offset of the value from the root)

        def place(value, ref):
            if value.size:
                places.append((*byte_bounds(value), value.ctypes.data, *ref))

        for var, value in zip(node.inputs, ins):
            ref = self.root_of(var, value) if isinstance(value, np.ndarray) else None
            if ref is not None:
                place(value, ref)
        new, written = [], {}  # roots made here; elements written so far into them
        alias = next((v for v, value in zip(node.inputs, ins) if value is out), None)
        if alias is not None:
            ref = self.var_root.get(alias)
            if ref is None or ref[0].kind in ("fixed", "input"):
                return None  # never write into constants, static values or inputs
        else:
            if out.size and any(_overlap(p[0], p[1], out) for p in places):
                return None  # shares memory with an input, but is not it
            own = _Root("buffer", out, node.outputs[0])
            new.append(own)
            written[own] = 0
            place(out, (own, 0))

        def scratch(kind, a):
            r = _Root(kind, a)
            new.append(r)
            place(a, (r, 0))
            return r

        def locate(a):
            if not isinstance(a, np.ndarray) or a.size == 0:
                return None
            lo, hi = byte_bounds(a)
            found = {(r, off + a.ctypes.data - ptr) for plo, phi, ptr, r, off in places
                     if plo <= lo and hi <= phi}
            return found.pop() if len(found) == 1 else None  # none, or ambiguous

        steps = []
        for call in calls:
            if isinstance(call, record.Opaque):
                return None  # NumPy made (part of) the result
            if isinstance(call, record.Literal):
                scratch("fixed", call.array)
                continue
            if isinstance(call, record.Convert):
                if locate(call.dst) is None:
                    written[scratch("temp", call.dst)] = 0
                call = _convert_kernel(call)
                if call is None:
                    return None
            if len(call.arrays) > MAX_OPERANDS:
                return None
            refs = []
            for j, a in enumerate(call.arrays):
                ref = locate(a)
                if ref is None:
                    return None
                r = ref[0]
                if r in written and written[r] < r.value.size and (
                        j < len(call.arrays) - 1 or call.update):
                    return None  # scratch read before it was written
                refs.append(ref)
            r = refs[-1][0]
            if r.kind in ("fixed", "input"):
                return None
            if r in written:
                written[r] += call.arrays[-1].size
            fn = ctypes.cast(call.fn, ctypes.c_void_p).value
            steps.append((fn, refs, call.shapes, call.strides, call.sop, call.sig))
        if alias is None and written[new[0]] < out.size:
            return None  # part of the result was made outside the record (NumPy)
        if alias is not None and not steps:
            return None
        return steps, new, alias


def _overlap(lo: int, hi: int, a: np.ndarray) -> bool:
    alo, ahi = byte_bounds(a)
    return alo < hi and lo < ahi


def _share_buffers(node_steps: list, busy: set) -> None:
    """Let intermediates whose lives do not overlap share memory, as PyTensor's garbage
    collection would: a pinned buffer or scratch array that no step reads after step ``i``
    is handed to one first written after ``i``. Only C-contiguous arrays are shared, and
    nothing Python reads (``busy``)."""
    first, last = {}, {}
    for i, (_, refs, *_) in enumerate(s for steps in node_steps for s in steps):
        for r, _ in refs:
            first.setdefault(r, i)
            last[r] = i
    free: list = []  # (last step, slab)
    for r in sorted(first, key=first.get):
        if (r.kind not in ("buffer", "temp") or r in busy or not r.value.flags.c_contiguous
                or not r.value.size):
            continue
        fits = [(slab.nbytes, k) for k, (end, slab) in enumerate(free)
                if end < first[r] and slab.nbytes >= r.value.nbytes]
        if fits:
            _, k = min(fits)
            _, slab = free.pop(k)
            r.value = np.frombuffer(slab, r.value.dtype, r.value.size).reshape(r.value.shape)
            r.ptr = slab.ctypes.data
        else:
            slab = r.value
        free.append((last[r], slab))


def _layout(a: np.ndarray):
    """(shape, dtype, axis order or None) with which ``np.empty`` reproduces ``a``'s strides
    (C order, or a dense permutation such as a transpose), or None. Strides of size-1
    dimensions address nothing and may differ."""
    if a.flags.c_contiguous:
        return a.shape, a.dtype, None
    order = sorted(range(a.ndim), key=lambda d: -a.strides[d])
    perm = tuple(int(i) for i in np.argsort(order))
    made = np.empty([a.shape[d] for d in order], a.dtype).transpose(perm)
    same = all(n == 1 or s == t for n, s, t in zip(a.shape, a.strides, made.strides))
    return ([a.shape[d] for d in order], a.dtype, perm) if same else None  # size-1: any


def _convert_kernel(conv: record.Convert) -> record.Kernel | None:
    """``dst[...] = src`` as a kernel call (identity, or cast between dtypes)."""
    src, dst = conv.src, conv.dst
    op, dtype = ("identity", None) if src.dtype == dst.dtype else ("cast", dst.dtype)
    try:
        prepared, used, _ = prepare(op, src, out=dst, dtype=dtype)
    except Exception:  # e.g. KernelNotAvailable with AOT_DISABLE_JIT: no plan for the node
        return None
    if prepared is None or used[0] is not src or prepared.casts:
        return None
    return record.Kernel(prepared.fn, prepared.sig, prepared.sop, [src, dst],
                         prepared.shapes, prepared.strides, False)


def build_plan(vm, records: list, static: set, run_steps, kernel_thunks: tuple) -> Plan | None:
    """A plan from one recorded call (``record_call``), or None if no kernel would leave
    Python."""
    storage = thunk_cells(vm)
    fgraph = vm.fgraph
    b = _Builder(vm, static, kernel_thunks)
    inputs = []
    input_values, records = records[0], records[1:]
    for var, value in zip(fgraph.inputs, input_values):
        if not isinstance(value, np.ndarray):
            return None
        root = b.add(_Root("input", value, var))
        b.var_root[var] = (root, 0)
        inputs.append((root.index, storage[var]))
    kinds, infos = [], []
    for node, thunk, (calls, ins, outs, snaps) in zip(vm.nodes, vm.thunks, records):
        if snaps is not None and all(_geometry(s) == _geometry(o) for s, o in zip(snaps, outs)):
            for var, snap in zip(node.outputs, snaps):
                if isinstance(snap, np.ndarray):
                    b.var_root[var] = (b.add(_Root("fixed", snap)), 0)
            kinds.append(STATIC)
            infos.append(snaps)
            continue
        made = b.kernel(node, thunk, calls, ins, outs) or b.alloc_empty(node, outs)
        if made is not None:
            steps, new, alias = made
            for r in new:
                b.add(r)
            out = node.outputs[0]
            b.var_root[out] = b.var_root[alias] if alias is not None else (new[0], 0)
            kinds.append(KERNEL)
            infos.append((steps, alias))
            continue
        if b.view(node, ins, outs):
            kinds.append(VIEW)
            infos.append(None)
            continue
        for var, value in zip(node.outputs, outs):
            if isinstance(value, np.ndarray):
                b.var_root[var] = (b.add(_Root("python", value, var)), 0)
        kinds.append(PYTHON)
        infos.append(outs)
    if KERNEL not in kinds:
        return None

    # what Python reads: results, inputs of thunk-run nodes, and (backwards) what the views
    # and inplace kernels among those read from; such views run their thunks too
    needed = set(fgraph.outputs)
    for node, kind in zip(vm.nodes, kinds):
        if kind == PYTHON:
            needed.update(node.inputs)
    for i in reversed(range(len(kinds))):
        node = vm.nodes[i]
        if kinds[i] == VIEW and node.outputs[0] in needed:
            kinds[i] = VIEW_RUN
            needed.update(node.inputs)
        elif kinds[i] == KERNEL and infos[i][1] is not None and node.outputs[0] in needed:
            needed.add(infos[i][1])

    # buffers a result shares memory with are fresh every call; the others are pinned
    results = [c[0] for c in vm.output_storage if isinstance(c[0], np.ndarray) and c[0].size]
    fresh, cells, fresh_ids = [], [], set()
    for r in b.roots:
        if r.kind != "buffer":
            continue
        if any(_overlap(r.lo, r.hi, v) for v in results):
            layout = _layout(r.value)
            if layout is None:
                return None
            fresh.append((r.index, storage[r.var], layout))
            fresh_ids.add(r.index)
        elif r.var in needed:
            cells.append((storage[r.var], r.value, False))

    busy = {b.var_root[v][0] for v in needed if v in b.var_root} | {
        r for r in b.roots if r.index in fresh_ids}
    _share_buffers([info[0] for kind, info in zip(kinds, infos) if kind == KERNEL], busy)

    items, finish, seg = [], [], None
    for pos, (node, thunk, kind, info) in enumerate(zip(vm.nodes, vm.thunks, kinds, infos)):
        cells_out = [storage[v] for v in node.outputs]
        if kind == STATIC:
            pairs = list(zip(cells_out, info))
            cells += [(c, v, isinstance(v, np.ndarray))
                      for var, (c, v) in zip(node.outputs, pairs) if var in needed]
            finish.append((kind, node, thunk, pairs))
        elif kind == KERNEL:
            steps, alias = info
            if seg is None:
                seg = _Segment()
                items.append(seg)
            for fn, refs, shapes, strides, sop, sig in steps:
                seg.steps.append((fn, refs, shapes, strides))
                seg.owners.append((node, thunk, sop, sig))
            if alias is not None:
                if node.outputs[0] in needed:
                    seg.fixups.append((cells_out[0], storage[alias]))
                finish.append((kind, node, thunk, ("alias", cells_out[0], storage[alias])))
            else:
                root = b.var_root[node.outputs[0]][0]
                finish.append((kind, node, thunk, ("buffer", cells_out[0], root.value)
                               if root.index not in fresh_ids else None))
        else:
            if kind != VIEW:
                seg = None
                checks = []
                if kind == PYTHON:
                    checks = [(c, _geometry(v), b.var_root[var][0].index)
                              for var, c, v in zip(node.outputs, cells_out, info)
                              if isinstance(v, np.ndarray)]
                items.append(_PyItem(pos, node, thunk, checks))
            finish.append((kind, node, thunk, None))

    # the plan keeps what its pointers point into, not the caller's arrays
    keep: list = [r.value for r in b.roots if r.kind in ("fixed", "temp")
                  or r.kind == "buffer" and r.index not in fresh_ids]
    for item in items:
        if isinstance(item, _Segment):
            item.seal(keep)
    roots = (ctypes.c_void_p * max(1, len(b.roots)))()
    for r in b.roots:
        if r.kind in ("fixed", "temp") or (r.kind == "buffer" and r.index not in fresh_ids):
            roots[r.index] = r.ptr
    return Plan(run_steps, roots, items, inputs, fresh, cells, finish, keep)
