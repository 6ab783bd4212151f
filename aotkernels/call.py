"""The one call path: operands checked, a kernel resolved (``Prepared``), then called.

Every family in ``aotkernels.families`` goes through here. Operands are converted and
checked (``operand``, ``check_out``, ``axes``) and described to the kernel as a
``Geometry``; ``prepare`` looks the kernel up in the library (``Library.find``) or, on a
miss, JIT-compiles the exact signature where the family allows it; ``Prepared.run`` packs
the pointers, calls, turns a non-zero status into the family's exception and reports the
call to ``record`` (what plans replay). Nothing reaches a raw pointer before dtype, shape,
broadcast, writeability and alignment have been checked.
"""

from __future__ import annotations

import ctypes
from typing import NoReturn

import numpy as np

from aotkernels import jit, record
from aotkernels.layout import broadcast_strides, collapse, is_flat
from aotkernels.library import library_for
from aotkernels.signature import CODES, Signature

try:
    from numpy.lib.array_utils import normalize_axis_tuple
except ImportError:  # NumPy 1.x
    from numpy.core.numeric import normalize_axis_tuple


class KernelError(RuntimeError):
    """A kernel reported a failure it has no more specific exception for."""


#: native dtype -> name; ``dtype.name`` is a slow Python property, this lookup is a hash
DTYPE_NAMES = {np.dtype(n): n for n in CODES}


def operand(x) -> tuple[np.ndarray, str]:
    """``x`` as an array a kernel can read (native byte order, aligned) and its dtype name."""
    a = np.asarray(x)
    name = DTYPE_NAMES.get(a.dtype)
    if name is None or not a.flags.aligned:
        native = a.dtype.newbyteorder("=")
        name = DTYPE_NAMES.get(native)
        if name is None:
            raise TypeError(f"unsupported dtype {a.dtype} (supported: {', '.join(CODES)})")
        a = a.astype(native, order="C")  # not ascontiguousarray: it makes rank 0 rank 1
    return a, name


def check_out(out, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """``out`` if a kernel may write a result of ``shape`` and ``dtype`` into it."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array, not {type(out).__name__}")
    if DTYPE_NAMES.get(out.dtype) != dtype:
        raise TypeError(f"out has dtype {out.dtype}, the result is {dtype}")
    if out.shape != shape:
        raise ValueError(f"out has shape {out.shape}, the broadcast result {shape}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    if not out.flags.aligned:
        raise ValueError("out is not aligned")
    return out


def axes(axis, ndim: int) -> tuple[int, ...]:
    """``axis`` (an int, a sequence, or None for all) as sorted non-negative axes.

    NumPy's rules (``AxisError`` out of bounds, ``ValueError`` if repeated, ``TypeError`` for
    a float), and a bool is refused too: ``True`` is not axis 1.
    """
    if axis is None:
        return tuple(range(ndim))
    seq = axis if isinstance(axis, (tuple, list)) else (axis,)
    if any(isinstance(ax, (bool, np.bool_)) for ax in seq):
        raise TypeError("axis must be an integer, not bool")
    return tuple(sorted(normalize_axis_tuple(axis, ndim)))


class Geometry:
    """How a kernel sees its operands: shapes and byte strides laid end to end.

    Elementwise, reduction and row (``axis``) kernels see every operand with one common,
    collapsed ``shape`` (stride 0 where broadcast), so an ``nd`` kernel of a higher rank
    serves too, padded with size-1 dimensions. Kernels of the ``blas`` and ``index``
    families see each operand with its own shape (``Geometry.operands``), at a fixed rank.
    """

    __slots__ = ("shape", "strides", "flat", "ndim", "shapes")

    def __init__(self, shape: tuple[int, ...], strides: list[tuple[int, ...]],
                 flat: bool = False):
        self.shape, self.strides, self.flat = shape, strides, flat
        self.ndim, self.shapes = len(shape), None

    @classmethod
    def broadcast(cls, arrays: list[np.ndarray], out: np.ndarray) -> Geometry:
        """Inputs broadcast to ``out``, dimensions collapsed as NumPy's iterator does."""
        strides = [broadcast_strides(a, out.shape) for a in arrays] + [out.strides]
        shape, strides = collapse(out.shape, strides)
        sizes = [a.dtype.itemsize for a in arrays] + [out.dtype.itemsize]
        return cls(shape, strides, is_flat(shape, strides, sizes))

    @classmethod
    def reduction(cls, a: np.ndarray, acc: np.ndarray) -> Geometry:
        """Input and accumulator, the latter broadcast (stride 0) along the reduced axes."""
        return cls(*collapse(a.shape, [a.strides, broadcast_strides(acc, a.shape)]))

    @classmethod
    def operands(cls, arrays: list[np.ndarray], ndim: int) -> Geometry:
        """Each operand as it is, for a kernel keyed by rank ``ndim`` (no padding)."""
        geo = cls((), [a.strides for a in arrays])
        geo.ndim, geo.shapes = ndim, [a.shape for a in arrays]
        return geo

    def exact(self, family: str, op: str, ins: tuple[str, ...], out: str) -> Signature:
        """The signature that fits without padding (what JIT compiles)."""
        if self.flat:
            return Signature(family, op, ins, out, "flat", 1)
        return Signature(family, op, ins, out, "nd", self.ndim)

    def arrays(self, sig: Signature):
        """The kernel's shapes and strides arrays for ``sig`` (padded to its rank)."""
        if self.shapes is not None:
            shapes = [n for shape in self.shapes for n in shape]
            strides = [s for st in self.strides for s in st]
        else:
            pad = sig.ndim - self.ndim
            shapes = ((1,) * pad + self.shape) * len(self.strides)
            strides = [s for st in self.strides for s in (0,) * pad + st]
        return ((ctypes.c_int64 * max(1, len(shapes)))(*shapes),
                (ctypes.c_int64 * max(1, len(strides)))(*strides))


class Prepared:
    """A resolved kernel call for operands of one geometry (shapes, strides, dtypes).

    Reusable while the operands keep that geometry: ``run`` then only passes the new data
    pointers. ``source`` says where the kernel came from ("aot": the library, "jit": the
    JIT cache); ``errors`` maps the kernel's statuses to (exception, message); ``casts``
    converts inputs to the kernel's dtypes first; ``update``: the kernel reads its output
    before writing it (a reduction's accumulator, ``beta * y``, a scatter).
    """

    __slots__ = ("sig", "fn", "source", "shapes", "strides", "n", "errors", "casts", "update")

    def __init__(self, sig: Signature, fn, source: str, geometry: Geometry,
                 errors: dict | None = None, casts: list | None = None, update: bool = False):
        self.sig, self.fn, self.source = sig, fn, source
        self.errors, self.casts, self.update = errors, casts, update
        self.n = len(geometry.strides)
        self.shapes, self.strides = geometry.arrays(sig)

    def run(self, arrays: list[np.ndarray]) -> None:
        """Call the kernel on ``arrays`` (inputs, then outputs) of the prepared geometry."""
        if self.casts:
            arrays = [a if c is None else record.astype(a, c)
                      for a, c in zip(arrays, self.casts)] + arrays[len(self.casts):]
        data = (ctypes.c_void_p * self.n)(*[a.ctypes.data for a in arrays])
        status = self.fn(data, self.shapes, self.strides)
        if status:
            self.fail(status)
        record.kernel(self, arrays)

    def fail(self, status: int) -> NoReturn:
        """Raise what a non-zero ``status`` of this kernel means (a replayed plan too)."""
        known = self.errors.get(status) if self.errors else None
        if known is not None:
            raise known[0](known[1])
        raise KernelError(f"kernel {self.sig.key} failed with status {status}")


def prepare(family: str, op: str, ins: tuple[str, ...], out: str, geometry: Geometry, *,
            jit_ok: bool = True, **kwargs) -> Prepared | None:
    """The shipped kernel for this call, else (``jit_ok``) the JIT-compiled one, else None.

    ``kwargs`` go to ``Prepared`` (errors, casts, update).
    """
    found = shipped(family, op, ins, out, geometry, **kwargs)
    if found is not None or not jit_ok:
        return found
    sig = geometry.exact(family, op, ins, out)
    return Prepared(sig, jit.function(sig), "jit", geometry, **kwargs)


def shipped(family: str, op: str, ins: tuple[str, ...], out: str, geometry: Geometry,
            **kwargs) -> Prepared | None:
    """The best kernel the family's library ships for this call, or None."""
    lib = library_for(family)
    if lib is None:
        return None
    sig, fn = lib.find(family, op, ins, out, geometry.ndim, geometry.flat,
                       pads=geometry.shapes is None)
    return None if sig is None else Prepared(sig, fn, "aot", geometry, **kwargs)


def ships(family: str, op: str, ins: tuple[str, ...], out: str, ndim: int) -> bool:
    """Whether the library has the kernel of fixed rank ``ndim`` (``blas``, ``index``): those
    families decide it before making their operands ready, and compute with NumPy if not."""
    lib = library_for(family)
    return lib is not None and lib.find(family, op, ins, out, ndim, pads=False)[0] is not None
