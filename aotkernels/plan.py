"""The plan executor: run a mode-AOT function's kernels from one C loop per segment.

After a normal (thunk by thunk) call, every elementwise node knows its resolved kernel and
geometry (``Prepared``). ``build_plan`` turns the graph into segments: runs of consecutive
kernel steps, which the library's ``aotk_run_plan`` executes with no Python in between,
and the other nodes (reductions, BLAS, views, fallbacks), whose thunks run as before. The
plan holds for inputs of one geometry (shapes, strides, dtypes) and is keyed by it.

Buffers: an intermediate a kernel writes gets one buffer for the life of the plan, so its
pointer is baked into the step; results the caller receives are allocated fresh each call
(never an internal buffer), as are buffers an inplace kernel later turns into a result.
Per call, Python only writes the pointers that change (inputs, fresh results, outputs of
the thunk-run nodes, after checking their geometry) and makes one C call per segment. A
value whose geometry differs from the plan's makes the rest of that call run thunk by thunk
and drops the plan; nothing is ever called with a stale geometry.
"""

from __future__ import annotations

import ctypes

import numpy as np

from aotkernels.resolver import _raise_status


class _Step(ctypes.Structure):
    _fields_ = [("fn", ctypes.c_void_p), ("data", ctypes.c_void_p),
                ("shapes", ctypes.c_void_p), ("strides", ctypes.c_void_p)]


def _geometry(x):
    return (x.shape, x.strides, x.dtype) if isinstance(x, np.ndarray) else None


def input_key(cells) -> tuple | None:
    """The plan key of a call: every input's geometry (None: some input is no ndarray)."""
    key = tuple(_geometry(c[0]) for c in cells)
    return None if None in key else key


class _Segment:
    """Consecutive kernel steps run by one ``aotk_run_plan`` call."""

    def __init__(self, run_plan):
        self.run_plan = run_plan
        self.steps: list = []  # (Prepared, data array, node, thunk)
        self.slots: list = []  # (data array, index, var): pointers written per call
        self.checks: list = []  # (var, geometry): values produced outside this plan's kernels
        self.aliases: list = []  # (var, root var): inplace results, set after the call
        self.table = None
        self.status = ctypes.c_int32(0)

    def seal(self) -> None:
        self.table = (_Step * len(self.steps))(*[
            _Step(ctypes.cast(p.fn, ctypes.c_void_p).value, ctypes.addressof(data),
                  ctypes.addressof(p.shapes), ctypes.addressof(p.strides))
            for p, data, _, _ in self.steps])
        self.n = len(self.steps)


class Plan:
    """Segments and buffers for one input geometry of one function."""

    def __init__(self, items, fresh, pinned, cells):
        self.items = items  # _Segment or (node, thunk)
        self.fresh = fresh  # [(var, shape, dtype)]: allocated per call
        self.pinned = pinned  # [(var, array)]: allocated once
        self.cells = cells  # var -> storage cell

    def run(self, vm) -> bool:
        """Run one call; False if a value's geometry left the plan (the call completed
        thunk by thunk from that point, and the plan must be dropped)."""
        cells = self.cells
        for var, shape, dtype in self.fresh:
            cells[var][0] = np.empty(shape, dtype)
        for var, buf in self.pinned:
            cells[var][0] = buf
        pointers = {}
        for i, item in enumerate(self.items):
            if not isinstance(item, _Segment):
                node, thunk = item
                try:
                    thunk()
                except Exception:
                    _reraise(vm, node, thunk)
                continue
            for var, geometry in item.checks:
                if _geometry(cells[var][0]) != geometry:
                    self._finish_with_thunks(vm, i)
                    return False
            for data, index, var in item.slots:
                ptr = pointers.get(var)
                if ptr is None:
                    ptr = pointers[var] = cells[var][0].ctypes.data
                data[index] = ptr
            failed = item.run_plan(item.n, item.table, ctypes.byref(item.status))
            if failed:
                prepared, _, node, thunk = item.steps[failed - 1]
                try:
                    _raise_status(prepared.sop, prepared.sig, item.status.value)
                except Exception:
                    _reraise(vm, node, thunk)
            for var, root in item.aliases:  # inplace results are their root's buffer
                cells[var][0] = cells[root][0]
        return True

    def _finish_with_thunks(self, vm, start: int) -> None:
        for item in self.items[start:]:
            pairs = [(s[2], s[3]) for s in item.steps] if isinstance(item, _Segment) else [item]
            for node, thunk in dict.fromkeys(pairs):  # a pairwise node is several steps
                try:
                    thunk()
                except Exception:
                    _reraise(vm, node, thunk)


def _reraise(vm, node, thunk):
    from pytensor.link.utils import raise_with_op

    raise_with_op(vm.fgraph, node, thunk)


def _kernel_steps(thunk):
    """[(Prepared, input vars, output var, input geometries)] for an elementwise thunk the plan
    can run, else
    None: every call site resolved on the caller's arrays as they were (no copy, no cast,
    no overlap) and a non-empty result."""
    from aotkernels.pytensor_mode import ElemwiseThunk

    if not isinstance(thunk, ElemwiseThunk):
        return None
    node = thunk.node
    if any(s.key is None or s.prepared is None or s.prepared.casts for s in thunk.sites):
        return None
    out = node.outputs[0]
    if not thunk.pairwise:
        steps = [(thunk.sites[0], list(node.inputs))]
    elif thunk.inplace is not None or any(v.type.dtype != out.type.dtype
                                          for v in node.inputs):
        return None
    else:
        steps = [(thunk.sites[0], list(node.inputs[:2]))]
        steps += [(s, [out, v]) for s, v in zip(thunk.sites[1:], node.inputs[2:])]
    # site.key: (out shape, out strides, *(shape, strides, dtype) of each operand)
    return [(site.prepared, ins, out, site.key[2:]) for site, ins in steps]


def build_plan(vm, run_plan) -> Plan | None:
    """A plan from the state the thunks were left in by the call that just ran, or None if
    no kernel step would leave Python."""
    fgraph = vm.fgraph
    storage = vm.storage_map
    inputs = set(fgraph.inputs)
    outputs = set(fgraph.outputs)
    produced: dict = {}  # var -> "kernel" | "alias"
    root: dict = {}  # var -> the var whose buffer it is (inplace chains)
    plan_items, out_geometry = [], {}
    for node, thunk in zip(vm.nodes, vm.thunks):
        steps = _kernel_steps(thunk)
        if steps is None:
            plan_items.append((node, thunk))
            continue
        out = node.outputs[0]
        site_key = thunk.sites[0].key
        out_geometry[out] = (site_key[0], site_key[1], np.dtype(out.type.dtype))
        if thunk.inplace is not None:
            src = node.inputs[thunk.inplace]
            root[out] = root.get(src, src)
            produced[out] = "alias"
        else:
            root[out] = out
            produced[out] = "kernel"
        plan_items.append((node, thunk, steps))
    if not any(len(item) == 3 for item in plan_items):
        return None
    # buffers: fresh per call if any result aliases them, else pinned for the plan's life
    fresh_roots = {root[v] for v in outputs if v in root}
    fresh, pinned = [], []
    for var, kind in produced.items():
        if kind != "kernel":
            continue
        shape, strides, dtype = out_geometry[var]
        buf = np.empty(shape, dtype)
        if buf.strides != strides:
            return None  # the kernel was resolved for another layout
        if var in fresh_roots:
            fresh.append((var, shape, dtype))
        else:
            pinned.append((var, buf))
    pinned_ptr = {var: buf.ctypes.data for var, buf in pinned}
    # segments
    items, seg = [], None
    kernel_made = set(produced)
    for item in plan_items:
        if len(item) == 2:
            seg = None
            items.append(item)
            continue
        node, thunk, steps = item
        if seg is None:
            seg = _Segment(run_plan)
            items.append(seg)
        for prepared, ins, out, geometries in steps:
            data = (ctypes.c_void_p * (len(ins) + 1))()
            for index, var in enumerate([*ins, out]):
                base = root.get(var, var)
                if base in pinned_ptr:
                    data[index] = pinned_ptr[base]
                    continue
                seg.slots.append((data, index, base))
                if index < len(ins) and base not in kernel_made and base not in inputs:
                    # made by a thunk-run node (or a constant): check it each call
                    seg.checks.append((base, geometries[index]))
            seg.steps.append((prepared, data, node, thunk))
        if produced[node.outputs[0]] == "alias":
            seg.aliases.append((node.outputs[0], root[node.outputs[0]]))
    for item in items:
        if isinstance(item, _Segment):
            item.checks = list(dict.fromkeys(item.checks))
            item.seal()
    cells = {v: storage[v] for v in storage}
    return Plan(items, fresh, pinned, cells)
