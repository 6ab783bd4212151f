"""A mode-AOT plan as a C function: what samplers call with no Python per gradient.

``export`` turns the plan of a function of one float64 vector (a model's logp and
gradient, or its expand function) into an ``aotk_plan`` for the shim's entry points
``aotk_nutpie_logp`` / ``aotk_nutpie_expand`` (nutpie's C signatures). The plan must run
every node from C: a node left to Python (its thunk) makes it ``NotExportable``, naming the
node. The C struct shares the plan's read-only parts (step tables, constants, static
values, other inputs' values as they are at export) and describes everything a call
writes (intermediates, scratch, results) as offsets into an arena that each call allocates
for itself, so concurrent callers never share written memory.

Fused kernels (``fusion``) the plan has at hand when it is exported are in it; those still
being compiled in the background are not waited for: ``when_fused`` makes the same C plan
over them when they arrive, and ``Model.replace`` publishes it while samplers call.
"""

from __future__ import annotations

import ctypes
import math
import threading
from collections.abc import Callable

import numpy as np

from aotkernels.library import default_library, log
from aotkernels.pytensor.executor import VIEW_RUN, Segment, Step, pointer

try:
    from numpy.lib.array_utils import byte_bounds
except ImportError:  # NumPy 1.x
    byte_bounds = np.byte_bounds

ALIGN = 64
PRIMING_CALLS = 3  # a mode-AOT function plans its input geometry at the third call


class NotExportable(Exception):
    """The plan cannot run without Python; the message says why (which node)."""


class Out(ctypes.Structure):
    """``aotk_out`` in the shim."""

    _fields_ = [("root", ctypes.c_int64), ("offset", ctypes.c_int64), ("size", ctypes.c_int64),
                ("direct", ctypes.c_int64)]


class PlanStruct(ctypes.Structure):
    """``aotk_plan`` in the shim."""

    _fields_ = [("n_roots", ctypes.c_int64), ("shared", ctypes.c_void_p),
                ("x_root", ctypes.c_int64), ("x_size", ctypes.c_int64),
                ("n_scratch", ctypes.c_int64), ("scratch", ctypes.c_void_p),
                ("arena_bytes", ctypes.c_int64), ("n_steps", ctypes.c_int64),
                ("steps", ctypes.c_void_p), ("n_outs", ctypes.c_int64), ("outs", ctypes.c_void_p)]


class CPlan:
    """An exported plan: ``struct`` (an ``aotk_plan``) and everything it points into;
    ``items`` the plan's items it runs, ``pending`` the plan's fusion to come at export
    (``Plan.pending``), ``fused`` how many fused runs it holds."""

    def __init__(self, struct: PlanStruct, keep: list, steps: int, items: list = (),
                 pending=None, fused: int = 0):
        self.struct, self.keep, self.steps = struct, keep, steps
        self.items, self.pending, self.fused = list(items), pending, fused

    @property
    def address(self) -> int:
        return ctypes.addressof(self.struct)


class Model:
    """A logp plan and an expand plan as nutpie's C functions (``aotk_model`` in the shim:
    nutpie passes one ``user_data`` to both). ``user_data`` is an array whose data is the
    ``aotk_model`` struct; ``logp_address`` / ``expand_address`` are the entry points."""

    def __init__(self, logp: CPlan, expand: CPlan, entries: tuple[int, int]):
        self.logp, self.expand = logp, expand
        self.user_data = np.array([logp.address, expand.address], dtype=np.uintp)
        self.logp_address, self.expand_address = entries
        self.retired: list[CPlan] = []  # replaced plans: a call may still be running one
        self.swaps = 0
        self.lock = threading.Lock()

    def replace(self, which: str, plan: CPlan) -> bool:
        """Make ``plan`` the model's ``"logp"`` or ``"expand"`` plan, atomically, while
        samplers' threads call (``aotk_nutpie_swap``: a call reads its plan once); the plan
        it replaces is kept for the model's life. False if the library cannot swap."""
        swap = swap_function()
        if swap is None or which not in ("logp", "expand"):
            return False
        with self.lock:
            self.retired.append(getattr(self, which))
            setattr(self, which, plan)
            swap(self.user_data.ctypes.data, 0 if which == "logp" else 1, plan.address)
            self.swaps += 1
        return True

    def fuse_later(self) -> int:
        """Have each plan replaced by its fused form when its fused kernels arrive (a
        background compile, ``when_fused``); returns how many will be."""
        return sum(when_fused(getattr(self, which),
                              lambda plan, which=which: self.replace(which, plan))
                   for which in ("logp", "expand"))


def entry_points() -> tuple[int, int] | None:
    """Addresses of ``aotk_nutpie_logp`` and ``aotk_nutpie_expand``, or None (no library, or
    one built before them)."""
    lib = default_library()
    if lib is None:
        return None
    fns = [getattr(lib.dll, name, None) for name in ("aotk_nutpie_logp", "aotk_nutpie_expand")]
    if None in fns:
        return None
    return tuple(ctypes.cast(f, ctypes.c_void_p).value for f in fns)


def swap_function():
    """``aotk_nutpie_swap`` of the library (None: one built before it)."""
    lib = default_library()
    fn = None if lib is None else getattr(lib.dll, "aotk_nutpie_swap", None)
    if fn is not None and fn.argtypes is None:
        fn.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p]
        fn.restype = ctypes.c_void_p
    return fn


def planned(fn, x: np.ndarray):
    """Call ``fn(x)`` until it has a plan for x's geometry; return that plan (with the
    fused kernels that are ready swapped in: the export never waits for a compile)."""
    vm = getattr(fn, "vm", None)
    if vm is None or not hasattr(vm, "plans"):
        raise NotExportable("the function is not a mode-AOT function with plans")
    want = (x.shape, x.strides, x.dtype)
    for _ in range(PRIMING_CALLS):
        fn(x)  # the VM clears its input cells after a call: find the plan by x's geometry
        found = [plan for key, plan in vm.plans.items() if key[0] == want]
        if found:
            plan = found[-1]
            if getattr(plan, "pending", None) is not None:
                plan.fuse(0)
            return plan
    raise NotExportable("the function made no plan (no kernel node, or no executor in the "
                        "library)")


def cached_kernels(pending) -> list | None:
    """The addresses of a plan's pending fused kernels (``Plan.pending``) if none needs a
    compile (each the library's or in the JIT cache: loaded here, now, without waiting for
    the background thread's queue), else None."""
    from aotkernels import jit
    from aotkernels.families import fused
    from aotkernels.kernels.fused import register

    runs, ready, _, _ = pending
    missing = [run.program for run, address in zip(runs, ready) if address is None]
    if not fused.cached(missing):
        return None
    try:
        fns = iter([jit.function(register(program)) for program in missing])
    except Exception as exc:  # a damaged entry, say: the background compile will tell
        log.info("aotkernels: fused kernels not loaded at export (%s: %s)",
                 type(exc).__name__, exc)
        return None
    return [a if a is not None else ctypes.cast(next(fns), ctypes.c_void_p).value
            for a in ready]


def fused_items(items: list, runs: list, addresses: list) -> tuple[list, list]:
    """A plan's ``items`` with each run of ``runs`` as its fused kernel (at ``addresses``),
    and what the new step tables point into."""
    by_first = {run.first: (run, fn) for run, fn in zip(runs, addresses)}
    keep: list = []
    return [item.fused(by_first, keep) if item.__class__ is Segment else item
            for item in items], keep


def export(fn, x: np.ndarray, sizes: tuple[int, ...]) -> CPlan:
    """The plan of ``fn`` (a mode-AOT function whose first input is the float64 vector
    ``x``, its others shared variables) as an ``aotk_plan``; its outputs must be
    C-contiguous float64 of ``sizes`` doubles each. Raises ``NotExportable``."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    if copies_its_input(fn) and sizes == (x.size,):
        return identity(x.size)
    plan = planned(fn, x)
    items, pending, n_fused, keep = plan.items, plan.pending, plan.fused, [plan]
    if pending is not None and pending[2] is not None:
        addresses = cached_kernels(pending)
        if addresses is not None:  # fused now, not after a wait on the queue
            items, more = fused_items(items, pending[0], addresses)
            pending, n_fused = None, len(pending[0])
            keep.append(more)
    layout = plan.layout
    for item in items:
        if item.__class__ is not Segment and plan.finish[item.pos][0] != VIEW_RUN:
            raise NotExportable(f"node {item.node} runs in Python")
    if "python" in layout.kinds:
        raise NotExportable("a value of the plan is made in Python")
    n_roots = len(layout.kinds)
    shared = (ctypes.c_void_p * max(1, n_roots))()
    for kind, (i, value) in zip(layout.kinds, enumerate(plan.roots)):
        shared[i] = value if kind == "fixed" else None
    (x_root, _), *others = plan.inputs
    for index, cell in others:  # shared variables: their values now
        value = cell[0]
        keep.append(value)
        shared[index] = pointer(value)
    keep.append(shared)

    # outputs: C-contiguous float64 values; a fresh root that is exactly one is the caller's
    fresh = {index: math.prod(shape) * np.dtype(dtype).itemsize
             for index, _, (shape, dtype, _) in plan.fresh}
    outs = (Out * max(1, len(sizes)))()
    direct: set = set()
    if len(layout.outputs) != len(sizes):
        raise NotExportable(f"{len(layout.outputs)} outputs, expected {len(sizes)}")
    for out, where, size in zip(outs, layout.outputs, sizes):
        if where is None:
            raise NotExportable("an output has no place in the plan")
        root, offset, (shape, strides, dtype) = where
        if dtype != np.float64 or math.prod(shape) != size or not _c_contiguous(shape, strides):
            raise NotExportable(f"an output is not {size} C-contiguous float64 values")
        out.root, out.offset, out.size = root, offset, size
        if root in fresh and root not in direct and offset == 0 and fresh[root] == 8 * size:
            out.direct = 1
            direct.add(root)

    # the arena: the root table, then each written region at its recorded alignment
    scratch: list = []
    end = _up(8 * n_roots)
    regions = sorted((*byte_bounds(v), index, v.ctypes.data)
                     for index, v in layout.pinned if v.size)
    k = 0
    while k < len(regions):  # overlapping pinned roots (shared buffers) stay one region
        lo, hi = regions[k][0], regions[k][1]
        j = k
        while j + 1 < len(regions) and regions[j + 1][0] < hi:
            j += 1
            hi = max(hi, regions[j][1])
        base = _up(end) + lo % ALIGN
        scratch += [(index, base + ptr - lo) for _, _, index, ptr in regions[k:j + 1]]
        end, k = base + hi - lo, j + 1
    scratch += [(index, _up(end)) for index, v in layout.pinned if not v.size]
    for index, nbytes in fresh.items():
        if index not in direct:
            scratch.append((index, _up(end)))
            end = _up(end) + nbytes
    pairs = (ctypes.c_int64 * max(1, 2 * len(scratch)))(*[v for p in scratch for v in p])

    table, n_steps = step_table(items)
    keep += [outs, pairs, table]
    struct = PlanStruct(n_roots, ctypes.addressof(shared), x_root, x.size, len(scratch),
                        ctypes.addressof(pairs), _up(max(end, 8)), n_steps,
                        ctypes.addressof(table), len(sizes), ctypes.addressof(outs))
    return CPlan(struct, keep, n_steps, items, pending, n_fused)


def step_table(items: list):
    """The kernel steps of a plan's ``items`` as one C table: (table, number of steps)."""
    steps = [s for item in items if item.__class__ is Segment for s in item.table]
    table = (Step * max(1, len(steps)))()
    for dst, src in zip(table, steps):
        dst.fn, dst.n, dst.operands = src.fn, src.n, src.operands
        dst.shapes, dst.strides = src.shapes, src.strides
    return table, len(steps)


def with_items(cplan: CPlan, items: list, fused: int) -> CPlan:
    """``cplan`` running ``items`` (its plan's items with fused runs swapped in, which
    read and write the same roots): the same arena, shared values and outputs."""
    table, n_steps = step_table(items)
    old = cplan.struct
    struct = PlanStruct(old.n_roots, old.shared, old.x_root, old.x_size, old.n_scratch,
                        old.scratch, old.arena_bytes, n_steps, ctypes.addressof(table),
                        old.n_outs, old.outs)
    return CPlan(struct, [cplan, items, table], n_steps, items, None, fused)


def when_fused(cplan: CPlan, then: Callable[[CPlan], object]) -> bool:
    """If ``cplan`` was exported before its plan's fused kernels arrived, call
    ``then(cplan with them)`` when they do, from the thread that brought them (the JIT's
    background thread; at once if they are here). The plan itself is not touched (its
    function swaps them in on its next call). Returns whether a call is to come; if the
    kernels never come (no JIT, a failed compile), it does not."""
    pending = cplan.pending
    if pending is None or pending[2] is None:
        return False
    runs, ready, future, _ = pending

    def arrived(done) -> None:
        try:
            fns = iter(done.result())
            addresses = [a if a is not None else ctypes.cast(next(fns), ctypes.c_void_p).value
                         for a in ready]
            items, keep = fused_items(cplan.items, runs, addresses)
            fused = with_items(cplan, items, len(runs))
            fused.keep.append(keep)
            then(fused)
        except Exception as exc:  # the sampler goes on with the unfused plan
            log.info("aotkernels: a sampler plan stays unfused (%s: %s)",
                     type(exc).__name__, exc)

    future.add_done_callback(arrived)
    return True


def copies_its_input(fn) -> bool:
    """The function returns its input vector (a model without deterministics expands to
    its values): no kernel, so no plan, but nothing to compute either."""
    fgraph = getattr(getattr(fn, "maker", None), "fgraph", None)
    if fgraph is None or len(fgraph.outputs) != 1 or not fgraph.inputs:
        return False
    out = fgraph.outputs[0]
    if out.owner is not None and type(out.owner.op).__name__ == "DeepCopyOp":
        out = out.owner.inputs[0]
    return out is fgraph.inputs[0]


def identity(size: int) -> CPlan:
    """An ``aotk_plan`` with no step whose output is a copy of x."""
    shared = (ctypes.c_void_p * 1)()
    outs = (Out * 1)(Out(0, 0, size, 0))
    pairs = (ctypes.c_int64 * 1)()
    struct = PlanStruct(1, ctypes.addressof(shared), 0, size, 0, ctypes.addressof(pairs), ALIGN,
                        0, None, 1, ctypes.addressof(outs))
    return CPlan(struct, [shared, outs, pairs], 0)


def _up(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _c_contiguous(shape, strides) -> bool:
    step = 8
    for n, s in zip(reversed(shape), reversed(strides)):
        if n != 1 and s != step:
            return False
        step *= n
    return True
