"""``AOTLinker``: PyTensor's VM linker with aotkernels thunks, and mode ``"AOT"``.

It is PyTensor's Python VM with ``perform`` thunks (so nothing is compiled, not even C), in
which every node aotkernels can serve gets an aotkernels thunk instead (``servers.serve``).
Fusion is switched off: a fused ``Composite`` is a new scalar program per graph, the very
thing that would need compiling, while unfused ``Elemwise`` nodes map one to one onto
catalog kernels. The VM is a ``loop.PlannedLoop``, which replays later calls from C.
"""

from __future__ import annotations

import sys
import time
import types
from contextlib import contextmanager

from pytensor.configdefaults import config
from pytensor.graph.rewriting.db import RewriteDatabaseQuery
from pytensor.link.basic import Container
from pytensor.link.utils import gc_helper, map_storage, raise_with_op
from pytensor.link.vm import Loop, VMLinker
from pytensor.scan.op import Scan

from aotkernels.pytensor import destroy_check, lean_rewriting, rewrites
from aotkernels.pytensor.graph_cache import CachedMode
from aotkernels.pytensor.loop import PlannedLoop, executor
from aotkernels.pytensor.servers import serve

#: when a list, every AOT linker that builds a VM is appended (``python -m aotkernels
#: coverage`` reports on all functions a script compiled)
RECORDED: list | None = None


@contextmanager
def without_c_backend():
    """``VMLinker.make_vm`` imports the C VM even when it will not use it (use_cloop=False):
    in a fresh compiledir that import compiles PyTensor's lazylinker (~1.3 s of a cold
    start), and the ``MissingGXX`` it imports first loads setuptools (~0.4 s). Stand-ins
    for both modules make it take its own "no CVM" path; modules already loaded (another
    mode used the C backend) are left alone, and the stand-ins are removed afterwards."""
    cvm, exceptions = "pytensor.link.c.cvm", "pytensor.link.c.exceptions"
    stand_ins = {}
    if cvm not in sys.modules:
        stand_ins[cvm] = None  # importing it raises ImportError, which make_vm expects
    if exceptions not in sys.modules:
        stub = types.ModuleType(exceptions)
        stub.MissingGXX = type("MissingGXX", (Exception,), {})
        stand_ins[exceptions] = stub
    sys.modules.update(stand_ins)
    try:
        yield
    finally:
        for name, module in stand_ins.items():
            if sys.modules.get(name, 0) is module:
                del sys.modules[name]


class Cells:
    """A node's storage cells, what ``serve`` reads off PyTensor's thunk; ``serve`` returns
    this very object for a node it leaves to PyTensor."""

    __slots__ = ("inputs", "outputs")

    def __init__(self, inputs: list, outputs: list):
        self.inputs, self.outputs = inputs, outputs


class AOTLinker(VMLinker):
    """The VM linker with aotkernels thunks for every node the library can serve."""

    #: every mode with this linker rewrites through the graph cache (``graph_cache``)
    graph_cache = True

    def __init__(self, allow_gc=None, use_cloop=False, callback=None, callback_input=None,
                 lazy=None, schedule=None, c_thunks=False, allow_partial_eval=None):
        super().__init__(allow_gc=allow_gc, use_cloop=False, callback=callback,
                         callback_input=callback_input, lazy=lazy, schedule=schedule,
                         c_thunks=False, allow_partial_eval=allow_partial_eval)
        # c_blas: PyTensor 2.x tags its CGemv/CGer rewrite fast_run but not cxx_only; it
        # reads config.blas__ldflags (a ~0.8 s toolchain probe) and makes C Ops, which run
        # here as the Gemv/Ger they subclass; rewrites.probing_rewrites: the same probe
        self.incompatible_rewrites = ("cxx_only", "c_blas", "fusion", "local_careduce_fusion",
                                      *rewrites.probing_rewrites())
        self.nodes: list = []
        self.thunks: list = []
        self.vm = None

    def make_all(self, profiler=None, input_storage=None, output_storage=None,
                 storage_map=None):
        """``VMLinker.make_all`` (PyTensor 2.38 and 3.0 alike) with one difference: a node
        aotkernels serves gets its thunk from ``serve`` and never PyTensor's
        ``make_thunk``, whose ``prepare_node`` builds what only ``perform`` uses (an
        ``Elemwise`` of ``sigmoid`` imports ``scipy.special``: 0.1-0.2 s of a warm start).
        Scan loops run their inner graph in mode AOT too (PyTensor would compile it with
        the C backend): each Scan node gets its own clone of the Op with that mode, inner
        graph included. Compiling an inner function rewrites the inner graph's own nodes
        (PyTensor does not clone a graph whose inputs have no owner), and Scan Ops of one
        graph may share inner nodes (a graph-cache entry keeps them shared, as pickling
        does): a shared node made inplace for one loop broke the next one's compile."""
        fgraph = self.fgraph
        for node in fgraph.apply_nodes:
            if isinstance(node.op, Scan) and node.op.mode in (None, "FAST_RUN"):
                op = node.op.clone()
                op.mode, op._fn = "AOT", None
                node.op = op
        order = self.schedule(fgraph)
        input_storage, output_storage, storage_map = map_storage(
            fgraph, order, input_storage, output_storage, storage_map)
        compute_map = {k: [k.owner is None] for k in storage_map}
        t0 = time.perf_counter()
        thunks = []
        for node in order:
            try:
                thunks.append(self._thunk(node, storage_map, compute_map))
            except Exception:
                raise_with_op(fgraph, node)
        if self.profile:
            self.profile.linker_node_make_thunks += time.perf_counter() - t0
        for node, thunk in zip(order, thunks):
            thunk.inputs = [storage_map[v] for v in node.inputs]
            thunk.outputs = [storage_map[v] for v in node.outputs]

        lazy = self.lazy if self.lazy is not None else config.vm__lazy
        if lazy is None:
            lazy = any(th.lazy for th in thunks)
        profiling_memory = (config.profile or config.print_global_stats) and config.profile_memory
        if not (lazy or profiling_memory or self.callback or self.callback_input):
            reallocated = self.reduce_storage_allocations(storage_map, order)
        else:
            reallocated = ()
        computed, last_user = gc_helper(order)
        post_thunk_clear = None
        if self.allow_gc:
            post_thunk_clear = [[storage_map[v] for v in node.inputs
                                 if v in computed and v not in fgraph.outputs
                                 and node == last_user[v] and v not in reallocated]
                                for node in order]
        vm = self.make_vm(order, thunks, input_storage, output_storage, storage_map,
                          post_thunk_clear, computed, compute_map, self.updated_vars)
        vm.storage_map, vm.compute_map = storage_map, compute_map
        return (vm,
                [Container(v, s) for v, s in zip(fgraph.inputs, input_storage)],
                [Container(v, s, readonly=True) for v, s in zip(fgraph.outputs, output_storage)],
                thunks, order)

    @staticmethod
    def _thunk(node, storage_map, compute_map):
        """aotkernels' thunk for ``node`` if it serves it, else PyTensor's (``perform``)."""
        cells = Cells([storage_map[v] for v in node.inputs],
                      [storage_map[v] for v in node.outputs])
        thunk = serve(node.op, node, cells)
        if thunk is cells:
            thunk = node.op.make_thunk(node, storage_map, compute_map, [], impl="py")
            if not hasattr(thunk, "lazy"):
                thunk.lazy = False
        return thunk

    def make_vm(self, nodes, thunks, *args, **kwargs):
        self.nodes, self.thunks = list(nodes), list(thunks)
        if RECORDED is not None:
            RECORDED.append(self)
        with without_c_backend():
            vm = super().make_vm(nodes, thunks, *args, **kwargs)
        if type(vm) is Loop and executor() is not None:
            vm.__class__ = PlannedLoop
            vm.init_plans(eager=RECORDED is not None)
        self.vm = vm
        return vm

    def __getstate__(self):
        """A pickled function is made again from its graph (``FunctionMaker.create``): the
        thunks, the VM and its plans (ctypes tables, closures) are not part of it."""
        state = self.__dict__.copy()
        state.update(nodes=[], thunks=[], vm=None)
        return state


lean_rewriting.install()
destroy_check.install()
AOT = CachedMode(AOTLinker(), RewriteDatabaseQuery(include=["fast_run", rewrites.TAG]))
