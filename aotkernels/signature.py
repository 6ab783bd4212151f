"""Signatures: the frozen description of one kernel, its canonical key and exported symbol.

Shared by the generator (what to compile), the manifest (what shipped) and the runtime
(what a call needs), so the three can never disagree on a name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

#: Version of the calling convention in ``abi.py``; a library built for another is refused.
ABI_VERSION = 1

CODES = {"float64": "f8", "float32": "f4", "int64": "i8", "int32": "i4", "int16": "i2",
         "int8": "i1", "uint64": "u8", "uint32": "u4", "uint16": "u2", "uint8": "u1",
         "bool": "b1"}
NAMES = {code: name for name, code in CODES.items()}

#: Highest rank the catalog ships ``nd`` kernels for; higher collapsed ranks are JIT-compiled.
MAX_NDIM = 4

#: Layouts of an elementwise kernel: ``flat`` takes 1-D C-contiguous operands of one length;
#: ``nd`` takes operands of a fixed rank with any strides (0 = broadcast, negative allowed).
LAYOUTS = ("flat", "nd")


@dataclass(frozen=True, order=True)
class Signature:
    family: str
    op: str
    in_dtypes: tuple[str, ...]
    out_dtype: str
    layout: str
    ndim: int

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r}")
        if self.layout == "flat" and self.ndim != 1:
            raise ValueError("a flat kernel has ndim 1")

    @property
    def key(self) -> str:
        """Canonical string, e.g. ``elemwise/add/f8,f8->f8/nd2``."""
        ins = ",".join(CODES[d] for d in self.in_dtypes)
        return f"{self.family}/{self.op}/{ins}->{CODES[self.out_dtype]}/{self.layout}{self.ndim}"

    @classmethod
    def from_key(cls, key: str) -> Signature:
        family, op, types, shape = key.split("/")
        ins, out = types.split("->")
        layout = shape.rstrip("0123456789")
        return cls(family, op, tuple(NAMES[c] for c in ins.split(",")), NAMES[out], layout,
                   int(shape[len(layout):]))

    def symbol(self, template_hash: str) -> str:
        """Exported C name: readable prefix plus a hash of the key and the template sources.

        A changed template changes every symbol of its family, so a stale object can never
        satisfy a newer manifest, and JIT cache entries are keyed by the same name.
        """
        ins = "".join(CODES[d] for d in self.in_dtypes)
        digest = hashlib.sha256(f"{self.key}|{template_hash}".encode()).hexdigest()[:10]
        op = self.op.replace(".", "_")  # a user reduction is named ``<op>.reduce``
        return f"aotk_{op}_{ins}_{CODES[self.out_dtype]}_{self.layout}{self.ndim}_{digest}"

    @classmethod
    def candidates(cls, family: str, op: str, ins: tuple[str, ...], out: str, ndim: int,
                   flat: bool = False, pads: bool = True):
        """Kernels that serve operands of collapsed rank ``ndim``, best first: ``flat`` when
        they are one contiguous run, the ``nd`` kernel of that rank, then (``pads``: when
        size-1 dimensions can pad the operands) ``nd`` kernels of higher ranks."""
        if flat:
            yield cls(family, op, ins, out, "flat", 1)
        for n in range(ndim, (MAX_NDIM if pads else ndim) + 1):
            yield cls(family, op, ins, out, "nd", n)

    @property
    def operands(self) -> list[tuple[str, int]]:
        """(dtype, ndim) of each operand as the kernel sees it: inputs, then the output."""
        return [(d, self.ndim) for d in (*self.in_dtypes, self.out_dtype)]
