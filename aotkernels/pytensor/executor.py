"""The plan executor: one call of a mode-AOT function from its ``Plan``.

A plan (made by ``planner.build_plan``) is a list of items over a table of roots: a
``Segment`` is consecutive kernel steps run by one ``aotk_run_steps`` call into the
library's C shim, a ``PyItem`` a node run by its thunk in between. Per call, Python
writes only the roots that change (the caller's input arrays, fresh result buffers, the
values of thunk-run nodes); a value whose geometry differs from the recorded one makes the
rest of that call run thunk by thunk, and the plan is dropped.
"""

from __future__ import annotations

import ctypes
from collections import Counter
from typing import NamedTuple

import numpy as np

# how a node runs in a plan
KERNEL, VIEW, VIEW_RUN, STATIC, PYTHON = "kernel", "view", "view (run)", "static", "python"


class Step(ctypes.Structure):
    """``aotk_step`` in the shim: a kernel and its operands as (root index, byte offset)."""

    _fields_ = [("fn", ctypes.c_void_p), ("n", ctypes.c_int64), ("operands", ctypes.c_void_p),
                ("shapes", ctypes.c_void_p), ("strides", ctypes.c_void_p)]


_from_buffer, _addressof = ctypes.c_char.from_buffer, ctypes.addressof


def pointer(a: np.ndarray) -> int:
    """``a.ctypes.data``, four times faster for writable C-contiguous arrays (the buffer
    protocol hands out the same pointer; a read-only, strided or empty one refuses)."""
    try:
        return _addressof(_from_buffer(a))
    except (TypeError, ValueError, BufferError):
        return a.ctypes.data


def geometry(x):
    """(shape, strides, dtype) of an array, None for anything else."""
    return (x.shape, x.strides, x.dtype) if isinstance(x, np.ndarray) else None


def raise_in_node(vm, node, thunk):
    """Re-raise the exception being handled as PyTensor does for a failing node."""
    from pytensor.link.utils import raise_with_op

    raise_with_op(vm.fgraph, node, thunk)


class Segment:
    """Consecutive kernel steps, one ``aotk_run_steps`` call."""

    def __init__(self):
        self.steps: list = []  # (fn address, [(root, offset)], shapes, strides)
        self.owners: list = []  # per step: (node, thunk, Prepared)
        self.fixups: list = []  # (cell, cell): inplace results, set after the steps

    def seal(self, keep: list) -> None:
        """Build the C table of steps; ``keep`` holds what it points into."""
        table = (Step * len(self.steps))()
        for step, (fn, refs, shapes, strides) in zip(table, self.steps):
            ops = (ctypes.c_int64 * (2 * len(refs)))(
                *[x for r, off in refs for x in (r.index, off)])
            keep += [ops, shapes, strides]
            step.fn, step.n, step.operands = fn, len(refs), ctypes.addressof(ops)
            step.shapes, step.strides = ctypes.addressof(shapes), ctypes.addressof(strides)
        self.table, self.steps = table, None
        self.status = ctypes.c_int32(0)
        # the call's arguments, made once: converting them per call costs more than the call
        self.n = ctypes.c_int64(len(table))
        self.table_p = ctypes.c_void_p(ctypes.addressof(table))
        self.status_p = ctypes.c_void_p(ctypes.addressof(self.status))


class PyItem:
    """A node run by its thunk; ``checks``: (cell, recorded geometry, root index or None)."""

    __slots__ = ("pos", "node", "thunk", "checks")

    def __init__(self, pos, node, thunk, checks):
        self.pos, self.node, self.thunk, self.checks = pos, node, thunk, checks


class Layout(NamedTuple):
    """Where a plan's values live, for callers that run it without Python
    (``cplan.export``): per root its kind (``planner``'s), the writable pinned roots
    (index, array), and per graph output (root index, byte offset from the root, recorded
    geometry), or None where the output has no root."""

    kinds: tuple
    pinned: tuple
    outputs: tuple


class Plan:
    """A program for one input geometry of one function (see the module docstring)."""

    def __init__(self, run_steps, roots, items, inputs, fresh, cells, finish, keep,
                 layout: Layout, fresh_views: list = ()):
        self.run_steps, self.roots, self.items = run_steps, roots, items
        self.layout = layout
        self.roots_p = ctypes.c_void_p(ctypes.addressof(roots))
        self.inputs = inputs  # [(root index, cell)]
        self.seen = [None] * len(inputs)  # the input arrays whose pointers are in ``roots``
        self.fresh = fresh  # [(root index, cell, (shape, dtype, axis order))]
        # [(cell, root index, byte offset, shape, strides, dtype)]: views of fresh buffers
        self.fresh_views = list(fresh_views)
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
                roots[index] = pointer(v)
                seen[k] = v
        made = {}
        for index, cell, (shape, dtype, perm) in self.fresh:
            made[index] = base = np.empty(shape, dtype)
            a = base if perm is None else base.transpose(perm)
            cell[0] = a
            roots[index] = pointer(a)
        for cell, index, offset, shape, strides, dtype in self.fresh_views:
            cell[0] = np.ndarray(shape, dtype, made[index], offset, strides)
        for cell, value, copy in self.cells:
            cell[0] = value.copy() if copy else value
        for item in self.items:
            if item.__class__ is Segment:
                failed = self.run_steps(item.n, item.table_p, self.roots_p, item.status_p)
                if failed:
                    node, thunk, prepared = item.owners[failed - 1]
                    try:
                        prepared.fail(item.status.value)  # what the first call raised
                    except Exception:
                        raise_in_node(vm, node, thunk)
                for dst, src in item.fixups:
                    dst[0] = src[0]
                continue
            try:
                item.thunk()
            except Exception:
                raise_in_node(vm, item.node, item.thunk)
            for cell, recorded, index in item.checks:
                value = cell[0]
                if geometry(value) != recorded:
                    self._finish(vm, item.pos)
                    return False
                if index is not None:
                    roots[index] = pointer(value)
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
                raise_in_node(vm, node, thunk)
