"""Kernel templates and op tables, one family each: the family registry.

A ``Family`` record holds everything about a family in one place: its op table (which
ops exist, their type rules; numba-free), its template sources (the first is the module
whose ``build(sig, name)`` makes a kernel body; importing it imports numba) and which
signatures of an op ship (``signatures``). The catalog (``generator/catalog.py``) is a
loop over ``FAMILIES``; the runtime reads the tables; the sources' hash goes into every
exported symbol (``Signature.symbol``), so editing a template renames, and therefore
rebuilds, only that family's kernels. Reading this registry does not import numba.

A user's catalog (``aotkernels.user.Catalog``) is one more family, registered when its
module is imported (``register``); its ``origin`` (module name and file) lets compiler
processes import it again (``import_catalog``), and the module's own source is part of its
template hash.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import itertools
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from aotkernels.kernels.axis_ops import AXIS_OPS
from aotkernels.kernels.blas_ops import BLAS_DTYPES, BLAS_OPS
from aotkernels.kernels.fused import FUSED, Program
from aotkernels.kernels.index_ops import INDEX_DTYPES, INDEX_OPS
from aotkernels.kernels.lapack_ops import LAPACK_DTYPES, LAPACK_OPS
from aotkernels.kernels.loop import LOOPS, Loop
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
    #: (module name, file) of the user catalog declaring the family; None: built in
    origin: tuple[str, str] | None = None
    #: the class of the family's ops when they are programs made at run time (fused runs,
    #: scalar loops): data with ``to_json``/``from_json``, ``name`` and ``signature``
    program: type | None = None


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
    """float64 and float32 matrices with their int64 flags (one rank, like ``_blas``); an op
    with ``fixed`` dtypes once, when its output dtype is asked for."""
    for d in dtypes:
        if d in LAPACK_DTYPES if not op.fixed else d == op.fixed[-1]:
            yield Signature("lapack", op.name, op.in_dtypes(d), d, "nd", op.ndim)


def _programs(op, dtypes: tuple[str, ...], max_ndim: int) -> Iterator[Signature]:
    """Nothing: fused runs and scalar loops are programs made at run time (by plans, by
    ``ScalarLoop`` nodes), not enumerated; ``--from-usage`` bakes the ones a workload met."""
    return iter(())


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
    Family("fused", FUSED, ("fused.py", "elemwise.py", "special.py", "vecmath.py", *_COMMON),
           _programs, program=Program),
    Family("loop", LOOPS, ("loop.py", "elemwise.py", "special.py", "vecmath.py", *_COMMON),
           _programs, program=Loop),
]}


#: families of this project; a user catalog may not take their names
BUILTIN = frozenset(FAMILIES)


def register(family: Family) -> None:
    """Add a user catalog's family; importing its module again replaces it."""
    if family.name in BUILTIN or "/" in family.name or not family.name.isidentifier():
        raise ValueError(f"invalid catalog name {family.name!r}: a Python identifier that is "
                         f"none of {', '.join(sorted(BUILTIN))}")
    old = FAMILIES.get(family.name)
    if old is not None and old.origin[0] != family.origin[0]:
        raise ValueError(f"catalog {family.name!r} is declared by both {old.origin[0]} and "
                         f"{family.origin[0]}")
    FAMILIES[family.name] = family
    template_hash.cache_clear()


def program_json(sig: Signature) -> str | None:
    """The JSON of the program ``sig`` names (a fused run, a scalar loop), or None for a
    kernel of a template: what a compiler in another process must be given."""
    fam = FAMILIES.get(sig.family)
    return None if fam is None or fam.program is None else fam.table[sig.op].to_json()


def register_program(family: str, text: str) -> Signature:
    """Register the program ``text`` (JSON) in its family, for a kernel named after it;
    its signature. ``ValueError``/``KeyError``/``TypeError`` on text that is no program."""
    fam = FAMILIES[family]
    if fam.program is None:
        raise ValueError(f"family {family!r} has no programs")
    program = fam.program.from_json(text)
    fam.table[program.name] = program
    return program.signature


def import_catalog(module: str, file: str) -> None:
    """Import a user catalog in this process (a compiler worker, the JIT's child): by its
    name if that finds the same file, else from the file itself."""
    if module in sys.modules:
        return
    spec = None
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        pass
    if module in sys.modules:  # finding it imported its package, which imported it
        return
    if spec is None or spec.origin is None or Path(spec.origin).resolve() != Path(file).resolve():
        spec = importlib.util.spec_from_file_location(module, file)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[module] = mod
    spec.loader.exec_module(mod)


@cache
def template_hash(family: str) -> str:
    """Hash of the family's template sources (and of a user catalog's module)."""
    fam = FAMILIES[family]
    h = hashlib.sha256(f"abi{ABI_VERSION}".encode())
    for name in fam.sources:
        h.update((_HERE / name).read_bytes())
    if fam.origin is not None:
        h.update(Path(fam.origin[1]).read_bytes())
    return h.hexdigest()[:16]


def builder(family: str):
    """The family's ``build(sig, name) -> (njit body, operand specs)``; imports numba."""
    return importlib.import_module(f"aotkernels.kernels.{FAMILIES[family].sources[0][:-3]}").build
