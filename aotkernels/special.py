"""SciPy's special functions for the kernels that call them (``kernels/special.py``).

``bind`` fills the slot table of the process's library (``aotk_set_special`` in the shim)
and the JIT's own table (``jit_table``, the address JIT-compiled kernels link
``aotk_special`` to) with the ``double`` variants SciPy exports as Cython capsules. It runs
when an op that needs it is first resolved, so ``import aotkernels`` never imports SciPy.
"""

from __future__ import annotations

import ctypes
import re

from aotkernels.kernels.scalar_ops import SCIPY_FUNCTIONS, SPECIAL_SLOTS, TABLE_SYMBOL

#: the JIT's table; kernels loaded by ``aotkernels.jit`` read it
jit_table = (ctypes.c_void_p * SPECIAL_SLOTS)()
_jit_bound: list = []
#: the tables of JIT kernels loaded as shared objects (``jit_link``), each its own copy
_tables: list = []


#: an exported name: a function's own, or one of Cython's fused specialisations of it
_EXPORT = re.compile(r"(?:__pyx_fuse_\d+)?([A-Za-z]\w*)")
_DOUBLE = re.compile(r"double \((double, )+int __pyx_skip_dispatch\)")


class SpecialUnavailable(RuntimeError):
    """SciPy (``scipy.special.cython_special``) cannot be imported or lacks a function."""


def addresses() -> list[int]:
    """Each of ``SCIPY_FUNCTIONS``' ``double f(double, ..., int)`` address, in slot order."""
    try:
        from scipy.special import cython_special
    except ImportError as exc:
        raise SpecialUnavailable(f"scipy.special.cython_special: {exc}") from None
    name_of = ctypes.pythonapi.PyCapsule_GetName
    name_of.restype, name_of.argtypes = ctypes.c_char_p, [ctypes.py_object]
    pointer = ctypes.pythonapi.PyCapsule_GetPointer
    pointer.restype, pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    capi = cython_special.__pyx_capi__
    variants: dict[str, list[str]] = {}  # function -> its exported names, in SciPy's order
    for key in capi:
        match = _EXPORT.fullmatch(key)
        if match:
            variants.setdefault(match.group(1), []).append(key)
    found = []
    for fn in SCIPY_FUNCTIONS:
        # the double variant: the plain name or one of Cython's fused specialisations
        for key in variants.get(fn, ()):
            sig = name_of(capi[key]).decode()
            if _DOUBLE.fullmatch(sig):
                found.append(pointer(capi[key], sig.encode()))
                break
        else:
            raise SpecialUnavailable(f"scipy.special.cython_special has no double {fn}")
    return found


def link_symbol() -> None:
    """Resolve ``aotk_special`` to ``jit_table`` in llvmlite's JIT: for the kernels
    ``aotkernels.jit`` loads, and for numba finalising a template while compiling one."""
    import llvmlite.binding as llvm

    llvm.add_symbol(TABLE_SYMBOL, ctypes.addressof(jit_table))


def add_table(table) -> None:
    """A JIT shared object's own ``aotk_special``: filled now if the functions are bound,
    else by ``bind``."""
    _tables.append(table)
    if _jit_bound:
        table[:] = jit_table[:]


def bind(lib) -> None:
    """Fill the slot tables of ``lib`` (a ``Library`` or None) and of the JIT, once each."""
    if _jit_bound and (lib is None or lib.special):
        return
    fns = addresses()
    jit_table[:len(fns)] = fns
    _jit_bound.append(True)  # before the tables: one added meanwhile fills itself
    for table in list(_tables):
        table[:len(fns)] = fns
    if lib is not None:
        setter = getattr(lib.dll, "aotk_set_special", None)
        if setter is not None:  # a library without it has no SciPy kernels to call
            if setter(len(fns), (ctypes.c_void_p * len(fns))(*fns)) != 0:
                raise SpecialUnavailable(f"{lib.path} refused {len(fns)} special functions")
        lib.special = True
