"""The planner: a ``Plan`` from one recorded call of a mode-AOT function.

``build_plan`` turns the log of one call (``loop.record_call``) into a program over a
table of *roots*, the base pointers of the buffers a call touches:

- ``input``: a graph input (pointer written per call; the geometry is the plan's key);
- ``buffer``: a kernel node's own result, allocated once (``pinned``, and shared with other
  intermediates whose lives do not overlap) or, when a result the caller receives shares
  its memory, fresh every call (results are never internal buffers);
- ``temp`` / ``fixed``: scratch a node writes before reading (a reduction's accumulator) and
  contents that never change (constants, literals, values computed from shapes only);
- ``python``: the value of a node the plan cannot replay, written per call after that node
  ran and its geometry was compared with the recorded one.

Every kernel operand is a root plus a byte offset, so views (DimShuffle, Reshape, Subtensor
with constant indices, ...) cost nothing: they are offsets. A node is replayed only if its
record explains every byte its kernels read (an input, a root, or scratch written earlier
in the node) and its kernels write its whole result; any doubt leaves the node to its
thunk, which is slower, never wrong. The phases, in order: ``classify`` each node (static,
kernel steps, view, or thunk), find what Python ``needs`` to read, decide which buffers are
``fresh`` per call and which are pinned, ``share`` pinned memory, then ``assemble`` the
executor's items.
"""

from __future__ import annotations

import ctypes
import os

import numpy as np
from pytensor.graph.basic import Constant
from pytensor.tensor.basic import AllocEmpty
from pytensor.tensor.shape import Reshape

from aotkernels import record
from aotkernels.families.elemwise import prepare
from aotkernels.pytensor import fusion
from aotkernels.pytensor.executor import (
    KERNEL,
    LOOP,
    PYTHON,
    STATIC,
    VIEW,
    VIEW_RUN,
    Layout,
    Plan,
    PyItem,
    Segment,
    geometry,
)

try:
    from numpy.lib.array_utils import byte_bounds
except ImportError:  # NumPy 1.x
    byte_bounds = np.byte_bounds


def _empty_as(a: np.ndarray) -> np.ndarray:
    """New memory in ``a``'s layout, negative strides too (the reversed initial state of a
    gradient Scan's mit-mot output): a view of a fresh array; a layout with gaps comes out
    dense (the caller compares the strides)."""
    flip = tuple(slice(None, None, -1) if s < 0 else slice(None) for s in a.strides)
    return np.empty_like(a[flip])[flip]


def thunk_cells(vm) -> dict:
    """var -> the storage cell its thunks read and write. Not ``vm.storage_map``: PyTensor
    remaps that after making the thunks when it shares storage between variables
    (``reduce_storage_allocations``), so for some variables it names another cell."""
    cells = dict(zip(vm.fgraph.inputs, vm.input_storage))
    for node, thunk in zip(vm.nodes, vm.thunks):
        cells.update(zip(node.inputs, thunk.inputs))
        cells.update(zip(node.outputs, thunk.outputs))
    return cells



class _Root:
    __slots__ = ("kind", "value", "ptr", "lo", "hi", "index", "var")

    def __init__(self, kind: str, value: np.ndarray, var=None):
        self.kind, self.value, self.var = kind, value, var
        self.ptr = value.ctypes.data
        self.lo, self.hi = byte_bounds(value) if value.size else (self.ptr, self.ptr)
        self.index = -1


class _Planner:
    """The state of ``build_plan``: the roots, where each variable lives, and per node its
    kind and what the kind needs (steps, snapshots, values)."""

    def __init__(self, vm, static: set, max_operands: int, kernel_thunk: type,
                 writable: frozenset = frozenset(), executor=None):
        self.vm, self.static, self.kernel_thunk = vm, static, kernel_thunk
        self.writable, self.executor = writable, executor
        self.no_fusion = False
        self.max_operands = max_operands
        self.storage = thunk_cells(vm)
        self.roots: list[_Root] = []
        self.var_root: dict = {}  # var -> (root, byte offset of the value from root.ptr)
        self.kinds: list[str] = []  # per node: KERNEL, VIEW, STATIC, PYTHON (VIEW_RUN)
        self.infos: list = []  # per node: (steps, alias) | snapshots | output values | None
        self.needed: set = set()  # variables whose cells Python reads
        self.view_cells: list = []  # (var, recorded value): views in buffers Python reads
        self.fresh: list = []  # (root index, cell, layout): buffers made anew every call
        self.fresh_views: list = []  # (cell, root index, offset, shape, strides, dtype)
        self.cells: list = []  # (cell, value, copy?): cells set at the start of every call

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
        """Views of one input (``view_map``; Split makes several) whose other inputs are
        static: offsets."""
        view_map = getattr(node.op, "view_map", None) or {}
        if sorted(view_map) != list(range(len(node.outputs))):
            return False
        sources = {tuple(v) for v in view_map.values()}
        if len(sources) != 1 or len(view_map[0]) != 1:
            return False
        src = view_map[0][0]
        value = ins[src]
        if not (isinstance(value, np.ndarray)
                and all(isinstance(out, np.ndarray) for out in outs)):
            return False
        if not all(self.is_static(v) for k, v in enumerate(node.inputs) if k != src):
            return False
        ref = self.root_of(node.inputs[src], value)
        if ref is None:
            return False
        vlo, vhi = byte_bounds(value)
        placed = []
        for var, out in zip(node.outputs, outs):
            if out.size == 0:
                placed.append((var, ref))
                continue
            lo, hi = byte_bounds(out)
            if not (vlo <= lo and hi <= vhi):
                return False  # a copy, not a view (Reshape of a non-contiguous input)
            placed.append((var, (ref[0], ref[1] + out.ctypes.data - value.ctypes.data)))
        self.var_root.update(placed)
        return True

    def unstatic(self, ref, out: np.ndarray):
        """The identity kernel copying the fixed value of ``var`` (a snapshot of a static
        value, a constant) to ``out``'s memory, or None: only a dense value, whole and in
        order. The fixed memory is only read."""
        if (ref is None or ref[0].kind != "fixed" or ref[1] != 0
                or not out.flags.c_contiguous):
            return None
        snap = ref[0].value
        if not snap.flags.c_contiguous or snap.size != out.size or snap.dtype != out.dtype:
            return None
        src = snap.reshape(out.shape)
        prepared, used, _ = prepare("identity", src, out=out)
        if prepared is None or used[0] is not src or prepared.casts:
            return None
        return prepared

    def alloc_empty(self, node, outs):
        """``AllocEmpty`` of a static shape: a buffer no step needs to fill (its readers,
        e.g. an inplace gemv with beta 0, write it first)."""
        if (isinstance(node.op, AllocEmpty) and isinstance(outs[0], np.ndarray)
                and all(self.is_static(v) for v in node.inputs)):
            return [], [_Root("buffer", outs[0], node.outputs[0])], None
        return None

    def copied_reshape(self, node, ins, outs):
        """A ``Reshape`` that copied (its input not C-contiguous: a transposed or strided
        value): one identity kernel writing the input in C order into the node's own buffer,
        instead of NumPy's copy in Python every call. Same return as ``kernel``, or None."""
        if not isinstance(node.op, Reshape) or not all(self.is_static(v)
                                                       for v in node.inputs[1:]):
            return None
        value, out = ins[0], outs[0]
        if not (isinstance(value, np.ndarray) and isinstance(out, np.ndarray) and out.size
                and out.size == value.size and out.dtype == value.dtype
                and out.flags.c_contiguous and not _overlap(*byte_bounds(value), out)):
            return None
        ref = self.root_of(node.inputs[0], value)
        if ref is None:
            return None
        dst = out.reshape(value.shape)
        prepared, used, _ = prepare("identity", value, out=dst)
        if prepared is None or used[0] is not value or prepared.casts:
            return None
        own = _Root("buffer", out, node.outputs[0])
        step = fusion.Step([ref, (own, 0)], prepared,
                           [(value.shape, value.strides), (dst.shape, dst.strides)])
        return [step], [own], None

    def kernel(self, node, thunk, calls, ins, outs):
        """The node's steps, or None if its record does not explain everything it does.

        Returns (steps, new roots, inplace source var or None). Each operand must lie in
        exactly one place: an input's value, this node's result, or scratch of this node
        (recorded conversions and literals). A node's further results (LUFactor's pivots)
        must be workspaces its kernels write: they become buffers of their own."""
        if (not isinstance(thunk, self.kernel_thunk)
                or not all(self.is_static(node.inputs[k])
                           for k in getattr(thunk, "shape_inputs", ()))):
            return None
        out, extra = outs[0], {id(o): var for var, o in zip(node.outputs[1:], outs[1:])}
        if not isinstance(out, np.ndarray):
            return None
        if extra and (any(value is o for value in ins for o in outs)
                      or not all(isinstance(o, np.ndarray) for o in outs)):
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
        first = None  # the copy of a static value a kernel then updates in place
        alias = next((v for v, value in zip(node.inputs, ins) if value is out), None)
        through = getattr(thunk, "passes_through", None)  # the result is that input, unread
        if through is not None:
            if alias is not node.inputs[through] or self.var_root.get(alias) is None:
                return None
        elif alias is not None:
            ref = self.var_root.get(alias)
            if ref is None or ref[0].kind == "fixed" or (
                    ref[0].kind == "input" and ref[0].var not in self.writable):
                first = self.unstatic(ref, out)
                if first is None:
                    return None  # never write into constants, static values or inputs
                # a static value updated in place: copied into the node's own buffer first
                places = [p for p in places if p[2] != out.ctypes.data]
                alias = None
        if alias is None and through is None:
            if out.size and any(_overlap(p[0], p[1], out) for p in places):
                return None  # shares memory with an input, but is not it
            own = _Root("buffer", out, node.outputs[0])
            new.append(own)
            written[own] = 0
            place(out, (own, 0))
            if first is not None:  # the static value's copy: the first step
                first_step = fusion.Step([(ref[0], 0), (own, 0)], first, None)

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
        if first is not None:
            steps.append(first_step)
            written[own] += out.size
        for call in calls:
            if isinstance(call, record.Opaque):
                return None  # NumPy made (part of) the result
            if isinstance(call, record.Literal):
                scratch("fixed", call.array)
                continue
            if isinstance(call, record.Scratch):
                written[scratch("temp", call.array)] = 0
                continue
            if isinstance(call, record.Workspace):  # the kernel writes it first
                var = extra.pop(id(call.array), None)
                if var is None:
                    scratch("temp", call.array)
                else:  # a further result of the node
                    new.append(_Root("buffer", call.array, var))
                    place(call.array, (new[-1], 0))
                continue
            if isinstance(call, record.Convert):
                if locate(call.dst) is None:
                    written[scratch("temp", call.dst)] = 0
                call = _convert_kernel(call)
                if call is None:
                    return None
            if len(call.arrays) > self.max_operands:
                return None
            refs = []
            for j, a in enumerate(call.arrays):
                ref = locate(a)
                if ref is None:
                    return None
                r = ref[0]
                if r in written and written[r] < r.value.size and (
                        j < len(call.arrays) - 1 or call.prepared.update):
                    return None  # scratch read before it was written
                refs.append(ref)
            r = refs[-1][0]
            if (r.kind == "fixed" or r.kind == "input" and r.var not in self.writable
                    or through is not None and r.kind != "temp"):
                return None
            if r in written:
                written[r] += call.arrays[-1].size
            steps.append(fusion.Step(refs, call.prepared,
                                     [(a.shape, a.strides) for a in call.arrays]))
        if alias is None and written[new[0]] < out.size:
            return None  # part of the result was made outside the record (NumPy)
        if alias is not None and not steps or extra:
            return None  # no step, or a further result the record does not explain
        return steps, new, alias

    def loop(self, node, ins, outs):
        """A Scan node as one loop step (``scan_loop.build``), or None. Returns (steps, new
        roots, {output index: the input it is computed in place of}). ``AOT_SCAN_LOOP=0``
        leaves Scans on ``perform`` (plans made while it is set)."""
        from aotkernels.pytensor import scan_loop

        if (not scan_loop.is_scan(node) or self.executor is None
                or os.environ.get("AOT_SCAN_LOOP", "1") in ("0", "")):
            return None
        op = node.op
        info = op.info
        n_tap = info.n_mit_mot + info.n_mit_sot + info.n_sit_sot
        counts = range(1 + info.n_seqs + n_tap, 1 + info.n_seqs + n_tap + info.n_nit_sot)
        if not all(self.is_static(node.inputs[k]) for k in (0, *counts)):
            return None  # the number of steps and the nit-sot lengths: fixed by the plan's key
        in_refs = [self.root_of(v, x) if isinstance(x, np.ndarray) else None
                   for v, x in zip(node.inputs, ins)]
        aliases, out_refs, new = {}, [], []
        for j, (var, out) in enumerate(zip(node.outputs, outs)):
            if not isinstance(out, np.ndarray):
                return None
            src = (op.destroy_map.get(j) or [None])[0]
            if src is not None:
                ref = in_refs[src]
                if ins[src] is not out or ref is None:
                    return None
                if ref[0].kind not in ("fixed", "input"):
                    aliases[j] = node.inputs[src]
                    out_refs.append(ref)
                    continue
                # never write into constants, static values or inputs: the output gets
                # memory of its own (standing for the recorded memory: a result that is a
                # view of it is made fresh every call) and a copy of its initial state
                own = _Root("buffer", _empty_as(out), var)
                if own.value.strides != out.strides:
                    return None
                own.lo, own.hi = byte_bounds(out) if out.size else (own.lo, own.hi)
                new.append(own)
                out_refs.append((own, 0))
                continue
            if out.size and any(isinstance(x, np.ndarray) and x.size
                                and _overlap(*byte_bounds(x), out) for x in (*ins, *outs[:j])):
                return None  # shares memory with an input or another output
            own = _Root("buffer", out, var)
            new.append(own)
            out_refs.append((own, 0))
        call = scan_loop.build(node, ins, outs, in_refs, out_refs, set(aliases),
                               self.executor, build_plan, self.kernel_thunk)
        if call is None:
            return None
        return [fusion.Step(call.refs, call, None)], new, aliases

    # -- phases of build_plan, in order --------------------------------------------------

    def add_inputs(self, values: list) -> bool:
        """The graph's inputs become ``input`` roots (False: one is not an array)."""
        self.inputs = []
        for var, value in zip(self.vm.fgraph.inputs, values):
            if not isinstance(value, np.ndarray):
                return False
            root = self.add(_Root("input", value, var))
            self.var_root[var] = (root, 0)
            self.inputs.append((root.index, self.storage[var]))
        return True

    def classify(self, records: list) -> None:
        """Each node is STATIC (snapshots), KERNEL (steps), VIEW (an offset) or PYTHON."""
        for node, thunk, (calls, ins, outs, snaps) in zip(self.vm.nodes, self.vm.thunks,
                                                          records):
            if snaps is not None and all(geometry(s) == geometry(o)
                                         for s, o in zip(snaps, outs)):
                for var, snap in zip(node.outputs, snaps):
                    if isinstance(snap, np.ndarray):
                        self.var_root[var] = (self.add(_Root("fixed", snap)), 0)
                self._kind(STATIC, snaps)
                continue
            looped = self.loop(node, ins, outs)
            if looped is not None:
                steps, new, aliases = looped
                for r in new:
                    self.add(r)
                own = iter(new)
                for j, var in enumerate(node.outputs):
                    self.var_root[var] = (self.var_root[aliases[j]] if j in aliases
                                          else (next(own), 0))
                self._kind(LOOP, (steps, aliases))
                continue
            made = (self.kernel(node, thunk, calls, ins, outs) or self.alloc_empty(node, outs)
                    or self.copied_reshape(node, ins, outs))
            if made is not None:
                steps, new, alias = made
                for r in new:
                    self.add(r)
                    if r.kind == "buffer" and r.var is not node.outputs[0]:
                        self.var_root[r.var] = (r, 0)  # a further result
                out = node.outputs[0]
                self.var_root[out] = self.var_root[alias] if alias is not None else (new[0], 0)
                self._kind(KERNEL, (steps, alias))
            elif self.view(node, ins, outs):
                self._kind(VIEW, outs)
            else:
                for var, value in zip(node.outputs, outs):
                    if isinstance(value, np.ndarray):
                        self.var_root[var] = (self.add(_Root("python", value, var)), 0)
                self._kind(PYTHON, outs)

    def _kind(self, kind: str, info) -> None:
        self.kinds.append(kind)
        self.infos.append(info)

    def find_needed(self) -> None:
        """What Python reads: results, inputs of thunk-run nodes, and (backwards) what the
        views and inplace kernels among those read from. A view Python reads is handed to
        its cell at the start of a call if it lies in a kernel's buffer (its contents are
        written later, its place is known); any other such view runs its thunk."""
        needed = self.needed
        needed.update(self.vm.fgraph.outputs)
        for node, kind in zip(self.vm.nodes, self.kinds):
            if kind == PYTHON:
                needed.update(node.inputs)
        for i in reversed(range(len(self.kinds))):
            node, kind, info = self.vm.nodes[i], self.kinds[i], self.infos[i]
            if kind == VIEW and any(out in needed for out in node.outputs):
                if all(self.var_root[out][0].kind == "buffer" for out in node.outputs):
                    self.view_cells += [(out, value) for out, value in zip(node.outputs, info)
                                        if out in needed]
                    continue
                self.kinds[i] = VIEW_RUN
                needed.update(node.inputs)
            elif kind == KERNEL and info[1] is not None and node.outputs[0] in needed:
                needed.add(info[1])
            elif kind == LOOP:
                needed.update(src for j, src in info[1].items() if node.outputs[j] in needed)

    def place_buffers(self) -> bool:
        """Buffers a result shares memory with are fresh every call (False: one has a
        layout ``np.empty`` cannot make); the others are pinned, and given to their cells
        at the start of a call where Python reads them."""
        results = [c[0] for c in self.vm.output_storage
                   if isinstance(c[0], np.ndarray) and c[0].size]
        self.fresh_ids = set()
        for r in self.roots:
            if r.kind != "buffer":
                continue
            if any(_overlap(r.lo, r.hi, v) for v in results):
                layout = _layout(r.value)
                if layout is None:
                    return False
                self.fresh.append((r.index, self.storage[r.var], layout))
                self.fresh_ids.add(r.index)
            elif r.var in self.needed:
                self.cells.append((self.storage[r.var], r.value, False))
        for var, value in self.view_cells:  # a pinned buffer keeps the recorded memory
            root, offset = self.var_root[var]
            if root.index in self.fresh_ids:
                self.fresh_views.append((self.storage[var], root.index, offset, value.shape,
                                         value.strides, value.dtype))
            else:
                self.cells.append((self.storage[var], value, False))
        return True

    def fuse(self) -> None:
        """The order of each segment's steps (``self.order``: lists of (node position,
        step)), and the runs of elementwise steps fused kernels may replace
        (``fusion.find_runs``): with fusion on, steps of one shape are brought together
        (``fusion.schedule``), and a run writes only what is read after it."""
        self.runs, self.order, seg = [], [], None
        for pos, (kind, info) in enumerate(zip(self.kinds, self.infos)):
            if kind in (KERNEL, LOOP):
                if seg is None:
                    seg = []
                    self.order.append(seg)
                seg += [(pos, step) for step in info[0]]
            elif kind not in (VIEW, STATIC):
                seg = None
        if not fusion.enabled() or self.no_fusion:
            return
        self.order = [fusion.schedule(steps) for steps in self.order]
        segments, index = [], 0
        for steps in self.order:
            segments.append([(index + k, step) for k, (_, step) in enumerate(steps)])
            index += len(steps)
        readers: dict = {}  # root -> plan-wide indices of the steps reading it
        for steps in segments:
            for i, step in steps:
                reads = step.refs if step.prepared.update else step.refs[:-1]
                for r, _ in reads:
                    readers.setdefault(r, []).append(i)
        held = {self.var_root[v][0] for v in self.needed if v in self.var_root}

        def kept(root, first: int, last: int) -> bool:
            return (root.kind not in ("buffer", "temp") or root in held
                    or root.index in self.fresh_ids
                    or any(not first <= i <= last for i in readers.get(root, ())))

        self.runs = fusion.find_runs(segments, kept, self.max_operands)

    def share(self) -> None:
        """Pinned intermediates whose lives do not overlap share memory."""
        busy = {self.var_root[v][0] for v in self.needed if v in self.var_root}
        busy |= {r for r in self.roots if r.index in self.fresh_ids}
        _share_buffers([step for steps in self.order for _, step in steps], busy, self.runs)

    def assemble(self) -> tuple[list, list]:
        """The executor's items (segments of steps, thunk-run nodes) and, per node, how to
        complete a call that leaves the plan (``Plan._finish``)."""
        items, finish, seg, index = [], [], None, 0
        order = iter(self.order)
        for pos, (node, thunk, kind, info) in enumerate(zip(self.vm.nodes, self.vm.thunks,
                                                            self.kinds, self.infos)):
            cells_out = [self.storage[v] for v in node.outputs]
            if kind == STATIC:
                pairs = list(zip(cells_out, info))
                self.cells += [(c, v, isinstance(v, np.ndarray))
                               for var, (c, v) in zip(node.outputs, pairs) if var in self.needed]
                finish.append((kind, node, thunk, pairs))
            elif kind in (KERNEL, LOOP):
                steps, alias = info
                if seg is None:  # its steps in their scheduled order
                    seg = Segment()
                    items.append(seg)
                    for at, (refs, prepared, _) in next(order):
                        fn = ctypes.cast(prepared.fn, ctypes.c_void_p).value
                        seg.steps.append((fn, refs, prepared.shapes, prepared.strides))
                        seg.owners.append((self.vm.nodes[at], self.vm.thunks[at], prepared))
                        seg.indices.append(index)
                        index += 1
                if kind == LOOP:
                    finish.append((kind, node, thunk, self._materialise(node, alias, seg)))
                elif alias is not None:
                    if node.outputs[0] in self.needed:
                        seg.fixups.append((cells_out[0], self.storage[alias]))
                    finish.append((kind, node, thunk,
                                   ("alias", cells_out[0], self.storage[alias])))
                else:
                    roots = [self.var_root[v][0] for v in node.outputs]
                    finish.append((kind, node, thunk, ("buffer", [
                        (c, r.value) for c, r in zip(cells_out, roots)
                        if r.index not in self.fresh_ids])))
            else:
                if kind != VIEW:
                    seg = None
                    checks = []
                    if kind == PYTHON:
                        checks = [(c, geometry(v), self.var_root[var][0].index)
                                  for var, c, v in zip(node.outputs, cells_out, info)
                                  if isinstance(v, np.ndarray)]
                    items.append(PyItem(pos, node, thunk, checks))
                finish.append((kind, node, thunk, None))
        return items, finish

    def _materialise(self, node, aliases: dict, seg: Segment) -> list:
        """Per output of a loop node: how ``Plan._finish`` gives its cell its value, as for
        a kernel node's one output; aliases Python reads are set after the segment."""
        out = []
        for j, var in enumerate(node.outputs):
            cell = self.storage[var]
            if j in aliases:
                if var in self.needed:
                    seg.fixups.append((cell, self.storage[aliases[j]]))
                out.append(("alias", cell, self.storage[aliases[j]]))
            else:
                root = self.var_root[var][0]
                out.append(("buffer", cell, root.value)
                           if root.index not in self.fresh_ids else None)
        return out

    def seal(self, run_steps, items: list, finish: list) -> Plan:
        """The root table and the C step tables; the plan keeps what they point into (its
        own buffers and constants, never the caller's arrays)."""
        pinned = [r for r in self.roots if r.kind in ("fixed", "temp")
                  or r.kind == "buffer" and r.index not in self.fresh_ids]
        keep: list = [r.value for r in pinned]
        for item in items:
            if isinstance(item, Segment):
                item.seal(keep)
        roots = (ctypes.c_void_p * max(1, len(self.roots)))()
        for r in pinned:
            roots[r.index] = r.ptr
        outputs = []
        for var, cell in zip(self.vm.fgraph.outputs, self.vm.output_storage):
            ref = self.var_root.get(var)
            outputs.append(None if ref is None else (ref[0].index, ref[1], geometry(cell[0])))
        layout = Layout(tuple(r.kind for r in self.roots),
                        tuple((r.index, r.value) for r in pinned if r.kind != "fixed"),
                        tuple(outputs))
        plan = Plan(run_steps, roots, items, self.inputs, self.fresh, self.cells, finish, keep,
                    layout, self.fresh_views)
        if self.runs:
            plan.request_fusion(self.runs)
        return plan


def _overlap(lo: int, hi: int, a: np.ndarray) -> bool:
    alo, ahi = byte_bounds(a)
    return alo < hi and lo < ahi


def _share_buffers(steps: list, busy: set, runs: list) -> None:
    """Let intermediates whose lives do not overlap share memory, as PyTensor's garbage
    collection would: a pinned buffer or scratch array that no step reads after step ``i``
    is handed to one first written after ``i``. Only C-contiguous arrays are shared, and
    nothing Python reads (``busy``). The steps of a fused run count as one (its kernel
    touches all their memory in every iteration)."""
    when = {i: run.first for run in runs for i in range(run.first, run.last + 1)}
    first, last = {}, {}
    for i, step in enumerate(steps):
        i = when.get(i, i)
        for r, _ in step.refs:
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
    return record.Kernel(prepared, [src, dst])




def build_plan(vm, records: list, static: set, executor, kernel_thunk: type,
               writable: frozenset = frozenset(), body: bool = False) -> Plan | None:
    """A plan from one recorded call (``loop.record_call``), or None if no kernel would
    leave Python. ``executor``: (``aotk_run_steps``, its operand limit) from the library.
    ``writable``: graph inputs a kernel may update in place (a Scan body's preallocated
    taps, ``scan_loop``), which a plan of a function never does to its caller's arrays.
    ``body``: the plan is a loop body (``scan_loop``), not fused: its steps are sealed into
    the loop step before a background compile could deliver fused kernels."""
    if executor is None:
        return None
    run_steps, max_operands = executor
    p = _Planner(vm, static, max_operands, kernel_thunk, writable, executor)
    p.no_fusion = body
    if not p.add_inputs(records[0]):
        return None
    p.classify(records[1:])
    if KERNEL not in p.kinds and LOOP not in p.kinds:
        return None
    p.find_needed()
    if not p.place_buffers():
        return None
    p.fuse()
    p.share()
    items, finish = p.assemble()
    return p.seal(run_steps, items, finish)
