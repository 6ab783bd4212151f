"""``AOTLinker``: PyTensor's VM linker with aotkernels thunks, and mode ``"AOT"``.

It is PyTensor's Python VM with ``perform`` thunks (so nothing is compiled, not even C), in
which every node aotkernels can serve gets an aotkernels thunk instead (``servers.serve``).
Fusion is switched off: a fused ``Composite`` is a new scalar program per graph, the very
thing that would need compiling, while unfused ``Elemwise`` nodes map one to one onto
catalog kernels. The VM is a ``loop.PlannedLoop``, which replays later calls from C.
"""

from __future__ import annotations

import sys
import types
from contextlib import contextmanager
from copy import copy

from pytensor.graph.rewriting.db import RewriteDatabaseQuery
from pytensor.link.vm import Loop, VMLinker
from pytensor.scan.op import Scan

from aotkernels.pytensor import rewrites
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


class AOTLinker(VMLinker):
    """The VM linker with aotkernels thunks for every node the library can serve."""

    def __init__(self, allow_gc=None, use_cloop=False, callback=None, callback_input=None,
                 lazy=None, schedule=None, c_thunks=False, allow_partial_eval=None):
        super().__init__(allow_gc=allow_gc, use_cloop=False, callback=callback,
                         callback_input=callback_input, lazy=lazy, schedule=schedule,
                         c_thunks=False, allow_partial_eval=allow_partial_eval)
        # c_blas: PyTensor 2.x tags its CGemv/CGer rewrite fast_run but not cxx_only; it
        # reads config.blas__ldflags (a ~0.8 s toolchain probe) and makes C Ops, which run
        # here as the Gemv/Ger they subclass
        self.incompatible_rewrites = ("cxx_only", "c_blas", "fusion", "local_careduce_fusion")
        self.nodes: list = []
        self.thunks: list = []
        self.vm = None

    def make_all(self, *args, **kwargs):
        """Scan loops run their inner graph in mode AOT too (PyTensor would compile it with
        the C backend): each Scan node of this function's graph gets its own copy of the
        Op with that mode, before thunks are made."""
        for node in self.fgraph.apply_nodes:
            if isinstance(node.op, Scan) and node.op.mode in (None, "FAST_RUN"):
                op = copy(node.op)
                op.mode, op._fn = "AOT", None
                node.op = op
        return super().make_all(*args, **kwargs)

    def make_vm(self, nodes, thunks, *args, **kwargs):
        mine = [serve(node.op, node, thunk) for node, thunk in zip(nodes, thunks)]
        self.nodes, self.thunks = list(nodes), mine
        if RECORDED is not None:
            RECORDED.append(self)
        with without_c_backend():
            vm = super().make_vm(nodes, mine, *args, **kwargs)
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


AOT = CachedMode(AOTLinker(), RewriteDatabaseQuery(include=["fast_run", rewrites.TAG]))
