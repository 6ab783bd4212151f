"""The VM loop of mode AOT: PyTensor's Python ``Loop``, plus recording and plans.

The first call with an input geometry (shapes, strides, dtypes) runs thunk by thunk; the
second runs thunk by thunk while ``aotkernels.record`` logs every kernel call and array
conversion (``record_call``); the planner turns that log into a ``Plan``
(``planner.build_plan``) and later calls with that geometry run the plan (``executor``).
"""

from __future__ import annotations

import numpy as np
from pytensor.graph.basic import Constant
from pytensor.link.vm import Loop
from pytensor.tensor.basic import AllocEmpty
from pytensor.tensor.shape import Shape, Shape_i

from aotkernels import record
from aotkernels.library import default_library, log
from aotkernels.pytensor.executor import raise_in_node
from aotkernels.pytensor.planner import build_plan, thunk_cells
from aotkernels.pytensor.thunks import KernelThunk


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
            raise_in_node(vm, node, thunk)
        calls = record.stop(prev)
        outs = [storage[v][0] for v in node.outputs]
        snaps = ([np.copy(o, order="K") if isinstance(o, np.ndarray) else o for o in outs]
                 if node.outputs[0] in static else None)
        records.append((calls, [storage[v][0] for v in node.inputs], outs, snaps))
        for cell in old:
            cell[0] = None
    return records


def executor():
    """(``aotk_run_steps``, its operand limit) of the library, or None (no library, or one
    built before the executor)."""
    lib = default_library()
    return None if lib is None else lib.executor()


def call_runner():
    """The library's ``aotk_run_call`` (``Plan.fast_path``), or None."""
    lib = default_library()
    return None if lib is None else lib.call_runner()


class PlannedLoop(Loop):
    """PyTensor's Python loop, plus a plan per input geometry: the first call with a
    geometry runs thunk by thunk, the second is also recorded, later ones run the plan. A
    geometry whose plan fails (a value inside changes geometry) is planned at most
    ``MAX_TRIES`` times, then runs thunk by thunk."""

    MAX_PLANS = 8  # per function; each holds its intermediates' buffers
    MAX_TRIES = 3
    #: per positional argument of the ``Function`` that calls this VM, its index in
    #: ``input_storage`` (``function.AOTFunction`` sets it; None: no such function)
    arg_cells: list | None = None

    def init_plans(self, eager: bool = False) -> None:
        """``eager``: record the first call of a geometry already (``python -m aotkernels
        coverage`` reports the plans of scripts that call a function once)."""
        self._eager = eager
        self._plans: dict = {}  # input geometry -> Plan
        self._tries: dict = {}  # input geometry -> recorded calls (0: seen, not recorded)
        self._static = static_vars(self.nodes)
        self._cells = [cell for thunk in self.thunks for cell in thunk.outputs]
        self._fast = None  # the fast path of the plan the last call ran (Plan.fast_path)
        self.fast_args = None  # its form taking a Function's arguments (function.py)

    def __call__(self):
        fast = self._fast
        if fast is not None:
            outputs = fast()
            if outputs is not None:
                return outputs
        key = None if self.time_thunks else input_key(self.input_storage)
        plan = self._plans.get(key)
        if plan is not None:
            for cell in self.pre_call_clear:
                cell[0] = None
            if not plan.run(self):
                del self._plans[key]  # a value left the plan's geometry
                self._fast = self.fast_args = None
                return self.perform_updates()
            if plan.fast is None or plan.fast[0] is not plan.items:  # new, or fused since
                fast = plan.fast_path(self, key, call_runner()) or (None, None)
                plan.fast = (plan.items, *fast)
            self._fast, self.fast_args = plan.fast[1:]
            return self.perform_updates()
        return self._record(key)

    def _record(self, key):
        """Run thunk by thunk; record the call and plan its geometry unless tried enough.
        The first call of a geometry only runs: recording and planning cost about twice a
        plain run, which a function called once (an initial point, a check) never repays,
        and the first call already pays for everything run for the first time."""
        plans, tries = self._plans, self._tries
        for cell in self._cells:  # a plan leaves values in cells: thunks must not reuse them
            cell[0] = None
        if key is not None and key not in tries and not self._eager:
            tries[key] = 0
            return super().__call__()
        if key is None or tries.get(key, 0) >= self.MAX_TRIES:
            return super().__call__()
        for cell in self.pre_call_clear:
            cell[0] = None
        records = record_call(self, self._static)
        outputs = self.perform_updates()
        if len(plans) >= self.MAX_PLANS:
            plans.clear()
            self._fast = self.fast_args = None
        tries[key] = tries.get(key, 0) + 1
        try:
            plan = build_plan(self, records, self._static, executor(), KernelThunk)
        except Exception as exc:  # a plan is an optimisation: never fail a call over one
            log.warning("aotkernels: no plan for this function (%s: %s); it runs node by "
                        "node", type(exc).__name__, exc)
            plan = None
        if plan is not None:
            plans[key] = plan
        else:
            tries[key] = self.MAX_TRIES  # nothing to replay: never record this geometry again
        return outputs

    @property
    def plans(self) -> dict:
        """input geometry -> Plan"""
        return self._plans
