"""Kernel templates and op tables, one family each: the family registry.

A ``Family`` record holds everything about a family in one place: its op table (which
ops exist, their type rules; numba-free), its template sources (the first is the module
whose ``build(sig, name)`` makes a kernel body; importing it imports numba) and which
signatures of an op ship (``signatures``). The catalog (``generator/catalog.py``) is a
loop over ``FAMILIES``; the runtime reads the tables; the sources' hash goes into every
exported symbol (``Signature.symbol``), so editing a template renames, and therefore
rebuilds, only that family's kernels. Reading this registry does not import numba.
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from aotkernels.kernels.axis_ops import AXIS_OPS
from aotkernels.kernels.blas_ops import BLAS_DTYPES, BLAS_OPS
from aotkernels.kernels.index_ops import INDEX_DTYPES, INDEX_OPS
from aotkernels.kernels.lapack_ops import LAPACK_DTYPES, LAPACK_OPS
from aotkernels.kernels.reductions import REDUCTIONS
from aotkernels.kernels.scalar_ops import FLOATS, SCALAR_OPS
from aotkernels.signature import ABI_VERSION, Signature

_HERE = Path(__file__).resolve().parent

#: ``signatures(op record, dtypes, max_ndim)``: what of one op ships for those dtypes
Enumerate = Callable[[object, tuple[str, ...], int], Iterator[Signature]]


@dataclass(frozen=True)
class Family:
    name: str
    table: dict  # op name -> op record
    sources: tuple[str, ...]
    signatures: Enumerate


def _elemwise(op, dtypes: tuple[str, ...], max_ndim: int) -> Iterator[Signature]:
    """Every dtype the op's type rule takes with all inputs of one dtype (the runtime casts
    mixed inputs to that form), ``cast`` for every ordered pair of distinct dtypes,
    ``switch`` with a bool condition (others are cast), SciPy-backed ops for floats only (the
    runtime casts integers); a ``flat`` kernel plus ``nd`` kernels of rank 1..max_ndim (rank
    0 runs on ``flat``)."""
    if op.name == "cast":
        forms = [((a,), b) for a, b in itertools.permutations(dtypes, 2)]
    else:
        forms = []
        for d in dtypes:
            if op.scipy and d not in FLOATS:
                continue
            ins = ("bool", d, d) if op.name == "switch" else (d,) * op.nin
            try:
                forms.append((ins, op.types(ins)[0]))
            except TypeError:
                continue
    for ins, out in forms:
        yield Signature("elemwise", op.name, ins, out, "flat", 1)
        for n in range(1, max_ndim + 1):
            yield Signature("elemwise", op.name, ins, out, "nd", n)


def _reduce(op, dtypes: tuple[str, ...], max_ndim: int) -> Iterator[Signature]:
    """Every dtype at ranks 1..max_ndim (one kernel serves every axis set)."""
    for d in dtypes:
        for n in range(1, max_ndim + 1):
            yield Signature("reduce", op.name, (d,), op.dtypes(d)[0], "nd", n)


def _axis(op, dtypes: tuple[str, ...], max_ndim: int) -> Iterator[Signature]:
    """The dtypes the op takes at ranks 1..max_ndim (the op's axes are moved last)."""
    for d in dtypes:
        if d in op.dtypes:
            for n in range(1, max_ndim + 1):
                yield Signature("axis", op.name, (d,) * op.nin, op.out_dtype(d), "nd", n)


def _blas(op, dtypes: tuple[str, ...], max_ndim: int) -> Iterator[Signature]:
    """float64 and float32 (each product has one rank, whatever ``max_ndim``)."""
    for d in dtypes:
        if d in BLAS_DTYPES:
            yield Signature("blas", op.name, (d,) * op.nin, d, "nd", op.ndim)


def _index(op, dtypes: tuple[str, ...], max_ndim: int) -> Iterator[Signature]:
    """The data dtypes the op takes, int64 and int32 indices, its ranks up to max_ndim."""
    for d in dtypes:
        if d in op.dtypes:
            for i in INDEX_DTYPES:
                for n in op.ranks:
                    if n <= max_ndim:
                        yield Signature("index", op.name, (d, i), d, "nd", n)


def _lapack(op, dtypes: tuple[str, ...], max_ndim: int) -> Iterator[Signature]:
    """float64 and float32 matrices with their int64 flags (one rank, like ``_blas``)."""
    for d in dtypes:
        if d in LAPACK_DTYPES:
            yield Signature("lapack", op.name, op.in_dtypes(d), d, "nd", op.ndim)


_COMMON = ("scalar_ops.py", "abi.py")

#: every family; op names are unique across them, so ``--ops`` needs no prefix
FAMILIES: dict[str, Family] = {f.name: f for f in [
    Family("elemwise", SCALAR_OPS, ("elemwise.py", "special.py", "vecmath.py", *_COMMON),
           _elemwise),
    Family("reduce", REDUCTIONS, ("reduce.py", "reductions.py", "elemwise.py", *_COMMON),
           _reduce),
    Family("axis", AXIS_OPS, ("axis.py", "axis_ops.py", *_COMMON), _axis),
    Family("blas", BLAS_OPS, ("blas.py", "blas_ops.py", *_COMMON), _blas),
    Family("index", INDEX_OPS, ("index.py", "index_ops.py", *_COMMON), _index),
    Family("lapack", LAPACK_OPS, ("lapack.py", "lapack_ops.py", *_COMMON), _lapack),
]}


@cache
def template_hash(family: str) -> str:
    h = hashlib.sha256(f"abi{ABI_VERSION}".encode())
    for name in FAMILIES[family].sources:
        h.update((_HERE / name).read_bytes())
    return h.hexdigest()[:16]


def builder(family: str):
    """The family's ``build(sig, name) -> (njit body, operand specs)``; imports numba."""
    return importlib.import_module(f"aotkernels.kernels.{FAMILIES[family].sources[0][:-3]}").build
