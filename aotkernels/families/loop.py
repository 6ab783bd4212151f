"""Scalar loops (``kernels/loop.py``) on the ``loop`` kernels: an ``Elemwise{ScalarLoop}``.

A ``LoopCall`` holds a node's loop program without its rank (which the operands' collapsed
geometry decides): the runtime makes the ``Loop`` of each rank it meets, takes its kernel
from the library (``build-kernels --from-usage`` bakes loops a workload JIT-compiled) or
from the JIT, and calls it. A plan replays at most ``max_operands`` operands per step
(the executor's limit), so a node with more outputs than fit beside its inputs runs its
loop in several kernels, each writing some outputs: the first one writes the node's first
output (its result, for the planner), the others write the further results, which are
recorded as workspaces, as ``LUFactor``'s pivots are.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from aotkernels import call, record, special
from aotkernels.kernels.loop import NEGATIVE_MESSAGE, NEGATIVE_STEPS, Loop, register
from aotkernels.kernels.scalar_ops import SCALAR_OPS
from aotkernels.layout import broadcast_strides, collapse
from aotkernels.library import default_library

#: most operands of one step of a plan when the library does not say (``aotk_max_operands``)
MAX_OPERANDS = 16


def max_operands() -> int:
    lib = default_library()
    found = lib.executor() if lib is not None else None
    return found[1] if found else MAX_OPERANDS


class LoopCall:
    """Runs one loop program over arrays: ``template`` is its ``Loop`` with ``outputs``
    listing every node output and ``ndim`` 0; ``out_dtypes`` the node's output dtypes."""

    def __init__(self, template: Loop, out_dtypes: tuple[str, ...], limit: int):
        self.template, self.out_dtypes = template, out_dtypes
        nin, n_out = template.nin, len(out_dtypes)
        room = limit - nin
        if room < 1:
            raise ValueError(f"a loop of {nin} inputs does not fit {limit} operands")
        rest = list(range(1, n_out))
        self.chunks = [(*rest[:room - 1], 0)]  # the node's result last: what the step writes
        rest = rest[room - 1:]
        self.chunks += [tuple(rest[i:i + room]) for i in range(0, len(rest), room)]
        self.errors = {NEGATIVE_STEPS: (ValueError, NEGATIVE_MESSAGE)}
        if template.raises is not None:
            self.errors[1] = template.raises
        self.scipy = any(SCALAR_OPS[op].scipy is not None for op, _, _, _ in template.steps)
        self._loops: dict = {}  # (ndim, chunk) -> its Loop, registered

    def loop(self, ndim: int, chunk: tuple[int, ...]) -> Loop:
        found = self._loops.get((ndim, chunk))
        if found is None:
            t = self.template
            dtypes = (*t.dtypes[:t.nin], *(self.out_dtypes[k] for k in chunk))
            found = replace(t, dtypes=dtypes, outputs=chunk, ndim=ndim)
            register(found)
            self._loops[(ndim, chunk)] = found
        return found

    def __call__(self, *values) -> tuple[np.ndarray, ...]:
        """The node's outputs for ``values`` (its inputs from memory: ``n_steps`` first)."""
        arrays, ins = zip(*[call.operand(v) for v in values])
        if ins != self.template.dtypes[:self.template.nin]:
            raise TypeError(f"loop operands of dtypes {', '.join(ins)}, not "
                            f"{', '.join(self.template.dtypes[:self.template.nin])}")
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
        outs = [np.empty(shape, self.out_dtypes[0])]
        outs += [record.workspace(shape, d) for d in self.out_dtypes[1:]]
        if outs[0].size == 0:
            return tuple(outs)
        if self.scipy:
            special.bind(default_library())
        in_strides = [broadcast_strides(a, shape) for a in arrays]
        for chunk in self.chunks:
            chosen = [outs[k] for k in chunk]
            cshape, strides = collapse(shape, [*in_strides, *(o.strides for o in chosen)])
            loop = self.loop(len(cshape), chunk)
            geometry = call.Geometry(cshape, strides)
            prepared = call.prepare("loop", loop.name, loop.dtypes[:-1], loop.dtypes[-1],
                                    geometry, errors=self.errors)
            prepared.run([*arrays, *chosen])
        return tuple(outs)

