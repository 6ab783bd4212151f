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
import os
import weakref
from collections import Counter
from typing import NamedTuple

import numpy as np
from pytensor.graph.basic import Constant

# how a node runs in a plan
KERNEL, VIEW, VIEW_RUN, STATIC, PYTHON = "kernel", "view", "view (run)", "static", "python"
LOOP = "loop"  # a Scan node as one loop step (``scan_loop``)


class Step(ctypes.Structure):
    """``aotk_step`` in the shim: a kernel and its operands as (root index, byte offset)."""

    _fields_ = [("fn", ctypes.c_void_p), ("n", ctypes.c_int64), ("operands", ctypes.c_void_p),
                ("shapes", ctypes.c_void_p), ("strides", ctypes.c_void_p)]


class Call(ctypes.Structure):
    """``aotk_call`` in the shim: a segment's steps, and the arrays whose data pointers the
    shim writes into their roots before running them (``aotk_run_call``)."""

    _fields_ = [("n_steps", ctypes.c_int64), ("steps", ctypes.c_void_p),
                ("roots", ctypes.c_void_p), ("status", ctypes.c_void_p),
                ("n_arrays", ctypes.c_int64), ("array_roots", ctypes.c_void_p),
                ("arrays", ctypes.c_void_p), ("data_offset", ctypes.c_int64)]


_from_buffer, _addressof = ctypes.c_char.from_buffer, ctypes.addressof


def data_offset() -> int | None:
    """Where an ndarray object keeps its data pointer (``PyArray_DATA`` reads the first
    field after the object header), checked on arrays of several kinds; None if this
    interpreter lays objects out otherwise (the fast path then asks NumPy per array)."""
    global _data_offset
    if _data_offset == -1:
        offset = object.__basicsize__
        arrays = [np.empty(3), np.zeros((2, 3), np.float32).T, np.empty(()), np.empty(0)]
        read = ctypes.c_void_p.from_address
        ok = all(read(id(a) + offset).value == a.ctypes.data for a in arrays)
        _data_offset = offset if ok else None
    return _data_offset


_data_offset: int | None = -1


class Wait:
    """A plan's fused kernels to come: ``arrived`` once they are ready to swap in (or
    failed, or were swapped), which fast paths made meanwhile check. In a forked child the
    thread that would finish them is not there: every wait counts as arrived, and the
    plan's ``fuse`` asks again."""

    __slots__ = ("arrived", "__weakref__")
    unfinished: weakref.WeakSet = weakref.WeakSet()

    def __init__(self) -> None:
        self.arrived = False
        Wait.unfinished.add(self)

    def arrive(self, _future=None) -> None:
        self.arrived = True
        Wait.unfinished.discard(self)


def _forked() -> None:
    for wait in list(Wait.unfinished):
        wait.arrive()


os.register_at_fork(after_in_child=_forked)


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
        self.indices: list = []  # per step: its plan-wide index (fused runs name them)
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
        self.table = table
        self.status = ctypes.c_int32(0)
        # the call's arguments, made once: converting them per call costs more than the call
        self.n = ctypes.c_int64(len(table))
        self.table_p = ctypes.c_void_p(ctypes.addressof(table))
        self.status_p = ctypes.c_void_p(ctypes.addressof(self.status))


    def fused(self, runs: dict, keep: list) -> Segment:
        """This segment with each run whose kernel is ready (``runs``: first plan-wide
        index -> (Run, kernel address)) as one step; a failure is reported as its last
        node's."""
        seg = Segment()
        seg.fixups = self.fixups
        skip = -1
        for step, owner, index in zip(self.steps, self.owners, self.indices):
            if index <= skip:
                continue
            found = runs.get(index)
            if found is None:
                seg.steps.append(step)
                seg.owners.append(owner)
                seg.indices.append(index)
                continue
            run, fn = found
            last = self.indices.index(run.last)
            seg.steps.append((fn, run.refs, run.shapes, run.strides))
            seg.owners.append(self.owners[last])
            seg.indices.append(index)
            skip = run.last
        seg.seal(keep)
        return seg


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
        self.pending = None  # (runs, kernel addresses or None, future, pid): fusion to come
        self.fast = None  # (the items it was made for, Plan.fast_path's functions or None)

    def kinds(self) -> Counter:
        """How many nodes run as kernel steps, views, static values, or their thunks."""
        return Counter(kind for kind, *_ in self.finish)

    def request_fusion(self, runs: list) -> None:
        """Ask for the fused kernels of ``runs`` (``families.fused``); a later call swaps
        them in when they are ready (``fuse``), the calls before run unfused."""
        from aotkernels.families import fused

        ready, future = fused.request([run.program for run in runs])
        self.runs, self.pending = runs, (runs, ready, future, os.getpid())
        if future is None:
            self.fuse()
            return
        self.wait, self.fast = Wait(), None  # fast paths made from now on check it
        future.add_done_callback(self.wait.arrive)

    def fuse(self, timeout: float | None = 0) -> int:
        """Swap in the fused kernels that are ready (waiting up to ``timeout`` seconds for
        a background compile; None: until it ends); returns how many runs are fused."""
        if self.pending is None:
            return self.fused
        runs, ready, future, pid = self.pending
        if future is not None and not future.done():
            if pid != os.getpid():  # forked while waiting: that thread is not here
                self.request_fusion(runs)
                if self.pending is None:
                    return self.fused
                runs, ready, future, pid = self.pending
            if timeout == 0:
                return 0
        if future is not None:
            import concurrent.futures

            try:
                fns = iter(future.result(timeout))
            except concurrent.futures.TimeoutError:
                return 0
            except Exception as exc:  # no fused kernels: the plan stays as it is
                from aotkernels.library import log

                log.info("aotkernels: no fused kernels for this plan (%s: %s)",
                         type(exc).__name__, exc)
                self.pending, self.fused, self.fast = None, 0, None  # fast: made anew
                self.wait.arrive()  # the Wait of this future's request
                return 0
            ready = [a if a is not None else ctypes.cast(next(fns), ctypes.c_void_p).value
                     for a in ready]
        by_first = {run.first: (run, fn) for run, fn in zip(runs, ready)}
        self.items = [item.fused(by_first, self.keep) if item.__class__ is Segment else item
                      for item in self.items]
        self.pending, self.fused = None, len(runs)
        if self.wait is not None:
            self.wait.arrive()
        return self.fused

    fused = 0  # runs swapped in
    wait = None  # the Wait of the fusion asked for last
    runs: list = []  # fusion.Run: the fused runs asked for

    def fast_path(self, vm, key: tuple, runner=None) -> tuple | None:
        """This plan's call as generated Python functions, for a plan without Python items
        (None otherwise): ``(fast, fast_args)``. ``fast()`` reads the inputs from the VM's
        cells, ``fast_args(args)`` from a ``Function``'s positional arguments (when
        ``vm.arg_cells`` maps them to cells: ``function.AOTFunction``), checking each as
        PyTensor's ``TensorType.filter`` would accept it unchanged. Both check that the
        inputs still have the geometry ``key`` (else return None: the caller takes the
        general path), run the plan and return the outputs, as ``PlannedLoop`` would.
        Unrolled, with every constant bound as a name, they cost a fraction of the general
        loop; they wait for nothing: while fused kernels are pending they run the unfused
        steps, and stand aside once those arrive (``run`` swaps them in). ``runner``: the
        library's ``aotk_run_call``, which reads the arrays' data pointers in C and runs
        the first segment in one ctypes call (without it, Python sets every root)."""
        views = [item for item in self.items if item.__class__ is not Segment]
        if vm.time_thunks or views and (self.items[0].__class__ is not Segment or not all(
                self.input_view(item, vm) for item in views)):
            return None
        offset = data_offset() if runner is not None and self.items else None
        env = {"ndarray": np.ndarray, "empty": np.empty, "pointer": pointer,
               "addressof": _addressof, "from_buffer": _from_buffer, "plan": self,
               "roots": self.roots, "seen": self.seen, "roots_p": self.roots_p,
               "run_steps": self.run_steps, "raise_failed": self._raise_failed, "vm": vm,
               "run_call": runner, "W": self.wait}
        arrays: list = []  # the roots ``runner`` sets, in the order of its table

        def set_root(index: int, array: str, expr: str) -> str:
            if offset is None:
                return f"    roots[{index}] = {expr}"
            arrays.append(index)
            return f"    arrays[{len(arrays) - 1}] = id({array})"

        def check(k: int, aligned: bool = False) -> list:
            return [f"    if (v{k}.__class__ is not ndarray or v{k}.shape != S{k} "
                    f"or v{k}.strides != T{k}",
                    f"            or v{k}.dtype is not D{k} and v{k}.dtype != D{k}"
                    + (f" or not v{k}.flags.aligned):" if aligned else "):"),
                    "        return None"]

        arg_cells = getattr(vm, "arg_cells", None)  # vm.input_storage index per argument
        # made while fused kernels are pending, they run the unfused steps until those
        # arrive, then stand aside for ``run`` to swap them in (the items change, and the
        # caller makes them again)
        wait = ["    if W.arrived:", "        return None"] if self.pending else []
        head = ["def fast():", *wait]
        args_head = ["def fast_args(args):", *wait]
        if arg_cells:
            args_head.append(f"    {', '.join(f'v{k}' for k in arg_cells)}, = args")
        for k, (cell, (shape, strides, dtype)) in enumerate(zip(vm.input_storage, key)):
            env.update({f"i{k}": cell, f"S{k}": shape, f"T{k}": strides, f"D{k}": dtype})
            head += [f"    v{k} = i{k}[0]", *check(k)]
            if arg_cells and k in arg_cells:  # Function.__call__ has not filtered it
                args_head += check(k, aligned=True)
            else:
                args_head += [f"    v{k} = i{k}[0]", *check(k)]
        args_head += [f"    i{k}[0] = v{k}" for k in arg_cells or ()]
        lines = []
        for j, (index, cell) in enumerate(self.inputs):
            k = next(k for k, c in enumerate(vm.input_storage) if c is cell)
            if offset is None:
                lines += [f"    if v{k} is not seen[{j}]:",
                          f"        roots[{index}] = pointer(v{k})",
                          f"        seen[{j}] = v{k}"]
            else:  # ``run`` skips the roots of inputs it has seen: keep it told
                lines += [set_root(index, f"v{k}", ""), f"    seen[{j}] = v{k}"]
        set_later = ({id(cell) for _, cell, _ in self.fresh}
                     | {id(view[0]) for view in self.fresh_views}
                     | {id(cell) for cell, _, _ in self.cells}
                     | {id(dst) for seg in self.items for dst, _ in getattr(seg, "fixups", ())})
        for k, cell in enumerate(vm.pre_call_clear):
            if id(cell) not in set_later:  # this call gives the others their values
                env[f"p{k}"] = cell
                lines.append(f"    p{k}[0] = None")
        for k, (index, cell, (shape, dtype, perm)) in enumerate(self.fresh):
            env.update({f"f{k}": cell, f"FS{k}": tuple(shape), f"FD{k}": dtype,
                        f"FP{k}": perm})
            if perm is None:  # C-contiguous and writable: the buffer protocol's pointer
                lines += [f"    a = b{index} = empty(FS{k}, FD{k})",
                          set_root(index, "a", "addressof(from_buffer(a)) if a.size "
                                   "else pointer(a)")]
            else:
                lines += [f"    b{index} = empty(FS{k}, FD{k})",
                          f"    a = b{index}.transpose(FP{k})",
                          set_root(index, "a", "pointer(a)")]
            lines.append(f"    f{k}[0] = a")
        for k, (cell, index, offset_, shape, strides, dtype) in enumerate(self.fresh_views):
            env.update({f"w{k}": cell, f"WS{k}": shape, f"WD{k}": dtype, f"WT{k}": strides})
            lines.append(f"    w{k}[0] = ndarray(WS{k}, WD{k}, b{index}, {offset_}, WT{k})")
        for k, (cell, value, copy) in enumerate(self.cells):
            env.update({f"c{k}": cell, f"cv{k}": value})
            lines.append(f"    c{k}[0] = cv{k}.copy()" if copy else f"    c{k}[0] = cv{k}")
        for k, seg in enumerate(self.items):
            if seg.__class__ is not Segment:  # a view of inputs: its thunk, as ``run`` does
                env.update({f"th{k}": seg.thunk, f"N{k}": seg.node, "raise_in_node": raise_in_node})
                lines += ["    try:", f"        th{k}()", "    except Exception:",
                          f"        raise_in_node(vm, N{k}, th{k})"]
                for m, (cell, _, index) in enumerate(seg.checks):
                    if index is not None:  # a later step reads it
                        env[f"q{k}_{m}"] = cell
                        lines.append(f"    roots[{index}] = pointer(q{k}_{m}[0])")
                continue
            env.update({f"n{k}": seg.n, f"t{k}": seg.table_p, f"s{k}": seg.status_p,
                        f"g{k}": seg})
            if k == 0 and offset is not None:
                env["call_p"], env["arrays"] = self._call(seg, arrays, offset)
                lines.append("    failed = run_call(call_p)")
            else:
                lines.append(f"    failed = run_steps(n{k}, t{k}, roots_p, s{k})")
            lines += ["    if failed:", f"        raise_failed(g{k}, failed, vm)"]
            for m, (dst, src) in enumerate(seg.fixups):
                env.update({f"x{k}_{m}": dst, f"y{k}_{m}": src})
                lines.append(f"    x{k}_{m}[0] = y{k}_{m}[0]")
        outs = ", ".join(f"o{k}[0]" for k in range(len(vm.output_storage)))
        env.update({f"o{k}": cell for k, cell in enumerate(vm.output_storage)})
        lines.append(f"    outputs = [{outs}]")
        for k, (cell, out) in enumerate(vm.inp_storage_and_out_idx):
            env[f"u{k}"] = cell
            lines.append(f"    u{k}[0] = outputs[{out}]")
        lines.append("    return outputs")
        source = [*head, *lines, *(args_head + lines if arg_cells is not None else ())]
        exec(compile("\n".join(source), "<aotkernels plan>", "exec"), env)
        return env["fast"], env.get("fast_args")

    def input_view(self, item, vm) -> bool:
        """Whether ``item`` is a view run by its thunk (``VIEW_RUN``: a result that is an
        input, as ``ViewOp`` in PyMC's trace function, or a view of one) of the function's
        inputs and constants alone, through views only: its geometry follows from theirs,
        which the fast path checks, so the fast path may run it without ``run``'s geometry
        checks."""
        if self.finish[item.pos][0] != VIEW_RUN:
            return False
        viewed = set(vm.fgraph.inputs)
        for kind, node, *_ in self.finish[:item.pos]:
            if kind in (VIEW, VIEW_RUN) and all(isinstance(v, Constant) or v in viewed
                                                for v in node.inputs):
                viewed.update(node.outputs)
        return all(isinstance(v, Constant) or v in viewed for v in item.node.inputs)

    def _call(self, seg: Segment, array_roots: list, offset: int):
        """The ``aotk_call`` of ``seg`` whose arrays set ``array_roots``: (its address, the
        table the fast path writes the array objects into); the plan keeps both."""
        n = max(1, len(array_roots))
        index = (ctypes.c_int64 * n)(*array_roots)
        arrays = (ctypes.c_size_t * n)()
        call = Call(seg.n.value, ctypes.addressof(seg.table), self.roots_p.value,
                    ctypes.addressof(seg.status), len(array_roots),
                    ctypes.addressof(index), ctypes.addressof(arrays), offset)
        self.keep += [index, arrays, call]
        return ctypes.c_void_p(ctypes.addressof(call)), arrays

    @staticmethod
    def _raise_failed(seg: Segment, failed: int, vm) -> None:
        node, thunk, prepared = seg.owners[failed - 1]
        try:
            prepared.fail(seg.status.value)  # what the first call raised
        except Exception:
            raise_in_node(vm, node, thunk)

    def run(self, vm) -> bool:
        """Run one call; False if a value left the recorded geometry (the call was completed
        thunk by thunk, and the plan must be dropped)."""
        if self.pending is not None:
            self.fuse()
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
                    self._raise_failed(item, failed, vm)
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
                elif kind == KERNEL:  # pinned buffers, or an inplace source
                    if materialise[0] == "buffer":
                        for cell, value in materialise[1]:
                            cell[0] = value
                    else:
                        materialise[1][0] = materialise[2][0]
                elif kind == LOOP:  # per output: a pinned buffer, an inplace source, or None
                    for how, cell, source in filter(None, materialise):
                        cell[0] = source if how == "buffer" else source[0]
            except Exception:
                raise_in_node(vm, node, thunk)
