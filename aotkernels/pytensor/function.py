"""``AOTFunction``: PyTensor's ``Function`` for mode AOT, whose calls skip the input filter
when the arguments are what the filter would accept unchanged.

``Function.__call__`` filters every argument through ``TensorType.filter`` (0.7-0.8 µs
each) before the VM runs: on a small graph that is more than the plan's whole C work. When
the arguments have exactly the geometry of the last planned call (``Plan.fast_path``'s
``fast_args`` checks class, shape, strides, dtype and alignment, which is all the filter
checks of an ndarray of the right dtype), the call goes straight to the plan; every other
call (keyword arguments, another geometry, lists, a dtype to convert, a bad input) is
``Function.__call__``, so conversions and errors stay PyTensor's own. Functions with
updates, defaults or dict outputs always take ``Function.__call__``, and so do functions
whose borrowed inputs may alias (``Function.__call__`` copies aliased ones) unless they
``trust_input``, which skips that check in PyTensor too (PyMC's trace point function).

Modes reach it through ``Mode.function_maker`` (a property of ``Mode`` itself, for modes
whose linker is mode AOT's: PyMC builds its own ``Mode`` around that linker).
"""

from __future__ import annotations

import copyreg

from pytensor.compile import Function, FunctionMaker
from pytensor.compile.mode import Mode

from aotkernels.pytensor.linker import AOTLinker
from aotkernels.pytensor.loop import PlannedLoop


def argument_cells(fn: Function) -> list | None:
    """Per positional argument of ``fn``, the index of its cell in the VM's
    ``input_storage``; None when ``fn`` cannot skip ``Function.__call__``."""
    vm = fn.vm
    if (not isinstance(vm, PlannedLoop) or getattr(fn, "output_keys", None) is not None
            or any(inp.update is not None for inp in fn.maker.expanded_inputs)):
        return None
    containers = fn.input_storage
    required = [c for c in containers if c.required and not c.implicit]
    if containers[:len(required)] != required or not all(
            c.implicit for c in containers[len(required):]):
        return None  # defaults, or implicit inputs between the arguments
    cells = {id(cell): k for k, cell in enumerate(vm.input_storage)}
    index = [cells.get(id(c.storage)) for c in required]
    return None if None in index else index


class AOTFunction(Function):
    """``Function`` whose calls go straight to the plan when the arguments allow it."""

    n_args = -1  # positional arguments of a call the fast path may take (-1: none)
    _arg_cells: list | None = None
    _aliased = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        index = argument_cells(self)
        self.vm.arg_cells = index  # PlannedLoop makes fast_args only when it is set
        self._arg_cells, self._aliased = index, bool(self._potential_aliased_input_groups)
        self._count_args()
        self.clear_args = [c.storage for c in self.input_storage if c.required]
        self.clear_outputs = [c.storage for c, v in zip(self.output_storage,
                                                        self.maker.fgraph.outputs)
                              if v.owner is not None]

    @property
    def trust_input(self) -> bool:
        """PyTensor's flag (set after compiling: ``fn.trust_input = True``)."""
        return self.__dict__.get("_trust_input", False)

    @trust_input.setter
    def trust_input(self, value: bool) -> None:
        self.__dict__["_trust_input"] = value
        self._count_args()

    def _count_args(self) -> None:
        index = self._arg_cells
        fast = index is not None and (not self._aliased or self.trust_input)
        self.n_args = len(index) if fast else -1

    def __call__(self, *args, **kwargs):
        vm = self.vm
        fast = vm.fast_args if len(args) == self.n_args else None
        if fast is not None and not kwargs and not self.profile:
            outputs = fast(args)
            if outputs is not None:
                if vm.allow_gc:  # what Function.__call__ clears after a call
                    for cell in self.clear_args:
                        cell[0] = None
                    for cell in self.clear_outputs:
                        cell[0] = None
                if self.return_none:
                    return None
                return outputs[0] if self.unpack_single else outputs
        return super().__call__(*args, **kwargs)


#: pickled as PyTensor pickles a ``Function`` (its maker and inputs; copyreg looks classes
#: up exactly, so a subclass must say so)
copyreg.pickle(AOTFunction, copyreg.dispatch_table[Function])


class AOTFunctionMaker(FunctionMaker):
    """``FunctionMaker`` that builds ``AOTFunction`` (unless told to build another class)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("function_class", "function_builder"):  # PyTensor 3.x, 2.x
            if getattr(self, name, None) is Function:
                setattr(self, name, AOTFunction)


#: PyTensor's ``Mode.function_maker`` (3.x; 2.x has none and uses ``FunctionMaker``)
_plain_function_maker = Mode.__dict__.get("function_maker")


def _function_maker(mode: Mode):
    if isinstance(mode.linker, AOTLinker):
        return AOTFunctionMaker
    return FunctionMaker if _plain_function_maker is None else _plain_function_maker.fget(mode)


if getattr(_plain_function_maker, "fget", None) is None or (
        _plain_function_maker.fget.__module__ != __name__):  # once, even if loaded again
    Mode.function_maker = property(_function_maker)
