"""The catalog: the declarative list of signatures that ship in the library.

Like NumPy's ``generate_umath.py``, the op tables decide what is prebuilt; nothing else
lists ops. Per family:

* ``elemwise``: every op for every dtype its type rule accepts with all inputs of one
  dtype (the resolver casts mixed inputs to that form, see ``aotkernels.resolver``),
  ``cast`` for every ordered pair of distinct dtypes, ``switch`` with a bool condition;
  a ``flat`` kernel plus ``nd`` kernels of rank 1..``max_ndim`` (rank 0 runs on ``flat``);
* ``reduce`` and ``axis``: every op and dtype at ranks 1..``max_ndim`` (one kernel serves
  every axis set);
* ``blas``: every product for float64 and float32 (ranks are fixed by the op);
* ``index``: take/inc/put (and their ``_points`` forms) for every data dtype the table
  lists, int64 and int32 indices, the ranks the table gives up to ``max_ndim``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

from aotkernels.kernels.axis_ops import AXIS_OPS
from aotkernels.kernels.blas_ops import BLAS_DTYPES, BLAS_OPS
from aotkernels.kernels.index_ops import INDEX_DTYPES, INDEX_OPS
from aotkernels.kernels.reductions import REDUCTIONS
from aotkernels.kernels.scalar_ops import DTYPES, SCALAR_OPS
from aotkernels.resolver import MAX_NDIM
from aotkernels.signature import CODES, NAMES, Signature

#: family -> its op table; op names are unique across families, so ``--ops`` needs no prefix
OP_TABLES = {"elemwise": SCALAR_OPS, "reduce": REDUCTIONS, "axis": AXIS_OPS, "blas": BLAS_OPS,
             "index": INDEX_OPS}


def dtype_name(spec: str) -> str:
    """Accept ``float64`` or its code ``f8``."""
    name = NAMES.get(spec, spec)
    if name not in CODES:
        raise ValueError(f"unknown dtype {spec!r}")
    return name


def _elemwise_dtypes(op, dtypes: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str]]:
    if op.name == "cast":
        for a, b in itertools.permutations(dtypes, 2):
            yield (a,), b
        return
    for d in dtypes:
        ins = ("bool", d, d) if op.name == "switch" else (d,) * op.nin
        try:
            out, _ = op.types(ins)
        except TypeError:
            continue
        yield ins, out


def elemwise_signatures(ops: Iterable[str] | None = None,
                        dtypes: Iterable[str] | None = None,
                        max_ndim: int = MAX_NDIM) -> list[Signature]:
    names = list(SCALAR_OPS) if ops is None else list(ops)
    unknown = [n for n in names if n not in SCALAR_OPS]
    if unknown:
        raise ValueError(f"unknown ops: {', '.join(unknown)}")
    dts = DTYPES if dtypes is None else tuple(dtype_name(d) for d in dtypes)
    if not 1 <= max_ndim <= MAX_NDIM:
        raise ValueError(f"max_ndim must be in 1..{MAX_NDIM}")
    sigs = []
    for name in names:
        for ins, out in _elemwise_dtypes(SCALAR_OPS[name], dts):
            sigs.append(Signature("elemwise", name, ins, out, "flat", 1))
            sigs += [Signature("elemwise", name, ins, out, "nd", n)
                     for n in range(1, max_ndim + 1)]
    return sigs


def usage_signatures(path) -> list[Signature]:
    """Signatures recorded as JIT misses (``misses.txt`` in the JIT cache), one key a line.

    Unknown or malformed lines are skipped: the file is a hint written by old versions too.
    """
    from pathlib import Path

    sigs = []
    for line in Path(path).read_text().splitlines():
        try:
            sig = Signature.from_key(line.strip())
        except (ValueError, KeyError):
            continue
        if sig.op in OP_TABLES.get(sig.family, ()):
            sigs.append(sig)
    return sigs


def reduce_signatures(ops: Iterable[str] | None = None,
                      dtypes: Iterable[str] | None = None,
                      max_ndim: int = MAX_NDIM) -> list[Signature]:
    """Every reduction for every dtype at ranks 1..max_ndim (one kernel serves all axis sets)."""
    names = list(REDUCTIONS) if ops is None else [o for o in ops if o in REDUCTIONS]
    dts = DTYPES if dtypes is None else tuple(dtype_name(d) for d in dtypes)
    return [Signature("reduce", name, (d,), REDUCTIONS[name].dtypes(d)[0], "nd", n)
            for name in names for d in dts for n in range(1, max_ndim + 1)]


def axis_signatures(ops: Iterable[str] | None = None, dtypes: Iterable[str] | None = None,
                    max_ndim: int = MAX_NDIM) -> list[Signature]:
    """Every along-an-axis op for the dtypes it takes, at ranks 1..max_ndim."""
    names = list(AXIS_OPS) if ops is None else [o for o in ops if o in AXIS_OPS]
    dts = DTYPES if dtypes is None else tuple(dtype_name(d) for d in dtypes)
    return [Signature("axis", name, (d,) * op.nin, op.out_dtype(d), "nd", n)
            for name in names for op in [AXIS_OPS[name]] for d in dts if d in op.dtypes
            for n in range(1, max_ndim + 1)]


def blas_signatures(ops: Iterable[str] | None = None,
                    dtypes: Iterable[str] | None = None) -> list[Signature]:
    """Every matrix product for float64 and float32 (each op has one rank)."""
    names = list(BLAS_OPS) if ops is None else [o for o in ops if o in BLAS_OPS]
    dts = BLAS_DTYPES if dtypes is None else tuple(dtype_name(d) for d in dtypes)
    return [Signature("blas", name, (d,) * op.nin, d, "nd", op.ndim)
            for name in names for op in [BLAS_OPS[name]] for d in dts if d in BLAS_DTYPES]


def index_signatures(ops: Iterable[str] | None = None, dtypes: Iterable[str] | None = None,
                     max_ndim: int = MAX_NDIM) -> list[Signature]:
    """Every integer-index op for the data dtypes it takes, each index dtype, ranks
    1..max_ndim (``dtypes`` selects data dtypes; indices are always int64 and int32)."""
    names = list(INDEX_OPS) if ops is None else [o for o in ops if o in INDEX_OPS]
    dts = DTYPES if dtypes is None else tuple(dtype_name(d) for d in dtypes)
    return [Signature("index", name, (d, i), d, "nd", n)
            for name in names for op in [INDEX_OPS[name]] for d in dts if d in op.dtypes
            for i in INDEX_DTYPES for n in op.ranks if n <= max_ndim]


def catalog(ops=None, dtypes=None, max_ndim: int = MAX_NDIM, usage=None) -> list[Signature]:
    """Every signature to build, deduplicated and in a stable order.

    ``ops`` selects by name across families (``add``, ``sum``, ``softmax``, ``gemm``, ...).
    ``usage``: a misses file whose signatures are added (``build-kernels --from-usage``).
    """
    if ops is not None:
        ops = list(ops)
        unknown = [o for o in ops if not any(o in t for t in OP_TABLES.values())]
        if unknown:
            raise ValueError(f"unknown ops: {', '.join(unknown)}")
    elem_ops = None if ops is None else [o for o in ops if o in SCALAR_OPS]
    sigs = set(elemwise_signatures(elem_ops, dtypes, max_ndim))
    sigs.update(reduce_signatures(ops, dtypes, max_ndim))
    sigs.update(axis_signatures(ops, dtypes, max_ndim))
    sigs.update(blas_signatures(ops, dtypes))
    sigs.update(index_signatures(ops, dtypes, max_ndim))
    if usage is not None:
        sigs.update(usage_signatures(usage))
    return sorted(sigs)
