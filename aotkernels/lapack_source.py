"""Find a LAPACK for the library's trampolines: SciPy's, else the kernels' own loops.

SciPy exports its LP64 Fortran LAPACK (the OpenBLAS it bundles) as ``cython_lapack``
capsules, the routines PyTensor's own ``perform`` reaches through ``get_lapack_funcs``.
Without SciPy the ``lapack`` kernels run their loops (logged once: large matrices are then
slower, never wrong). ``AOT_LAPACK`` forces one: ``scipy`` or ``loop``; any other value is
a warning and the automatic choice.
"""

from __future__ import annotations

import ctypes
import logging
import os

#: trampoline slots, in ``aotk_set_lapack`` order (``LAPACK_SLOTS`` in the shim)
ROUTINES = ("dpotrf", "spotrf", "dtrtrs", "strtrs", "dgetrf", "sgetrf", "dgetrs", "sgetrs",
            "dpotrs", "spotrs", "dsytrf", "ssytrf", "dsytrs", "ssytrs")
NONE = "none (the kernels' own loops)"

log = logging.getLogger("aotkernels")


def _scipy_lapack() -> tuple[list[int], str] | None:
    try:
        from scipy.linalg import cython_lapack
    except ImportError:
        log.info("aotkernels: SciPy is not installed; the lapack kernels run their own loops")
        return None
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_ptr = ctypes.pythonapi.PyCapsule_GetPointer
    get_ptr.restype, get_ptr.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    caps = cython_lapack.__pyx_capi__
    fns = [get_ptr(caps[r], get_name(caps[r])) for r in ROUTINES]
    return fns, "scipy.linalg.cython_lapack (Fortran LAPACK, 32-bit indices)"


def find(prefer: str | None = None) -> tuple[list[int], str]:
    """``(routine addresses, description)`` for ``aotk_set_lapack`` (all 0: none)."""
    prefer = prefer or os.environ.get("AOT_LAPACK") or "auto"
    if prefer not in ("auto", "scipy", "loop"):
        log.warning("aotkernels: AOT_LAPACK=%s is not scipy or loop; choosing automatically",
                    prefer)
        prefer = "auto"
    if prefer != "loop" and (found := _scipy_lapack()):
        return found
    return [0] * len(ROUTINES), NONE
