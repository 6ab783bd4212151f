"""A user catalog's op records and their signatures: the table of one user family.

A user's module declares Python functions with signatures (``aotkernels.user.Catalog``);
this module parses the signatures and says which kernels ship for them. Three kinds:

* ``ElementwiseOp``: a scalar function ``"f8(f8, f8)"``, compiled into the elementwise
  template's loops (``flat`` and ``nd`` of every rank: strides, broadcasting, ``out=``);
* ``ReductionOp``: a binary elementwise op folded along axes from an identity, compiled into
  the reduction template (``<name>.reduce``);
* ``ArrayOp``: a whole-array function with explicit array signatures,
  ``"(f8[:, :], f8) -> f8[:]"``: inputs, then the outputs it writes (destination passing);
* ``Helper``: a plain function the others call (compiled into them, no kernel of its own).

Numba-free, like ``scalar_ops``: the runtime reads these records to check and dispatch calls.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from aotkernels.signature import CODES, NAMES, Signature

#: numba's spellings of the dtypes a signature may name, beside our codes and NumPy names
ALIASES = {"double": "float64", "float": "float32", "boolean": "bool", "b1": "bool",
           "intp": "int64", "uintp": "uint64"}


def dtype_of(spec: str) -> str:
    s = spec.strip()
    name = NAMES.get(s) or ALIASES.get(s) or (s if s in CODES else None)
    if name is None:
        raise ValueError(f"unknown dtype {spec!r} in a signature (use {', '.join(NAMES)})")
    return name


_SCALAR_SIG = re.compile(r"^\s*(\w+)\s*\((.*)\)\s*$")


def parse_scalar(sig: str) -> tuple[tuple[str, ...], str]:
    """``"f8(f8, i8)"`` -> ``(("float64", "int64"), "float64")``."""
    m = _SCALAR_SIG.match(sig)
    if m is None:
        raise ValueError(f"bad elementwise signature {sig!r}: write it like 'f8(f8, f8)'")
    ins = tuple(dtype_of(a) for a in m.group(2).split(",") if a.strip())
    if not ins:
        raise ValueError(f"elementwise signature {sig!r} has no inputs")
    return ins, dtype_of(m.group(1))


def _operand(spec: str) -> tuple[str, int]:
    """``"f8[:, :]"`` -> ``("float64", 2)``; ``"f8"`` -> ``("float64", 0)`` (a scalar)."""
    m = re.fullmatch(r"\s*(\w+)\s*(?:\[([:,\s]*)\])?\s*", spec)
    if m is None or (m.group(2) is not None and set(m.group(2).replace(" ", "")) - {":", ","}):
        raise ValueError(f"bad operand {spec!r}: write it like 'f8[:, :]' or 'f8'")
    ndim = 0 if m.group(2) is None else m.group(2).count(":")
    return dtype_of(m.group(1)), ndim


def _operands(spec: str) -> tuple[tuple[str, int], ...]:
    spec = spec.strip()
    if spec.startswith("(") and spec.endswith(")"):
        spec = spec[1:-1]
    parts = re.split(r",(?![^\[]*\])", spec)  # commas outside brackets
    return tuple(_operand(p) for p in parts if p.strip())


@dataclass(frozen=True)
class ArraySig:
    """One signature of an ``ArrayOp``: (dtype, rank) of each input and each output."""

    ins: tuple[tuple[str, int], ...]
    outs: tuple[tuple[str, int], ...]

    @classmethod
    def parse(cls, sig: str) -> ArraySig:
        """``"(f8[:, :], f8) -> f8[:]"``; several outputs as ``-> (f8[:], i8[:])``."""
        if "->" not in sig:
            raise ValueError(f"bad array signature {sig!r}: write it like "
                             "'(f8[:, :], f8) -> f8[:]' (inputs -> outputs)")
        left, right = sig.split("->")
        ins, outs = _operands(left), _operands(right)
        if not outs:
            raise ValueError(f"array signature {sig!r} has no output")
        if any(n == 0 for _, n in outs):
            raise ValueError(f"array signature {sig!r}: outputs are arrays (rank >= 1)")
        return cls(ins, outs)

    @property
    def ndim(self) -> int:
        """The signature's rank slot: the highest operand rank (its key names dtypes only)."""
        return max(n for _, n in (*self.ins, *self.outs))


def _file(fn: Callable) -> str:
    return inspect.getsourcefile(fn) or "<unknown>"


@dataclass(frozen=True)
class ElementwiseOp:
    name: str
    fn: Callable = field(compare=False)
    sigs: tuple[tuple[tuple[str, ...], str], ...]  # (input dtypes, output dtype)
    raises: tuple[type[Exception], str] | None = None

    @property
    def nin(self) -> int:
        return len(self.sigs[0][0])

    def out_dtype(self, ins: tuple[str, ...]) -> str | None:
        return next((o for i, o in self.sigs if i == ins), None)


@dataclass(frozen=True)
class ReductionOp:
    name: str
    combine: ElementwiseOp
    identity: object  # the accumulator's start value

    @property
    def dtypes(self) -> tuple[str, ...]:
        return tuple(o for i, o in self.combine.sigs if i == (o, o))


@dataclass(frozen=True)
class ArrayOp:
    name: str
    fn: Callable = field(compare=False)
    sigs: tuple[ArraySig, ...]
    shape: Callable | None = field(default=None, compare=False)  # inputs -> output shape(s)
    raises: tuple[type[Exception], str] | None = None

    def find(self, ins: tuple[str, ...]) -> ArraySig | None:
        return next((s for s in self.sigs if tuple(d for d, _ in s.ins) == ins), None)


@dataclass(frozen=True)
class Helper:
    """A plain function the catalog's kernels call: compiled into each of them, no kernel
    of its own."""

    name: str
    fn: Callable = field(compare=False)


def check_elementwise(name: str, sigs: list[str]) -> tuple[tuple[tuple[str, ...], str], ...]:
    parsed = tuple(parse_scalar(s) for s in sigs)
    if not parsed:
        raise ValueError(f"{name}: give at least one signature, e.g. 'f8(f8, f8)'")
    if len({len(i) for i, _ in parsed}) != 1:
        raise ValueError(f"{name}: every signature must take the same number of inputs")
    if len({i for i, _ in parsed}) != len(parsed):
        raise ValueError(f"{name}: two signatures take the same input dtypes")
    return parsed


def check_array(name: str, sigs: list[str]) -> tuple[ArraySig, ...]:
    parsed = tuple(ArraySig.parse(s) for s in sigs)
    if not parsed:
        raise ValueError(f"{name}: give at least one signature, e.g. '(f8[:]) -> f8[:]'")
    keys = [tuple(d for d, _ in s.ins) for s in parsed]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{name}: two signatures take the same input dtypes (an array "
                         "kernel is chosen by its inputs' dtypes)")
    return parsed


def array_signature(family: str, op: ArrayOp, s: ArraySig) -> Signature:
    return Signature(family, op.name, tuple(d for d, _ in s.ins), s.outs[0][0], "nd", s.ndim)


def user_signatures(family: str):
    """The family's ``signatures(op, dtypes, max_ndim)``: every declared dtype signature (of
    ``dtypes``, if given), elementwise ops as ``flat`` plus ``nd`` 1..max_ndim, reductions at
    ranks 1..max_ndim, array kernels as declared."""

    def enumerate_(op, dtypes: tuple[str, ...] | None, max_ndim: int) -> Iterator[Signature]:
        def wanted(*ds: str) -> bool:
            return dtypes is None or all(d in dtypes for d in ds)

        if isinstance(op, ElementwiseOp):
            for ins, out in op.sigs:
                if wanted(*ins, out):
                    yield Signature(family, op.name, ins, out, "flat", 1)
                    for n in range(1, max_ndim + 1):
                        yield Signature(family, op.name, ins, out, "nd", n)
        elif isinstance(op, ReductionOp):
            for d in op.dtypes:
                if wanted(d):
                    for n in range(1, max_ndim + 1):
                        yield Signature(family, op.name, (d,), d, "nd", n)
        elif isinstance(op, ArrayOp):
            for s in op.sigs:
                if wanted(*(d for d, _ in (*s.ins, *s.outs))):
                    yield array_signature(family, op, s)

    return enumerate_
