"""Your own kernels, compiled ahead of time like this project's: declare them in a module.

::

    # mymodule.py (imports no numba: numba compiles it at build time, or on a JIT miss)
    from aotkernels.user import Catalog

    cat = Catalog("mykernels")

    @cat.elemwise("f8(f8, f8)", "f4(f4, f4)")      # a scalar function: elementwise kernels
    def huber(x, d):                                # (flat, strided nd, broadcasting, out=)
        a = abs(x)
        return 0.5 * x * x if a <= d else d * (a - 0.5 * d)

    @cat.elemwise("f8(f8, f8)", identity=-math.inf)  # also a reduction: logaddexp.reduce
    def logaddexp(a, b): ...

    @cat.array("(f8[:, :], f8[:]) -> f8[:]", shape=lambda x, w: x.shape[:1])
    def matvec(x, w, out): ...                      # a whole-array kernel: writes its outputs

    @cat.helper                                     # a plain function the kernels call
    def clamp(x, lo, hi): ...

Then ``build-kernels --catalog mymodule --targets x86_64,x86_64_v3,x86_64_v4`` writes the
wheel ``mykernels-<version>-py3-none-<platform>.whl`` (``import mykernels;
mykernels.huber(x, 1.5, out=y)``), which needs NumPy and the aotkernels runtime, not numba.
Without a built library (the module imported from source), every call JIT-compiles its
kernel once from the same module with the same ABI, cached on disk.

A catalog is one family of ``aotkernels.kernels.FAMILIES`` (the catalog's name), so its
kernels are enumerated, compiled, linked, checked and dispatched by the same code as the
built-in ones. This module and the declaring module import no numba.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np

from aotkernels import jit, library
from aotkernels.families import user as calls
from aotkernels.kernels import Family, register
from aotkernels.kernels.user_ops import (
    ArrayOp,
    ElementwiseOp,
    Helper,
    ReductionOp,
    check_array,
    check_elementwise,
    user_signatures,
)
from aotkernels.signature import Signature

#: the templates a catalog's kernels are made from: they and the declaring module are hashed
SOURCES = ("user.py", "user_ops.py", "elemwise.py", "reduce.py", "abi.py")

_NO_IDENTITY = object()


class Elementwise:
    """A declared scalar function, called elementwise like a ufunc: ``f(x, y, out=None)``."""

    def __init__(self, catalog: Catalog, op: ElementwiseOp, reduction: ReductionOp | None):
        self.catalog, self.op, self.reduction = catalog, op, reduction
        self.py_func = op.fn
        functools.update_wrapper(self, op.fn)

    def __call__(self, *inputs, out: np.ndarray | None = None) -> np.ndarray:
        return calls.elementwise(self.catalog.name, self.op, inputs, out)

    def reduce(self, x, axis=None, keepdims: bool = False) -> np.ndarray:
        """Fold ``x`` along ``axis`` (None: every axis), starting from the identity."""
        if self.reduction is None:
            raise TypeError(f"{self.op.name} has no reduction: declare it with identity=")
        return calls.reduce(self.catalog.name, self.reduction, x, axis, keepdims)

    def resolve(self, *inputs, out: np.ndarray | None = None):
        """(Signature, 'aot' or 'jit') of the kernel a call would run; (None, None) if empty."""
        prepared, _, _ = calls.prepare_elementwise(self.catalog.name, self.op, inputs, out)
        return (prepared.sig, prepared.source) if prepared else (None, None)


class Array:
    """A declared whole-array kernel: ``f(*inputs, out=None)`` writes and returns ``out``."""

    def __init__(self, catalog: Catalog, op: ArrayOp):
        self.catalog, self.op = catalog, op
        self.py_func = op.fn
        functools.update_wrapper(self, op.fn)

    def __call__(self, *inputs, out=None):
        return calls.array(self.catalog.name, self.op, inputs, out)


class Catalog:
    """A family of user kernels named ``name`` (a Python identifier: the family, the
    library ``lib<name>_<target>.so`` and, by default, the wheel and its package)."""

    def __init__(self, name: str, version: str = "0.1.0"):
        caller = sys._getframe(1).f_globals
        self.name, self.version = name, version
        self.module = caller.get("__name__", "")
        self.file = caller.get("__file__")
        if not self.file or self.module == "__main__":
            raise ValueError("declare a Catalog in an importable module (not __main__): "
                             "build-kernels and the JIT import it again")
        self.table: dict = {}
        self.functions: dict[str, Elementwise | Array] = {}
        register(Family(name, self.table, SOURCES, user_signatures(name),
                        origin=(self.module, str(Path(self.file).resolve()))))

    def _add(self, name: str, op, function):
        if name in self.table or not name.isidentifier():
            raise ValueError(f"{self.name}: {name!r} is declared twice or not an identifier")
        self.table[name] = op
        self.functions[name] = function
        return function

    def elemwise(self, *signatures: str, identity=_NO_IDENTITY, raises=None, name=None):
        """Declare a scalar function with signatures like ``"f8(f8, f8)"``.

        ``identity``: also a reduction (``f.reduce(x, axis)``) over its ``T(T, T)``
        signatures, from that start value. ``raises``: (exception class, message) a call
        raises when the function raised in the kernel (default ``KernelError``).
        """
        def declare(fn) -> Elementwise:
            op_name = name or fn.__name__
            op = ElementwiseOp(op_name, fn, check_elementwise(op_name, list(signatures)),
                               raises)
            reduction = None
            if identity is not _NO_IDENTITY:
                reduction = ReductionOp(f"{op_name}.reduce", op, identity)
                if not reduction.dtypes:
                    raise ValueError(f"{op_name}: a reduction needs a signature 'T(T, T)'")
                self.table[reduction.name] = reduction
            return self._add(op_name, op, Elementwise(self, op, reduction))
        return declare

    def array(self, *signatures: str, shape=None, raises=None, name=None):
        """Declare a whole-array kernel with signatures like ``"(f8[:, :], f8) -> f8[:]"``.

        The function takes the inputs, then the outputs, and writes the outputs (its return
        value is ignored); a scalar input arrives as a scalar. ``shape(*inputs)`` gives the
        output shape (a tuple of shapes for several outputs) so calls may omit ``out=``.
        Indexing is bounds-checked: an index out of range raises instead of crashing.
        """
        def declare(fn) -> Array:
            op_name = name or fn.__name__
            op = ArrayOp(op_name, fn, check_array(op_name, list(signatures)), shape, raises)
            return self._add(op_name, op, Array(self, op))
        return declare

    def helper(self, fn):
        """Declare a plain function the kernels call (numba compiles it into each of them;
        the module still imports without numba). Returns ``fn`` unchanged."""
        if fn.__name__ in self.table:
            raise ValueError(f"{self.name}: {fn.__name__!r} is declared twice")
        self.table[fn.__name__] = Helper(fn.__name__, fn)
        return fn

    def bind(self, directory: Path) -> None:
        """Run this catalog on the library in ``directory`` (its wheel's ``_lib``)."""
        library.bind(self.name, directory)

    def info(self) -> dict:
        """Which library serves this catalog and what it holds."""
        report = {"catalog": self.name, "version": self.version, "module": self.module,
                  "functions": sorted(self.functions), "jit_disabled": jit.jit_disabled()}
        lib = library.library_for(self.name)
        if lib is None or not any(Signature.from_key(k).family == self.name
                                  for k in lib.kernels):
            report.update(library=None)
            return report
        report.update(library=str(lib.path), target=lib.target, reason=lib.reason,
                      targets=[t["name"] for t in lib.manifest["targets"]],
                      kernels=len(lib.kernels), numba=lib.manifest.get("numba"))
        return report
