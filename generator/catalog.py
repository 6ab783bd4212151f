"""The catalog: the declarative list of signatures that ship in the library.

Like NumPy's ``generate_umath.py``, the op tables decide what is prebuilt; nothing else
lists ops. ``catalog`` is a loop over the family registry (``aotkernels.kernels.FAMILIES``):
each family's ``signatures`` says what of one op ships for the chosen dtypes and ranks.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from aotkernels.kernels import BUILTIN, FAMILIES, register_program
from aotkernels.kernels.scalar_ops import DTYPES
from aotkernels.signature import CODES, MAX_NDIM, NAMES, Signature


def dtype_name(spec: str) -> str:
    """Accept ``float64`` or its code ``f8``."""
    name = NAMES.get(spec, spec)
    if name not in CODES:
        raise ValueError(f"unknown dtype {spec!r}")
    return name


def usage_signatures(path) -> list[Signature]:
    """Signatures recorded as JIT misses (``misses.txt`` in the JIT cache), one key a line;
    the key of a kernel named by a program (a fused run, a scalar loop) is followed by a
    tab and the program, registered here when it is the program the key names.

    Unknown or malformed lines are skipped: the file is a hint written by old versions too.
    """
    sigs = []
    for line in Path(path).read_text().splitlines():
        key, _, program = line.strip().partition("\t")
        try:
            sig = Signature.from_key(key)
            if FAMILIES[sig.family].program is not None:
                made = FAMILIES[sig.family].program.from_json(program)
                if made.name != sig.op or made.signature != sig:
                    continue
                register_program(sig.family, program)
        except (ValueError, KeyError, TypeError):
            continue
        family = FAMILIES.get(sig.family)
        if family is not None and sig.op in family.table:
            sigs.append(sig)
    return sigs


def catalog(ops: Iterable[str] | None = None, dtypes: Iterable[str] | None = None,
            max_ndim: int = MAX_NDIM, usage=None,
            families: Iterable[str] | None = None) -> list[Signature]:
    """Every signature to build, deduplicated and in a stable order.

    ``ops`` selects by name across families (``add``, ``sum``, ``softmax``, ``gemm``, ...);
    ``dtypes`` the data dtypes (``f8`` or ``float64``; a user catalog's default: the ones
    it declares); ``max_ndim`` the highest ``nd`` rank. ``usage``: a misses file whose
    signatures are added (``--from-usage``). ``families``: these (default: the built-in
    ones, not the user catalogs that happen to be imported).
    """
    chosen = [FAMILIES[f] for f in (BUILTIN if families is None else families)]
    if ops is not None:
        ops = set(ops)
        unknown = sorted(o for o in ops if not any(o in f.table for f in chosen))
        if unknown:
            raise ValueError(f"unknown ops: {', '.join(unknown)}")
    if not 1 <= max_ndim <= MAX_NDIM:
        raise ValueError(f"max_ndim must be in 1..{MAX_NDIM}")
    dts = None if dtypes is None else tuple(dtype_name(d) for d in dtypes)
    sigs = set()
    for family in chosen:
        for name, op in family.table.items():
            if ops is None or name in ops:
                default = DTYPES if family.origin is None else None
                sigs.update(family.signatures(op, dts or default, max_ndim))
    if usage is not None:
        names = {f.name for f in chosen}
        sigs.update(s for s in usage_signatures(usage) if s.family in names)
    return sorted(sigs)
