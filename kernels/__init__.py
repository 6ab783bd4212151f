"""Kernel templates, one module per op family, written as numba-compatible Python.

``FAMILIES`` is the family registry: the template module that builds a family's kernels
and the source files its machine code depends on. Their hash goes into every exported
symbol (``Signature.symbol``), so editing a template renames, and therefore rebuilds, only
that family's kernels. Reading this registry does not import numba.
"""

from __future__ import annotations

import hashlib
import importlib
from functools import cache
from pathlib import Path

from aotkernels.signature import ABI_VERSION

_HERE = Path(__file__).resolve().parent

#: family -> template sources (the first is the module whose ``build(sig, name)`` makes a body)
FAMILIES: dict[str, tuple[str, ...]] = {
    "elemwise": ("elemwise.py", "scalar_ops.py", "abi.py"),
    "reduce": ("reduce.py", "reductions.py", "elemwise.py", "scalar_ops.py", "abi.py"),
    "axis": ("axis.py", "axis_ops.py", "scalar_ops.py", "abi.py"),
    "blas": ("blas.py", "blas_ops.py", "scalar_ops.py", "abi.py"),
    "index": ("index.py", "index_ops.py", "scalar_ops.py", "abi.py"),
}


@cache
def template_hash(family: str) -> str:
    h = hashlib.sha256(f"abi{ABI_VERSION}".encode())
    for name in FAMILIES[family]:
        h.update((_HERE / name).read_bytes())
    return h.hexdigest()[:16]


def builder(family: str):
    """The family's ``build(sig, name) -> (njit body, operand specs)``; imports numba."""
    return importlib.import_module(f"aotkernels.kernels.{FAMILIES[family][0][:-3]}").build
