"""Thunks that run PyTensor nodes on aotkernels (made by ``servers.serve``).

A thunk reads its inputs' storage cells and writes its output cells, as PyTensor's own
thunks do. Where a node ran ("aot", "jit", "numpy"; ``source``, for ``coverage``) is read
off what its first call recorded (``record.source``): the kernel calls carry their source.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pytensor.tensor.elemwise import Elemwise

from aotkernels import record
from aotkernels.assemble import copy_into
from aotkernels.families.elemwise import prepare


class KernelThunk:
    """Runs a node through ``run(*input values) -> output value`` (a tuple of them for a
    node of several outputs) on kernels.

    ``shape_inputs``: inputs whose values (not only shapes) decide the output's geometry,
    like a join's axis; a plan replays the node only if they are fixed.
    """

    lazy = False

    def __init__(self, node, run: Callable | None, inputs, outputs,
                 shape_inputs: tuple[int, ...] = ()):
        self.node, self.run, self.inputs, self.outputs = node, run, inputs, outputs
        self.shape_inputs = shape_inputs
        self.source: str | None = None  # known once a call ran a kernel or NumPy
        self.jit_keys: tuple[str, ...] = ()  # signatures of the JIT kernels its first call ran

    def __call__(self) -> None:
        if self.source is not None:
            self.compute()
            return
        with record.capture() as calls:  # inside a plan's recording, or on its own
            self.compute()
        self.source = record.source(calls)
        self.jit_keys = record.jit_keys(calls)

    def compute(self) -> None:
        value = self.run(*[c[0] for c in self.inputs])
        if len(self.outputs) == 1:
            self.outputs[0][0] = value
        else:  # a node of several results (LUFactor): run returns them in order
            for cell, v in zip(self.outputs, value):
                cell[0] = v


class CallSite:
    """One elementwise call in a node: resolved again only when the operands' layout changes.

    The resolved call (``Prepared``) is kept while shapes, strides and dtypes stay the same,
    and only if the kernel read the caller's arrays as they are: an input that had to be
    copied (partial overlap with ``out``, byte order, alignment) has another geometry.
    """

    __slots__ = ("key", "prepared")

    def __init__(self):
        self.key = self.prepared = None

    def __call__(self, op: str, args: list, out: np.ndarray, dtype=None) -> None:
        overlap = [np.may_share_memory(a, out) and not _same_view(a, out) for a in args]
        key = (out.shape, out.strides, *[(a.shape, a.strides, a.dtype) for a in args])
        if key != self.key or any(overlap):
            prepared, used, out = prepare(op, *args, out=out, dtype=dtype)
            same = all(u is a for u, a in zip(used, args))
            self.key, self.prepared, args = (key if same else None), prepared, used
        if self.prepared is not None:
            self.prepared.run([*args, out])


def _same_view(a: np.ndarray, out: np.ndarray) -> bool:
    """``a`` is exactly ``out`` (in place, safe for elementwise kernels)."""
    return (a.ctypes.data == out.ctypes.data and a.shape == out.shape
            and a.strides == out.strides and a.dtype == out.dtype)


def elemwise_inputs(thunk) -> list[np.ndarray]:
    """An ``Elemwise`` node's input values, checked as PyTensor checks them: it refuses to
    broadcast a length-1 dimension its type does not mark broadcastable (every mode
    raises), which NumPy broadcasting would silently do. Once per input shapes."""
    args = [np.asarray(c[0]) for c in thunk.inputs]
    shapes = [a.shape for a in args]
    if shapes != thunk.checked:
        Elemwise._check_runtime_broadcast(thunk.node, args)
        thunk.checked = shapes
    return args


class ElemwiseThunk(KernelThunk):
    """Runs one ``Elemwise`` node on kernels, reusing its output buffer and resolved calls.

    n-ary add/mul/... are applied pairwise into the output buffer, one call site a step;
    the first step's operands are broadcast to the whole output (stride-0 views), since
    the first two operands alone may broadcast to less than it.
    """

    def __init__(self, node, op: str, pairwise: bool, inputs, outputs):
        super().__init__(node, None, inputs, outputs)
        self.op = op
        self.out_dtype = node.outputs[0].type.dtype
        self.cast_to = self.out_dtype if op == "cast" else None
        self.inplace = node.op.inplace_pattern.get(0)
        self.pairwise = pairwise
        self.sites = [CallSite() for _ in range(len(node.inputs) - 1 if pairwise else 1)]
        self.checked = None  # input shapes last found free of runtime broadcasting

    def _output(self, args) -> np.ndarray:
        if self.inplace is not None:
            return args[self.inplace]
        shape = np.broadcast_shapes(*(a.shape for a in args))
        prev = self.outputs[0][0]
        if isinstance(prev, np.ndarray) and prev.shape == shape and prev.dtype == self.out_dtype:
            return prev
        return np.empty(shape, self.out_dtype)

    def compute(self) -> None:
        args = elemwise_inputs(self)
        out = self._output(args)
        if self.pairwise:
            args = [a if a.dtype == self.out_dtype else record.astype(a, self.out_dtype)
                    for a in args]  # exact n-ary upcast
            if self.inplace is not None and self.inplace >= 2:
                # the first pairwise step writes ``out`` before this input is read
                args[self.inplace] = record.copy(args[self.inplace])
            first = [a if a.shape == out.shape else np.broadcast_to(a, out.shape)
                     for a in args[:2]]
            self.sites[0](self.op, first, out)
            for site, a in zip(self.sites[1:], args[2:]):
                site(self.op, [out, a], out)
        else:
            self.sites[0](self.op, args, out, self.cast_to)
        self.outputs[0][0] = out


class CheckThunk(KernelThunk):
    """``CheckAndRaise``: the value passes through (``passes_through``: the input the
    result is, which the planner aliases) after a ``check`` kernel tested each condition
    into scratch; a false one raises the Op's exception, on a replayed plan too."""

    passes_through = 0

    def __init__(self, node, error: tuple, inputs, outputs):
        super().__init__(node, None, inputs, outputs)
        self.errors = {1: error}
        self.sites: list = [None] * (len(node.inputs) - 1)

    def compute(self) -> None:
        value, *conds = [c[0] for c in self.inputs]
        for k, c in enumerate(conds):
            c = np.asarray(c)
            if c.size == 0:
                continue
            key = (c.shape, c.strides)
            site = self.sites[k]
            if site is None or site[0] != key:
                prepared, used, out = prepare("check", c, out=np.empty(c.shape, bool))
                prepared.errors = self.errors  # this Op's exception and message
                site = self.sites[k] = (key if used[0] is c else None, prepared)
            site[1].run([c, record.scratch(c.shape, bool)])
        self.outputs[0][0] = value


class CompositeThunk(KernelThunk):
    """An ``Elemwise{Composite}`` (mode AOT does not fuse, but rewrites such as
    ``local_pow_to_nested_squaring`` make small ones) as one elementwise call per inner
    node, in order, over the whole output shape: intermediates go to scratch buffers, the
    values of the outputs to the output buffers.

    ``program``: per inner node (op name, operands, output dtype, output index or None),
    an operand being ("in", k), ("tmp", j) or ("const", 0-d array); made by the server.
    """

    def __init__(self, node, program: list, outs: list, inputs, outputs):
        super().__init__(node, None, inputs, outputs)
        self.program, self.outs = program, outs  # outs: per output, its operand
        self.sites = [[CallSite() for _ in range(max(1, len(ops) - 1))]
                      for _, ops, _, _ in program]
        self.checked = None

    def compute(self) -> None:
        args = elemwise_inputs(self)
        shape = np.broadcast_shapes(*(a.shape for a in args))
        results = [None] * len(self.outputs)
        temps: list = []

        def value(ref):
            kind, x = ref
            a = args[x] if kind == "in" else temps[x] if kind == "tmp" else record.literal(x)
            return a if a.shape == shape else np.broadcast_to(a, shape)

        for (op, operands, dtype, k), sites in zip(self.program, self.sites):
            if k is None:
                dest = record.scratch(shape, dtype)
            else:
                prev = self.outputs[k][0]
                fits = (isinstance(prev, np.ndarray) and prev.shape == shape
                        and prev.dtype == dtype and prev.flags.writeable)
                dest = results[k] = prev if fits else np.empty(shape, dtype)
            temps.append(dest)
            vals = [value(r) for r in operands]
            if len(vals) > 2:  # n-ary add, mul, ...: pairwise into dest, exact upcast
                vals = [v if v.dtype == dtype else record.astype(v, dtype) for v in vals]
                sites[0](op, vals[:2], dest)
                for site, v in zip(sites[1:], vals[2:]):
                    site(op, [dest, v], dest)
            else:
                sites[0](op, vals, dest, dtype if op == "cast" else None)
        for k, ref in enumerate(self.outs):
            if results[k] is None:  # an output that is an input, a constant or another output
                results[k] = np.empty(shape, self.node.outputs[k].type.dtype)
                copy_into(value(ref), results[k])
            self.outputs[k][0] = results[k]


class InnerGraphThunk:
    """An ``OpFromGraph`` node (softmax, log-softmax, ... wrappers) whose inner graph runs in
    mode AOT too. PyTensor's ``perform`` would compile it in the default mode (NUMBA):
    10-20 s of numba compilation inside the first call of a softmax classifier.
    """

    lazy = False

    def __init__(self, node, inputs, outputs):
        self.node, self.inputs, self.outputs = node, inputs, outputs
        self.fn = None

    def __call__(self) -> None:
        if self.fn is None:
            import pytensor
            from pytensor.compile.mode import get_mode

            op = self.node.op
            kwargs = {k: v for k, v in op.kwargs.items() if k != "mode"}
            self.fn = pytensor.function(
                op.inner_inputs, op.inner_outputs,
                mode=get_mode("AOT").excluding("symbolic_op_recognition"), **kwargs)
            self.fn.trust_input = True
        for cell, value in zip(self.outputs, self.fn(*[c[0] for c in self.inputs])):
            cell[0] = value
