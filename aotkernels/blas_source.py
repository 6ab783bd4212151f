"""Find a BLAS for the library's trampolines: NumPy's own first, then SciPy's, else loops.

NumPy wheels bundle scipy-openblas (a 64-bit-index CBLAS, symbols ``scipy_cblas_*64_``)
and have it loaded once numpy is imported; SciPy exports an LP64 Fortran BLAS as
``cython_blas`` capsules. ``AOT_BLAS`` forces one: ``numpy``, ``scipy`` or ``loop`` (the
kernels' own loops, no BLAS); any other value is a warning and the automatic choice.
"""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path

import numpy as np

#: trampoline slots, in ``aotk_set_blas`` order
ROUTINES = ("dgemm", "sgemm", "dgemv", "sgemv", "ddot", "sdot")
NONE, CBLAS64, FORTRAN32 = 0, 1, 2


def _openblas_paths() -> list[str]:
    """BLAS libraries this process has mapped (numpy loaded its own), then numpy.libs."""
    paths = []
    try:
        for line in Path("/proc/self/maps").read_text().splitlines():
            if "openblas" not in line:  # most of a PyMC process's ~1,500 lines: skip cheaply
                continue
            path = line.split(maxsplit=5)[-1]
            if "openblas" in Path(path).name and path not in paths:
                paths.append(path)
    except OSError:
        pass
    libs = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    paths += [str(p) for p in sorted(libs.glob("libscipy_openblas*.so*")) if str(p) not in paths]
    return paths


def _numpy_blas() -> tuple[list[int], str] | None:
    for path in _openblas_paths():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_cblas_", "64_"), ("cblas_", "64_")):
            try:
                fns = [ctypes.cast(getattr(lib, f"{prefix}{r}{suffix}"), ctypes.c_void_p).value
                       for r in ROUTINES]
            except AttributeError:
                continue
            return fns, f"numpy's {Path(path).name} (CBLAS, 64-bit indices)"
    return None


def _scipy_blas() -> tuple[list[int], str] | None:
    try:
        from scipy.linalg import cython_blas
    except ImportError:
        return None
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_ptr = ctypes.pythonapi.PyCapsule_GetPointer
    get_ptr.restype, get_ptr.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    caps = cython_blas.__pyx_capi__
    fns = [get_ptr(caps[r], get_name(caps[r])) for r in ROUTINES]
    return fns, "scipy.linalg.cython_blas (Fortran BLAS, 32-bit indices)"


def find(prefer: str | None = None) -> tuple[int, list[int], str]:
    """``(kind, routine addresses, description)`` for ``aotk_set_blas``."""
    prefer = prefer or os.environ.get("AOT_BLAS") or "auto"
    if prefer not in ("auto", "numpy", "scipy", "loop"):
        logging.getLogger("aotkernels").warning(
            "aotkernels: AOT_BLAS=%s is not numpy, scipy or loop; choosing automatically",
            prefer)
        prefer = "auto"
    if prefer in ("auto", "numpy") and (found := _numpy_blas()):
        return CBLAS64, *found
    if prefer in ("auto", "scipy") and (found := _scipy_blas()):
        return FORTRAN32, *found
    return NONE, [0] * len(ROUTINES), "none (the kernels' own loops)"
